import signal

import numpy as np
import pytest

from ingestion.extract import Extraction, FileRecord
from processing.features import FeatureStore, UnknownVersionError, WorkspaceLockedError, version_id_for


def _records():
    return [
        FileRecord("/a.pdf", "h1", 10, Extraction("ok", "alpha text", 1)),
        FileRecord("/b.pdf", "h2", 10, Extraction("ok", "beta text", 1)),
        FileRecord("/c.pdf", "h3", 10, Extraction("encrypted", message="needs password")),
        FileRecord("/a-copy.pdf", "h1", 10, Extraction("ok", "alpha text", 1)),
        FileRecord("/h.pdf", "h4", 10, Extraction("ok", "held out", 1)),
    ]


LABELS = {
    "/a.pdf": ("x", "train"),
    "/b.pdf": ("y", "train"),
    "/c.pdf": ("x", "train"),
    "/a-copy.pdf": ("x", "train"),
    "/h.pdf": ("y", "heldout"),
}


def test_every_file_gets_one_outcome_and_duplicates_count_once(tmp_path):
    with FeatureStore(tmp_path / "f.duckdb") as store:
        store.begin_run("r1", "test", {})
        store.record_files("r1", "ex1", _records(), LABELS)
        assert store.outcome_counts("r1") == {"encrypted": 1, "ok": 4}
        assert store.count("extractions") == 4  # h1 stored once
        assert [m.content_hash for m in store.members("r1")] == ["h4", "h1", "h2"]
        # A cache hit (extraction None) takes its outcome from the stored extraction.
        store.begin_run("r2", "test", {})
        store.record_files("r2", "ex1", [FileRecord("/c.pdf", "h3", 10, None)], LABELS)
        assert store.outcome_counts("r2") == {"encrypted": 1}
        assert store.extracted_hashes("ex1") == {"h1", "h2", "h3", "h4"}


def test_each_file_keeps_its_message_and_quality_flags_for_the_prediction_rows(tmp_path):
    scanned = FileRecord("/s.pdf", "h5", 10, Extraction("ok", "read by ocr", 2, "page 2 by OCR", flags=("ocr",)))
    with FeatureStore(tmp_path / "f.duckdb") as store:
        store.begin_run("r1", "test", {})
        store.record_files("r1", "ex1", [*_records(), scanned], {**LABELS, "/s.pdf": ("x", "train")})
        store.mark_duplicates("r1")
        files = store.run_files("r1", "ex1")
        assert files["/s.pdf"] == ("h5", "ok", "page 2 by OCR", "ocr")
        assert files["/c.pdf"] == ("h3", "encrypted", "needs password", "")
        assert files["/a.pdf"] == ("h1", "duplicate", "same bytes as /a-copy.pdf", "")  # the first path keeps it
        assert files["/b.pdf"] == ("h2", "ok", "", "")
        # A cache hit in a later run reads the stored extraction's message and flags.
        store.begin_run("r2", "test", {})
        store.record_files("r2", "ex1", [FileRecord("/s.pdf", "h5", 10, None)], LABELS | {"/s.pdf": ("x", "train")})
        assert store.run_files("r2", "ex1") == {"/s.pdf": ("h5", "ok", "page 2 by OCR", "ocr")}
        assert store.run_files("r2", "another extractor") == {"/s.pdf": ("h5", "ok", "page 2 by OCR", "")}


def test_version_is_content_addressed_immutable_and_loads(tmp_path):
    with FeatureStore(tmp_path / "f.duckdb") as store:
        store.begin_run("r1", "test", {})
        store.record_files("r1", "ex1", _records(), LABELS)
        members = store.members("r1")
        missing = store.missing_embeddings([m.content_hash for m in members], "emb", "ex1")
        assert missing == ["h1", "h2", "h4"]
        assert dict(store.iter_texts(missing, "ex1", chunk=2))["h2"] == "beta text"
        vectors = np.arange(9, dtype=np.float32).reshape(3, 3)
        store.register_embedder("emb", "model", {}, 3)
        store.add_embeddings(missing, vectors, "emb", "ex1")
        assert store.missing_embeddings(missing, "emb", "ex1") == []
        version, created = store.commit_version(members, "test", "ex1", "emb", {"p": 1})
        again, created_again = store.commit_version(members, "test", "ex1", "emb", {"p": 1})
        assert created and not created_again and version == again
        assert version == version_id_for(list(reversed(members)), "ex1", "emb", {"p": 1})
        assert version != version_id_for(members, "ex1", "emb", {"p": 2})
        features = store.load_features(version)
        np.testing.assert_array_equal(features.x_train, vectors[:2])
        assert list(features.y_train) == ["x", "y"] and list(features.y_heldout) == ["y"]
        assert store.version(version)["n_train"] == 2 and store.version(version)["dim"] == 3
        # Each row's file (train.cv_groups, the held-out report): h1 was read as /a.pdf and /a-copy.pdf.
        assert store.member_names(version) == ["/a-copy.pdf", "/b.pdf"]
        assert store.member_names(version, "heldout") == ["/h.pdf"]
        other, _ = store.commit_version(members[:2], "test", "ex1", "emb", {"p": 1})
        assert store.version(other)["parent_version"] == version
        with pytest.raises(UnknownVersionError, match="processing.features list"):
            store.version("fv-nope")


