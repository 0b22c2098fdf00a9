import json

import numpy as np
import pyarrow.parquet as pq

from ingestion.extract import Extraction, FileRecord
from processing.features import FeatureStore, Member
from processing.features.__main__ import main


def _store_with_two_versions(path):
    records = [FileRecord(f"/{h}.pdf", h, 1, Extraction("ok", f"text {h}", 1)) for h in ("a", "b", "c")]
    labels = {"/a.pdf": ("x", "train"), "/b.pdf": ("y", "train"), "/c.pdf": ("y", "heldout")}
    with FeatureStore(path) as store:
        store.begin_run("r", "test", {})
        store.record_files("r", "ex", records, labels)
        store.register_embedder("emb", "m", {}, 4)
        store.add_embeddings(["a", "b", "c"], np.eye(3, 4, dtype=np.float32), "emb", "ex")
        members = store.members("r")
        first, _ = store.commit_version(members[:2], "tier:small", "ex", "emb", {})
        second, _ = store.commit_version(members, "tier:big", "ex", "emb", {})
    return first, second


def test_list_show_diff_export(tmp_path, capsys):
    first, second = _store_with_two_versions(tmp_path / "features.duckdb")
    ws = ["--workspace", str(tmp_path)]
    assert main([*ws, "list"]) == 0
    listing = capsys.readouterr().out
    assert first in listing and second in listing and "tier:big" in listing
    columns = {line.split()[0]: line.split()[3:6] for line in listing.splitlines()[1:]}
    assert columns[second] == ["2", "1", "0"]  # train, held-out, batch
    with FeatureStore(tmp_path / "features.duckdb") as store:  # a batch the loop scored: its own column
        batch, _ = store.commit_version([Member("a", "", "batch")], "cycle:batch-1", "ex", "emb", {})
    assert main([*ws, "list"]) == 0
    listing = capsys.readouterr().out
    assert next(line for line in listing.splitlines() if line.startswith(batch)).split()[3:6] == ["0", "0", "1"]
    assert main([*ws, "show", second]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["parent_version"] == first and shown["n_train"] == 2
    assert main([*ws, "diff", first, second]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert (diff["added"], diff["removed"], diff["relabelled"]) == (1, 0, 0)
    assert diff["changed"] == {"source": ["tier:small", "tier:big"]}
    assert main([*ws, "export", second, str(tmp_path / "out")]) == 0
    train = pq.read_table(tmp_path / "out" / "train.parquet")
    assert train.column("content_hash").to_pylist() == ["a", "b"]
    assert np.asarray(train.column("vector").to_pylist()).shape == (2, 4)
    assert json.loads((tmp_path / "out" / "version.json").read_text())["version_id"] == second


def test_unknown_version_and_missing_store_are_one_line_errors(tmp_path, capsys):
    assert main(["--workspace", str(tmp_path), "list"]) == 2  # the user's mistake, as everywhere
    assert "no feature store" in capsys.readouterr().err
    _store_with_two_versions(tmp_path / "features.duckdb")
    assert main(["--workspace", str(tmp_path), "show", "fv-nope"]) == 2
    assert "no feature version 'fv-nope'" in capsys.readouterr().err


def test_the_workspace_may_follow_the_command(tmp_path, capsys):
    first, _ = _store_with_two_versions(tmp_path / "features.duckdb")
    assert main(["show", first, "--workspace", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["version_id"] == first
    assert main(["list", "--workspace", str(tmp_path)]) == 0
    assert first in capsys.readouterr().out
