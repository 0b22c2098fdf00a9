"""The extra real-document set must share no package and no file with texlive-dev, or scoring it would
measure memory of the training packages instead of generalisation."""

import os
from pathlib import Path

from tests.scripts import load_script


def put(path: Path, size: int, fill: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fill * size)
    return path


def test_the_extra_set_leaves_out_the_corpus_packages_copies_and_sizes(tmp_path):
    fetch = load_script("fetch_texlive_extra")
    corpus, unpacked = tmp_path / "corpus", tmp_path / "unpacked"
    put(corpus / "train" / "luatex" / "latex__usedpkg__manual.pdf", 40_000, b"a")
    put(corpus / "test" / "luatex" / "luatex__other__doc.pdf", 40_000, b"b")
    docs = unpacked / "texlive-luatex" / "usr" / "share" / "doc" / "texlive-doc"
    put(docs / "latex" / "usedpkg" / "sub" / "another.pdf", 40_000, b"c")  # a package train/ holds
    put(docs / "luatex" / "other" / "doc2.pdf", 40_000, b"d")  # a package test/ holds
    put(docs / "latex" / "fresh" / "copy.pdf", 40_000, b"a")  # the same bytes as a train/ file
    put(docs / "latex" / "fresh" / "tiny.pdf", 1_000, b"e")  # under the smallest size
    for n in range(5):  # five files of one new package: three are kept
        put(docs / "latex" / "big" / f"part{n}.pdf", 40_000 + n, b"f")
    kept = put(docs / "generic" / "solo" / "solo.pdf", 40_000, b"g")
    os.symlink(kept, docs / "generic" / "solo" / "alias.pdf")  # a link is not a second document

    chosen = fetch.choose(unpacked, corpus)

    names = sorted(name for name, _ in chosen["luatex"])
    assert "generic__solo__solo.pdf" in names
    assert sum(name.startswith("latex__big__") for name in names) == 3
    assert len(names) == 4, names
    assert all(chosen[label] == [] for label in chosen if label != "luatex")