def test_second_writer_gets_a_clear_lock_error(tmp_path):
    import multiprocessing

    path = tmp_path / "f.duckdb"
    with FeatureStore(path):
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            message = pool.apply(_open_and_report, (str(path),))
    assert "locked by PID" in message and "--workspace" in message


def _open_and_report(path: str) -> str:
    try:
        FeatureStore(path).close()
    except WorkspaceLockedError as exc:
        return str(exc)
    return "opened"


def test_waiting_writer_gets_the_store_once_the_holder_leaves(tmp_path):
    import multiprocessing
    import time

    path = tmp_path / "f.duckdb"
    FeatureStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), 3.0, ready))
    holder.start()
    assert ready.wait(30)
    start = time.monotonic()
    with FeatureStore(path, wait_seconds=30) as store:
        assert store.count("runs") == 0
    assert time.monotonic() - start > 1.0  # it really waited for the holder
    holder.join()


def _hold(path: str, seconds: float, ready) -> None:
    import time

    with FeatureStore(path):
        ready.set()
        time.sleep(seconds)


def test_vectors_follow_the_text_not_the_file(tmp_path):
    # The same file read by two extractors: where the text differs, so must the vector; where it is
    # the same text, the vector is shared and nothing is embedded twice.
    with FeatureStore(tmp_path / "f.duckdb") as store:
        store.begin_run("r1", "test", {})
        store.record_files("r1", "ex1", _records(), LABELS)
        store.register_embedder("emb", "model", {}, 2)
        store.add_embeddings(["h1", "h2"], np.array([[1, 0], [0, 1]], dtype=np.float32), "emb", "ex1")
        reread = [
            FileRecord("/a.pdf", "h1", 10, Extraction("fallback_ok", "alpha text, read better", 1)),
            FileRecord("/b.pdf", "h2", 10, Extraction("ok", "beta text", 1)),
        ]
        store.begin_run("r2", "test", {})
        store.record_files("r2", "ex2", reread, LABELS)
        assert store.missing_embeddings(["h1", "h2"], "emb", "ex2") == ["h1"]
        np.testing.assert_array_equal(store.load_vectors(["h2"], "emb", "ex2"), [[0, 1]])
        store.add_embeddings(["h1"], np.array([[5, 5]], dtype=np.float32), "emb", "ex2")
        np.testing.assert_array_equal(store.load_vectors(["h1", "h2"], "emb", "ex2"), [[5, 5], [0, 1]])
        np.testing.assert_array_equal(store.load_vectors(["h1"], "emb", "ex1"), [[1, 0]])  # ex1's text keeps its


def test_a_workspace_with_vectors_keyed_by_file_is_migrated(tmp_path):
    import duckdb

    path = tmp_path / "f.duckdb"
    with FeatureStore(path) as store:
        store.begin_run("r1", "test", {})
        store.record_files("r1", "ex1", _records(), LABELS)
    con = duckdb.connect(str(path))  # what an earlier docscale left: no text_hash, vectors by content hash
    con.execute("ALTER TABLE extractions DROP COLUMN text_hash")
    con.execute("CREATE TABLE embeddings_2 (content_hash VARCHAR, embedder VARCHAR, vector FLOAT[2])")
    con.execute("INSERT INTO embeddings_2 VALUES ('h1', 'emb', [1, 2]), ('h2', 'emb', [3, 4])")
    con.execute("INSERT INTO embedders VALUES ('emb', 'model', '{}', 2, now())")
    con.close()
    with FeatureStore(path) as store:
        assert store.missing_embeddings(["h1", "h2", "h4"], "emb", "ex1") == ["h4"]
        np.testing.assert_array_equal(store.load_vectors(["h2", "h1"], "emb", "ex1"), [[3, 4], [1, 2]])
        assert store.count("text_embeddings_2") == 2


def test_ctrl_c_during_a_query_is_a_keyboard_interrupt_and_the_store_stays_usable(tmp_path):
    """DuckDB turns a SIGINT that lands mid-query into its own exception; the conductors answer Ctrl-C
    (KeyboardInterrupt) with one line and exit 130, so the store hands it on as a KeyboardInterrupt.
    con.interrupt() is what DuckDB's own SIGINT handling calls."""
    import threading

    with FeatureStore(tmp_path / "f.duckdb") as store:
        timer = threading.Timer(0.5, store.con.interrupt)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            store.con.execute("SELECT count(*) FROM range(1000000000000) a")
        timer.join()
        assert store.con.execute("SELECT 42").fetchall() == [(42,)]


