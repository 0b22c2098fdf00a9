"""Hostile but fair input folders: every entry ends with one outcome, labels come from the file's own
folder, nothing is read that should not be (FIFOs, sparse giants), and nothing loops."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from ingestion.extract import ExtractConfig, extract_files
from ingestion.sources import InputError, display_path, list_input
from tests.ingestion.test_sources import make_folder

BAD_NAME = os.fsdecode(b"lab_report/caf\xe9.pdf")  # Latin-1 bytes: not UTF-8


@pytest.fixture()
def hostile(tmp_path: Path) -> Path:
    root = make_folder(tmp_path / "in", per_label=3)
    (root / "invoice" / "up").symlink_to("..")  # a loop back up the tree: must not relabel anything
    (root / "invoice" / "elsewhere").symlink_to("/usr")  # out of the tree
    os.mkfifo(root / "invoice" / "pipe.pdf")  # opening it would block forever
    (root / "invoice" / "dangling.pdf").symlink_to(root / "nowhere.pdf")
    (root / "nda" / "a.pdf").symlink_to(root / "nda" / "b.pdf")
    (root / "nda" / "b.pdf").symlink_to(root / "nda" / "a.pdf")  # a loop between two files
    with open(root / "nda" / "huge.pdf", "wb") as sparse:  # 2 GiB on paper, nothing on disk
        sparse.truncate(2 << 30)
    source = (root / "lab_report" / "doc1.pdf").read_bytes()
    with open(os.path.join(os.fsencode(root), os.fsencode(BAD_NAME)), "wb") as odd:
        odd.write(source)
    return root


def test_every_entry_is_listed_once_with_its_own_folders_label(hostile):
    files = list_input(str(hostile))
    paths = [f.uri for f in files]
    assert (
        len(paths) == len(set(paths)) == 20
    )  # 12 of make_folder + 2 dir links + fifo + 3 file links + huge + odd name
    assert not any("/up/" in p or "/elsewhere/" in p for p in paths)  # no walking through the links
    for f in files:
        relative = Path(f.uri).relative_to(hostile).parts
        assert f.label == (relative[0] if len(relative) > 1 else None)


def test_each_hostile_entry_ends_with_the_outcome_it_should(hostile):
    files = {Path(f.uri).relative_to(hostile).as_posix(): f.uri for f in list_input(str(hostile))}
    config = ExtractConfig(max_bytes=50 << 20)
    records = {display_path(r.path): r for r in extract_files(list(files.values()), config)}
    outcome = {display_path(str(Path(p).relative_to(hostile))): r.extraction.outcome for p, r in records.items()}
    assert outcome["invoice/pipe.pdf"] == "unreadable"
    assert outcome["invoice/dangling.pdf"] == "unreadable"
    assert outcome["nda/a.pdf"] == outcome["nda/b.pdf"] == "unreadable"
    assert outcome["invoice/up"] == outcome["invoice/elsewhere"] == "unreadable"
    assert outcome["nda/huge.pdf"] == "too_large" and records[display_path(files["nda/huge.pdf"])].size_bytes == 2 << 30
    assert outcome[display_path(BAD_NAME)] == "ok"
    assert "directory" in records[display_path(files["invoice/up"])].extraction.message
    assert sum(Counter(outcome.values()).values()) == 20


def test_conflicting_label_rows_are_rejected_with_their_lines(tmp_path):
    root = make_folder(tmp_path / "in", per_label=2)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\ninvoice/doc0.pdf,invoice\nnda/doc0.pdf,nda\ninvoice/doc0.pdf,receipt\n")
    with pytest.raises(
        InputError, match=r"labels.csv:4: invoice/doc0.pdf is labelled 'receipt' here and 'invoice' on line 2"
    ):
        list_input(str(root), str(csv))


def test_an_exact_duplicate_label_row_is_a_warning(tmp_path, capsys):
    root = make_folder(tmp_path / "in", per_label=2)
    csv = tmp_path / "labels.csv"
    csv.write_text("invoice/doc0.pdf,invoice\nnda/doc0.pdf,nda\ninvoice/doc0.pdf,invoice\n")
    labelled = [f for f in list_input(str(root), str(csv)) if f.label]
    assert len(labelled) == 2
    assert "labels.csv:3: repeats line 1" in capsys.readouterr().err


def test_the_pipeline_runs_through_a_hostile_folder(hostile, tmp_path):
    import json

    from processing.run import main

    summary_path = tmp_path / "s.json"
    args = ["--input", str(hostile), "--workspace", str(tmp_path / "ws"), "--summary", str(summary_path)]
    assert main([*args, "--set", "engine.executor=local", "--set", "train.classifiers=logreg"]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["documents"] == 20
    assert summary["outcomes"]["unreadable"] == 6 and summary["outcomes"]["too_large"] == 1
