"""Architecture rules from STYLE.md, checked on the source: each side effect lives in one module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ingestion", "processing", "training", "evaluation")
# Which packages each package may import (data flows one way).
ALLOWED = {
    "ingestion": set(),
    "processing": {"ingestion"},
    "training": set(),
    "evaluation": {"ingestion", "processing", "training"},
}
# The conductor and the wiring beside it: the only modules that may import every stage package.
WIRING = {"processing/run.py", "processing/run_training.py"}
SOLE_OWNER = {"duckdb": "processing/features/store.py", "mlflow": "training/tracking.py", "ray": "processing/engine.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path.relative_to(ROOT).as_posix(), _imports(path)


def test_side_effect_libraries_each_live_in_one_module():
    for _, rel, imports in _modules():
        for library, owner in SOLE_OWNER.items():
            if any(i == library or i.startswith(library + ".") for i in imports):
                assert rel == owner, f"{rel} imports {library}; only {owner} may"


def test_packages_import_only_earlier_stages_and_nothing_imports_the_conductor():
    for package, rel, imports in _modules():
        if rel in WIRING:
            continue
        for name in imports:
            top = name.split(".")[0]
            assert name not in ("processing.run", "processing.run_training"), f"{rel} imports the conductor"
            if top in PACKAGES and top != package:
                assert top in ALLOWED[package], f"{rel} imports {name}"


def test_embedding_code_path_is_free_of_ray():
    assert not any(i.startswith("ray") for i in _imports(ROOT / "processing" / "embed.py"))