def test_ctrl_c_while_duckdb_reads_arrow_data_is_a_keyboard_interrupt(tmp_path):
    """A SIGINT that lands in Arrow code DuckDB is reading (registering a batch of new rows) comes back
    from DuckDB as an InvalidInputException naming the KeyboardInterrupt; the store hands on the interrupt."""
    import pyarrow as pa

    schema = pa.schema([("a", pa.int64())])

    def batches():
        yield pa.record_batch([pa.array([1, 2])], schema=schema)
        raise KeyboardInterrupt  # where Python runs the SIGINT handler: between Arrow's callbacks

    with FeatureStore(tmp_path / "f.duckdb") as store:
        with pytest.raises(KeyboardInterrupt):
            store.con.register("interrupted", pa.RecordBatchReader.from_batches(schema, batches()))
            store.con.execute("SELECT count(*) FROM interrupted").fetchall()
        assert store.con.execute("SELECT 42").fetchall() == [(42,)]


@pytest.fixture
def ctrl_c_interrupts():
    """SIGINT as a terminal has it: a suite started in the background (nohup, &) inherits it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_signal_during_a_write_is_delivered_once_the_write_is_saved(tmp_path, ctrl_c_interrupts):
    """Ctrl-C mid-write: the batch in hand is committed whole, then the interrupt arrives; a second
    Ctrl-C stops at once and rolls the write back. Either way the store stays consistent."""
    with FeatureStore(tmp_path / "f.duckdb") as store:
        store.register_embedder("emb", "model", {}, 2)
        with pytest.raises(KeyboardInterrupt), store._transaction():
            store.con.execute("INSERT INTO embedders VALUES ('a', 'm', '{}', 2, now())")
            signal.raise_signal(signal.SIGINT)
            store.con.execute("INSERT INTO embedders VALUES ('b', 'm', '{}', 2, now())")
        assert store.embedder_dim("a") == store.embedder_dim("b") == 2  # both halves saved
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back

        with pytest.raises(KeyboardInterrupt), store._transaction():
            store.con.execute("INSERT INTO embedders VALUES ('c', 'm', '{}', 2, now())")
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # the user insists: stop now
            store.con.execute("INSERT INTO embedders VALUES ('d', 'm', '{}', 2, now())")
        assert store.embedder_dim("c") is None and store.embedder_dim("d") is None  # rolled back whole
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_at_any_moment_of_saving_embeddings_is_an_interrupt_and_saves_all_or_nothing(
    tmp_path, ctrl_c_interrupts
):
    """Ctrl-C at 100 moments in and around a write of 2,000 vectors: wherever it lands (in a query, in
    Arrow code DuckDB reads, between them) the caller gets a KeyboardInterrupt, never a DuckDB error, and
    the batch is in the store whole or not at all. Before, about one moment in 25 gave a DuckDB error."""
    import os
    import random
    import threading

    n = 2000
    records = [FileRecord(f"/{i}.pdf", f"h{i}", 10, Extraction("ok", f"text {i}", 1)) for i in range(n)]
    hashes = [r.content_hash for r in records]
    vectors = np.random.default_rng(0).random((n, 384), dtype=np.float32)
    moments = random.Random(0)
    with FeatureStore(tmp_path / "f.duckdb") as store:
        store.begin_run("r1", "test", {})
        store.record_files("r1", "ex1", records, {r.path: ("x", "train") for r in records})
        store.register_embedder("emb", "model", {}, 384)
        for _ in range(100):
            timer = threading.Timer(moments.uniform(0, 0.02), os.kill, [os.getpid(), signal.SIGINT])
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                store.add_embeddings(hashes, vectors, "emb", "ex1")
                timer.join()  # the signal came after the write: it lands here
            timer.join()
            assert store.count("text_embeddings_384") in (0, n)
            store.con.execute("DELETE FROM text_embeddings_384")


def test_an_ignored_signal_stays_ignored_during_a_write(tmp_path):
    """A process that ignores SIGINT (started with nohup or &) is not stopped by it mid-write either."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with FeatureStore(tmp_path / "f.duckdb") as store, store._transaction():
            store.con.execute("INSERT INTO embedders VALUES ('a', 'm', '{}', 2, now())")
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    with FeatureStore(tmp_path / "f.duckdb") as store:
        assert store.embedder_dim("a") == 2


def test_a_batch_too_small_to_judge_neither_extends_nor_breaks_the_drift_streak(tmp_path):
    """The loop retrains after monitor.retrain_drift_streak drifting batches in a row; a tiny batch between
    them says nothing about drift and must not reset the count."""
    with FeatureStore(tmp_path / "f.duckdb") as store:
        for batch, decision, drift in [
            ("a", "drift_no_labels", True),
            ("b", "not_judged", False),
            ("c", "drift_no_labels", True),
        ]:
            store.record_decision(batch, {"decision": decision, "drift_detected": drift})
        assert store.drift_streak() == 2
        store.record_decision("d", {"decision": "no_drift", "drift_detected": False})
        assert store.drift_streak() == 0
