from pathlib import Path

import pytest

from ingestion.corpus import CorpusEntry, render_entry
from ingestion.sources import InputError, list_input, read_bytes


def make_folder(root: Path, per_label: int = 4, labels=("invoice", "nda", "lab_report")) -> Path:
    """DIR/<label>/*.pdf, plus one unlabelled PDF at the top, a text file and a duplicate."""
    for n, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            (root / label / f"doc{i}.pdf").write_bytes(render_entry(7, CorpusEntry("train", n * 100 + i, label)))
    (root / "loose.pdf").write_bytes(render_entry(7, CorpusEntry("train", 999, "invoice")))
    (root / labels[0] / "notes.pdf").write_text("not really a pdf")
    (root / labels[-1] / "copy.pdf").write_bytes((root / labels[-1] / "doc0.pdf").read_bytes())
    return root


def test_sub_folders_give_labels_and_loose_files_are_for_prediction(tmp_path):
    root = make_folder(tmp_path / "in")
    files = list_input(str(root))
    assert len(files) == 3 * 4 + 3  # every file, the text file and the duplicate included
    by_name = {Path(f.uri).relative_to(root).as_posix(): f for f in files}
    assert by_name["loose.pdf"].label is None and by_name["loose.pdf"].split == "predict"
    assert by_name["lab_report/copy.pdf"].label == "lab_report"
    assert by_name["nda/doc1.pdf"].label == "nda" and by_name["nda/doc1.pdf"].split in ("train", "heldout")
    assert {f.split for f in files} == {"train", "heldout", "predict"}
    assert list_input(str(root)) == files  # the split is stable


def test_labels_csv_with_header_relative_paths_and_line_numbers(tmp_path):
    root = make_folder(tmp_path / "in")
    good = tmp_path / "labels.csv"
    good.write_text("path,label\ninvoice/doc0.pdf,billing\nnda/doc0.pdf,legal\n" + f"{root}/loose.pdf,legal\n")
    files = {Path(f.uri).relative_to(root).as_posix(): f.label for f in list_input(str(root), str(good))}
    assert files["invoice/doc0.pdf"] == "billing" and files["loose.pdf"] == "legal"
    assert files["invoice/doc1.pdf"] is None  # not in the CSV: kept for prediction
    bad = tmp_path / "bad.csv"
    bad.write_text("invoice/doc0.pdf,billing\nnda/doc0.pdf\n")
    with pytest.raises(InputError, match=r"bad.csv:2: expected 'path,label'"):
        list_input(str(root), str(bad))
    missing = tmp_path / "missing.csv"
    missing.write_text("invoice/doc0.pdf,billing\ninvoice/nope.pdf,billing\n")
    with pytest.raises(InputError, match=r"missing.csv:2: invoice/nope.pdf is not a file"):
        list_input(str(root), str(missing))
    with pytest.raises(InputError, match=r"--labels \S*typo.csv: no such file$"):
        list_input(str(root), str(tmp_path / "typo.csv"))


def test_clear_errors_for_empty_folder_and_single_label(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no files"):
        list_input(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="not a folder"):
        list_input(str(tmp_path / "nowhere"))
    root = make_folder(tmp_path / "one", labels=("invoice",))
    with pytest.raises(InputError, match="need at least 2 labels.*only 'invoice'"):
        list_input(str(root))


def test_read_bytes_takes_paths_and_file_uris(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"abc")
    assert read_bytes(str(target)) == b"abc" == read_bytes(target.as_uri())
