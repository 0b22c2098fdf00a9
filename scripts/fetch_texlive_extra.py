"""A second, larger labelled set of real documents for the texlive-dev benchmark, from Debian's own packages.

texlive-dev's test/ has 72 documents: a 95% interval of about +-0.1 macro-F1, wider than the leads being
measured. Its documents come from six Debian 12 TeX Live packages that hold many more manuals. This script
downloads those packages with `apt-get download` (no root, nothing installed), unpacks them here, and lays
out `<out>/set/<class>/<package path>__<file>.pdf` with the corpus's labels and rules:

- a TeX package whose manuals are in texlive-dev (train/ or test/) is left out whole, so this set shares no
  package with either (a package here is the first two parts of the path, stricter than the corpus's own);
- at most 3 files per package, chosen by a hash of the path (not by name or size);
- 20 KB to 3 MB per file by default (the corpus kept 30-500 KB: `--smallest 30000 --largest 500000`;
  xetex then has one file left);
- a file with the same bytes as one in texlive-dev is left out.

It is never a training set: scripts/bench_real.py and bench_real_variants.py score it with `--also <out>/set`
next to test/, with models fitted on train/ only, to see whether a lead on test/ holds on more documents.

    .venv/bin/python scripts/fetch_texlive_extra.py --out ~/.cache/docscale/texlive-extra   # 380 MB, ~1 min
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "texlive-dev"
LABEL_OF_PACKAGE = {
    "texlive-lang-english": "english-docs",
    "texlive-latex-base-doc": "latex-base",
    "texlive-latex-recommended-doc": "latex-recommended",
    "texlive-luatex": "luatex",
    "texlive-plain-generic": "plain-generic",
    "texlive-xetex": "xetex",
}
PER_PACKAGE = 3


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tex_package(relative: Path) -> tuple[str, ...]:
    """`latex/amscls/amsdoc.pdf` -> ('latex', 'amscls')."""
    return relative.parts[:2]


def unpack(out: Path) -> Path:
    """The six Debian packages, downloaded and unpacked under out/unpacked/<package>."""
    debs, unpacked = out / "debs", out / "unpacked"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [name for name in LABEL_OF_PACKAGE if not list(debs.glob(f"{name}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for name in LABEL_OF_PACKAGE:
        target = unpacked / name
        if not target.is_dir():
            # Unpacked beside its place and moved in whole, so an interrupted run is redone, not trusted.
            partial = unpacked / f".{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            (deb,) = debs.glob(f"{name}_*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
            partial.rename(target)
    return unpacked


def choose(
    unpacked: Path, corpus: Path, sizes: tuple[int, int] = (20_000, 3_000_000)
) -> dict[str, list[tuple[str, Path]]]:
    """Per class, the (file name, source) pairs that follow the rules in the module's docstring."""
    taken = {tuple(p.name.split("__")[:2]) for p in corpus.glob("*/*/*.pdf")}
    taken_bytes = {digest(p) for p in corpus.glob("*/*/*.pdf")}
    chosen: dict[str, list[tuple[str, Path]]] = {}
    for package, label in LABEL_OF_PACKAGE.items():
        docs = unpacked / package / "usr" / "share" / "doc" / "texlive-doc"
        by_package: dict[tuple[str, ...], list[Path]] = defaultdict(list)
        for path in sorted(docs.rglob("*.pdf")):
            relative = path.relative_to(docs)
            if path.is_symlink() or tex_package(relative) in taken:
                continue
            if sizes[0] <= path.stat().st_size <= sizes[1]:
                by_package[tex_package(relative)].append(path)
        picked = []
        for files in by_package.values():
            files.sort(key=lambda f: hashlib.sha1(str(f.relative_to(docs)).encode()).hexdigest())
            picked += [f for f in files[:PER_PACKAGE] if digest(f) not in taken_bytes]
        chosen[label] = [("__".join(f.relative_to(docs).parts), f) for f in picked]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a folder outside the repository")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the corpus whose packages to leave out")
    parser.add_argument("--smallest", type=int, default=20_000, help="bytes (texlive-dev kept 30000 and up)")
    parser.add_argument("--largest", type=int, default=3_000_000, help="bytes (texlive-dev: 500000; xetex then has 1)")
    args = parser.parse_args()
    if not 0 <= args.smallest <= args.largest:
        sizes = f"--smallest {args.smallest} and --largest {args.largest}"
        print(f"error: {sizes}: need 0 <= smallest <= largest", file=sys.stderr)
        return 2
    if not (args.corpus / "train").is_dir():
        print(f"error: --corpus {args.corpus} has no train/ folder; point it at texlive-dev", file=sys.stderr)
        return 2
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found; this script needs a Debian or Ubuntu machine", file=sys.stderr)
            return 2
    out = args.out.expanduser().resolve()
    if ROOT in out.parents or out == ROOT:
        print(f"error: --out {out} is inside the repository; corpora stay outside it", file=sys.stderr)
        return 2
    try:
        chosen = choose(unpack(out), args.corpus, (args.smallest, args.largest))
    except subprocess.CalledProcessError as failed:
        print(f"error: {' '.join(failed.cmd)} failed (exit {failed.returncode})", file=sys.stderr)
        return 1
    counts = Counter()
    for label, files in chosen.items():
        folder = out / "set" / label
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, source in files:
            (folder / name).symlink_to(source)
        counts[label] = len(files)
    listing = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
    print(f"{sum(counts.values())} documents in {out / 'set'}: {listing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
