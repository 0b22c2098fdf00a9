"""The architecture, checked on the source (absolute and relative imports, packages and scripts/):
each side effect lives in one module, data flows one way, and nothing imports a conductor."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ingestion", "processing", "training", "evaluation")
# Which other packages each package may import (data flows one way). ingestion and training stand
# alone; evaluation scores what training made; processing runs ingestion's steps on the engine.
ALLOWED = {
    "ingestion": set(),
    "processing": {"ingestion"},
    "training": set(),
    "evaluation": {"ingestion", "training"},
}
# Entry points that wire stages together: nothing imports them.
CONDUCTORS = {
    "processing/run.py",
    "processing/predict.py",
    "processing/serve.py",
    "processing/monitor.py",
    "processing/cycle.py",
    "processing/export_model.py",
    "processing/scenario.py",
}
# Wiring beside the conductors, which may import every stage: the config composes each stage's own
# config dataclass; run_training wires training, evaluation and tracking for processing.run.
WIRING = {
    "processing/config.py",
    "processing/run_training.py",
    "processing/pipeline.py",
    "processing/loop.py",
    "processing/challenger.py",
    "processing/monitoring.py",
}
SOLE_OWNER = {"duckdb": "processing/features/store.py", "mlflow": "training/tracking.py", "ray": "processing/engine.py"}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by the file, relative imports resolved against its package."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # `from processing import run` is a module
    return names


def _modules():
    for package in (*PACKAGES, "scripts"):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path.relative_to(ROOT).as_posix(), _imports(path)


def _conductor_module(name: str) -> str | None:
    rel = name.replace(".", "/") + ".py"
    return rel if rel in CONDUCTORS else None


def test_side_effect_libraries_each_live_in_one_module():
    for _, rel, imports in _modules():
        for library, owner in SOLE_OWNER.items():
            if any(i == library or i.startswith(library + ".") for i in imports):
                assert rel == owner, f"{rel} imports {library}; only {owner} may"


def test_nothing_imports_a_conductor():
    for _, rel, imports in _modules():
        for name in imports:
            assert _conductor_module(name) is None, f"{rel} imports the conductor {name}"


def test_stages_import_only_earlier_stages():
    for package, rel, imports in _modules():
        if rel in WIRING or rel in CONDUCTORS or package == "scripts":
            continue
        for name in imports:
            top = name.split(".")[0]
            if top in PACKAGES and top != package:
                assert top in ALLOWED[package], f"{rel} imports {name}"


def test_the_checker_sees_relative_imports(tmp_path):
    probe = ROOT / "training" / "_layering_probe.py"
    probe.write_text("from ..processing import run\nfrom . import classifiers\n")
    try:
        found = _imports(probe)
    finally:
        probe.unlink()
    assert {"processing.run", "training.classifiers"} <= found
    assert _conductor_module("processing.run") == "processing/run.py"


def test_embedding_code_path_is_free_of_ray():
    assert not any(i.startswith("ray") for i in _imports(ROOT / "processing" / "embed.py"))


@pytest.mark.parametrize("module", ["processing/local.py", "processing/scheduling.py", "processing/build.py"])
def test_the_in_process_executor_path_is_free_of_ray(module):
    imports = _imports(ROOT / module)
    assert not any(i.startswith("ray") or i == "processing.engine" for i in imports), module
