"""The feature store: every DuckDB read and write of docscale lives in this package (this file and
versions.py, which works through this file's connection), and only the driver calls it.

Tables
- extractions  (content_hash, extractor) -> outcome, message, pages, text stats, text, text_hash
- embedders    embedder id -> model, parameters, dimension
- text_embeddings_<dim>  (text_hash, embedder) -> FLOAT[dim] vector
- runs, run_inputs  one row per pipeline run, one row per input file of that run (its outcome)
- feature_versions, feature_members  immutable, content-addressed feature sets with lineage

Extractions and embeddings are content-addressed caches committed batch by batch, so a killed run
loses at most the batch in flight and a rerun redoes nothing. Vectors are keyed by the hash of the text
they embed, not by the file's: the text of a file depends on the extractor (backend, settings), so a file
extracted anew gets the vector of its new text, while the same text (another extractor, a copy) is
embedded once. A feature version is committed in one transaction: it exists whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ingestion.extract import TRANSIENT, FileRecord
from ingestion.sources import display_path
from processing.features.cycles import CYCLE_SCHEMA, CyclesMixin
from processing.features.versions import Member, VersionsMixin
from processing.signals import HeldSignals

SCHEMA = """
CREATE TABLE IF NOT EXISTS extractions (
    content_hash VARCHAR, extractor VARCHAR, outcome VARCHAR, message VARCHAR,
    size_bytes BIGINT, pages INTEGER, chars INTEGER, words INTEGER, seconds DOUBLE, text VARCHAR,
    backend VARCHAR, flags VARCHAR, created_at TIMESTAMPTZ DEFAULT current_timestamp, text_hash VARCHAR,
    PRIMARY KEY (content_hash, extractor));
CREATE TABLE IF NOT EXISTS embedders (
    embedder VARCHAR PRIMARY KEY, model VARCHAR, params JSON, dim INTEGER, created_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, source VARCHAR, config JSON, started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, status VARCHAR, feature_version VARCHAR);
CREATE TABLE IF NOT EXISTS run_inputs (
    run_id VARCHAR, path VARCHAR, content_hash VARCHAR, label VARCHAR, split VARCHAR,
    outcome VARCHAR, message VARCHAR, PRIMARY KEY (run_id, path));
CREATE TABLE IF NOT EXISTS feature_versions (
    version_id VARCHAR PRIMARY KEY, parent_version VARCHAR, source VARCHAR, extractor VARCHAR,
    embedder VARCHAR, params JSON, created_at TIMESTAMPTZ, n_train INTEGER, n_heldout INTEGER,
    n_labels INTEGER, dim INTEGER);
CREATE TABLE IF NOT EXISTS feature_members (
    version_id VARCHAR, content_hash VARCHAR, label VARCHAR, split VARCHAR,
    PRIMARY KEY (version_id, split, content_hash));
"""
# Vectors live in one table per dimension, `text_embeddings_<dim>`, as fixed-size FLOAT[dim] arrays:
# they load into numpy as one contiguous buffer, and a model with another width gets its own table.
VECTORS = "text_embeddings_{dim}"
USABLE_SQL = "('ok', 'fallback_ok')"


@dataclass
class StoreConfig:
    """store.* in the config."""

    lock_wait_seconds: float = 0.0  # another run holds the workspace: 0 = fail at once naming it; N = wait N s

    def validate(self) -> None:
        if not 0.0 <= self.lock_wait_seconds <= 7 * 24 * 3600:
            raise ValueError(
                f"store.lock_wait_seconds must be between 0 and 604800 (a week); got {self.lock_wait_seconds}"
            )


class WorkspaceLockedError(RuntimeError):
    pass


class WorkspaceDamagedError(RuntimeError):
    pass


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


class FeatureStore(VersionsMixin, CyclesMixin):
    def __init__(self, path: Path, wait_seconds: float = 0.0, read_only: bool = False) -> None:
        """Open (or create) the store. DuckDB allows one writing process per file: if another holds it,
        wait up to `wait_seconds`, then fail with a message naming the holder."""
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no feature store at {self.path}; run python -m processing.run first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                self.con = _Interruptible(duckdb.connect(str(self.path), read_only=read_only))
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise WorkspaceDamagedError(
                        f"the workspace's feature store is damaged or unreadable: {self.path}: {_line(exc)}"
                    ) from None
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                holder = re.search(r"PID (\d+)", str(exc))
                who = f"PID {holder.group(1)}" if holder else "another process"
                if read_only:  # a reader (features list/show, predict's checks) has no queue option to offer
                    raise WorkspaceLockedError(
                        f"{self.path} is being written by {who} (a docscale run); DuckDB lets no one read it "
                        "meanwhile: try again when that run has finished"
                    ) from exc
                raise WorkspaceLockedError(
                    f"{self.path} is locked by {who} (another docscale run?); wait for it to finish, "
                    "pass --set store.lock_wait_seconds=600 to queue behind it, or use another --workspace"
                ) from exc
            except duckdb.Error as exc:  # a truncated or foreign file: say so before any work, in one line
                raise WorkspaceDamagedError(
                    f"the workspace's feature store is damaged: {self.path}: {_line(exc)}; move it aside to start "
                    "afresh (extractions and embeddings will be redone)"
                ) from None
        if not read_only:
            self.con.execute(SCHEMA + CYCLE_SCHEMA)
            self._migrate()
            # We hold the only write lock, so a run still marked running died without finishing.
            self.con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")

    def _migrate(self) -> None:
        """Bring a workspace made by an earlier docscale up to this schema, in place."""
        for column in ("backend", "flags", "text_hash"):
            self.con.execute(f"ALTER TABLE extractions ADD COLUMN IF NOT EXISTS {column} VARCHAR")
        self.con.execute("UPDATE extractions SET text_hash = sha256(text) WHERE text_hash IS NULL AND text IS NOT NULL")
        # Vectors were once keyed by the file's content hash: re-key them by the hash of their text.
        old_tables = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE regexp_full_match(table_name, 'embeddings_[0-9]+')"
        ).fetchall()
        for (table,) in old_tables:
            dim = int(table.rsplit("_", 1)[1])
            with self._transaction():
                self._create_vector_table(dim)
                self.con.execute(
                    f"""INSERT INTO {VECTORS.format(dim=dim)}
                        SELECT DISTINCT ON (x.text_hash, e.embedder) x.text_hash, e.embedder, e.vector
                        FROM {table} e JOIN extractions x
                          ON x.content_hash = e.content_hash AND x.outcome IN {USABLE_SQL}
                        ON CONFLICT DO NOTHING"""
                )
                self.con.execute(f"DROP TABLE {table}")

    def _create_vector_table(self, dim: int) -> None:
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {VECTORS.format(dim=int(dim))} ("
            f"text_hash VARCHAR, embedder VARCHAR, vector FLOAT[{int(dim)}], PRIMARY KEY (text_hash, embedder))"
        )

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------------------
    def begin_run(self, run_id: str, source: str, config: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, NULL, 'running', NULL)",
            [run_id, source, json.dumps(config), _now()],
        )

    def finish_run(self, run_id: str, status: str, feature_version: str | None) -> None:
        self.con.execute(
            "UPDATE runs SET finished_at = ?, status = ?, feature_version = ? WHERE run_id = ?",
            [_now(), status, feature_version, run_id],
        )

    def ended_runs(self) -> set[str]:
        """The runs this workspace knows are over: finished, failed, or found interrupted."""
        return {row[0] for row in self.con.execute("SELECT run_id FROM runs WHERE status <> 'running'").fetchall()}

    # -- extraction cache -------------------------------------------------------------------------
    def extracted_hashes(self, extractor: str) -> frozenset[str]:
        rows = self.con.execute("SELECT content_hash FROM extractions WHERE extractor = ?", [extractor]).fetchall()
        return frozenset(r[0] for r in rows)

    def record_files(
        self, run_id: str, extractor: str, records: Sequence[FileRecord], labels: dict[str, tuple[str, str]]
    ) -> None:
        """Store new extractions and one run_inputs row per file, in one transaction.

        A record whose `extraction` is None was found in the cache by the worker; its outcome is
        taken from the stored extraction.
        """
        fresh = [r for r in records if r.extraction and r.content_hash and r.extraction.outcome not in TRANSIENT]
        extractions = pa.table(
            {
                "content_hash": [r.content_hash for r in fresh],
                "extractor": [extractor] * len(fresh),
                "outcome": [r.extraction.outcome for r in fresh],
                "message": [r.extraction.message for r in fresh],
                "size_bytes": pa.array([r.size_bytes for r in fresh], pa.int64()),
                "pages": pa.array([r.extraction.pages for r in fresh], pa.int32()),
                "chars": pa.array([r.extraction.chars for r in fresh], pa.int32()),
                "words": pa.array([r.extraction.words for r in fresh], pa.int32()),
                "seconds": pa.array([r.extraction.seconds for r in fresh], pa.float64()),
                "text": [r.extraction.text for r in fresh],
                "backend": [r.extraction.backend for r in fresh],
                "flags": [",".join(r.extraction.flags) for r in fresh],
            }
        )
        inputs = pa.table(
            {
                "run_id": [run_id] * len(records),
                "path": [display_path(r.path) for r in records],
                "content_hash": [r.content_hash for r in records],
                "label": [labels[r.path][0] for r in records],
                "split": [labels[r.path][1] for r in records],
                "outcome": [r.extraction.outcome if r.extraction else None for r in records],
                "message": [r.extraction.message if r.extraction else None for r in records],
            }
        )
        with self._transaction():
            self.con.register("new_extractions", extractions)
            self.con.execute(
                "INSERT INTO extractions (content_hash, extractor, outcome, message, size_bytes, pages, chars, "
                "words, seconds, text, backend, flags, text_hash) SELECT *, sha256(text) FROM new_extractions "
                "ON CONFLICT DO NOTHING"
            )
            self.con.register("new_inputs", inputs)
            self.con.execute(
                """INSERT INTO run_inputs
                   SELECT i.run_id, i.path, i.content_hash, i.label, i.split,
                          coalesce(e.outcome, i.outcome), coalesce(e.message, i.message)
                   FROM new_inputs i LEFT JOIN extractions e
                     ON e.content_hash = i.content_hash AND e.extractor = ?
                   ON CONFLICT DO NOTHING""",
                [extractor],
            )
            self.con.unregister("new_extractions")
            self.con.unregister("new_inputs")

    def mark_duplicates(self, run_id: str) -> int:
        """The same bytes under several paths are one document: every path after the first (held-out
        copies first, then training, then unlabelled; then by path) gets the outcome `duplicate`.
        Empty files are all "the same bytes" too, but reporting them as duplicates would hide what they
        are, so they keep their own outcome."""
        before = self.outcome_counts(run_id).get("duplicate", 0)
        self.con.execute(
            """UPDATE run_inputs AS r SET outcome = 'duplicate', message = 'same bytes as ' || d.first_path
               FROM (SELECT path,
                        first_value(path) OVER w AS first_path, row_number() OVER w AS nth
                     FROM run_inputs WHERE run_id = $run AND content_hash NOT IN ('', $empty)
                     WINDOW w AS (PARTITION BY content_hash ORDER BY
                        CASE split WHEN 'heldout' THEN 0 WHEN 'train' THEN 1 ELSE 2 END, path)) d
               WHERE r.run_id = $run AND r.path = d.path AND d.nth > 1""",
            {"run": run_id, "empty": hashlib.sha256(b"").hexdigest()},
        )
        return self.outcome_counts(run_id).get("duplicate", 0) - before

    def unlabelled(self, run_id: str) -> list[tuple[str, str]]:
        """(path, content hash) of the run's extracted documents that have no label: to embed and predict."""
        return self.con.execute(
            "SELECT path, content_hash FROM run_inputs WHERE run_id = ? AND outcome IN ('ok', 'fallback_ok') "
            "AND split = 'predict' "
            "ORDER BY path",
            [run_id],
        ).fetchall()

    def unlabelled_paths(self, run_id: str) -> list[str]:
        """The paths of every file of the run that has no label, whatever its outcome: each gets a row."""
        rows = self.con.execute(
            "SELECT path FROM run_inputs WHERE run_id = ? AND split = 'predict' ORDER BY path", [run_id]
        ).fetchall()
        return [path for (path,) in rows]

    def run_files(self, run_id: str, extractor: str) -> dict[str, tuple[str, str, str, str]]:
        """path -> (content hash, outcome, message, quality flags) of the run's files: what a prediction
        row says of each (why it has no label, or what its label rests on: pages read by OCR, a long
        document read only in part)."""
        rows = self.con.execute(
            """SELECT r.path, r.content_hash, r.outcome, coalesce(r.message, ''), coalesce(e.flags, '')
               FROM run_inputs r
               LEFT JOIN extractions e ON e.content_hash = r.content_hash AND e.extractor = ?
               WHERE r.run_id = ?""",
            [extractor, run_id],
        ).fetchall()
        return {path: (digest, outcome, message, flags) for path, digest, outcome, message, flags in rows}

    def version_outcomes(self, version_id: str) -> dict[str, int]:
        """The outcome counts of the files of the latest run that produced this version ({} if none did):
        a version holds only usable documents, its run knows what else arrived."""
        row = self.con.execute(
            "SELECT run_id FROM runs WHERE feature_version = ? ORDER BY started_at DESC LIMIT 1", [version_id]
        ).fetchone()
        return self.outcome_counts(row[0]) if row else {}

    def outcome_counts(self, run_id: str) -> dict[str, int]:
        rows = self.con.execute(
            "SELECT outcome, count(*) FROM run_inputs WHERE run_id = ? GROUP BY outcome ORDER BY outcome", [run_id]
        ).fetchall()
        return dict(rows)

    def members(self, run_id: str) -> list[Member]:
        """The run's usable documents: extracted ok, labelled, each content once.

        Identical bytes under two paths count once (mark_duplicates normally did that already), and a
        training document whose content is also in the held-out set is dropped from training.
        """
        rows = self.con.execute(
            """WITH ok AS (
                   SELECT content_hash, label, split, row_number() OVER (
                       PARTITION BY content_hash, split ORDER BY path) AS nth
                   FROM run_inputs
                   WHERE run_id = ? AND outcome IN ('ok', 'fallback_ok') AND split IN ('train', 'heldout'))
               SELECT content_hash, label, split FROM ok
               WHERE nth = 1 AND NOT (split = 'train' AND content_hash IN
                   (SELECT content_hash FROM ok WHERE split = 'heldout'))
               ORDER BY split, content_hash""",
            [run_id],
        ).fetchall()
        return [Member(*r) for r in rows]

    # -- embedding cache --------------------------------------------------------------------------
    def register_embedder(self, embedder: str, model: str, params: dict[str, Any], dim: int) -> None:
        """Record what an embedder id means, and make sure its vector table exists."""
        self._create_vector_table(dim)
        self.con.execute(
            "INSERT INTO embedders VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [embedder, model, json.dumps(params, sort_keys=True), int(dim), _now()],
        )

    def embedder_info(self, embedder: str) -> dict[str, Any] | None:
        row = self._one("SELECT model, params, dim FROM embedders WHERE embedder = ?", [embedder])
        return {"model": row[0], "params": json.loads(row[1]), "dim": row[2]} if row else None

    def embedder_dim(self, embedder: str) -> int | None:
        row = self._one("SELECT dim FROM embedders WHERE embedder = ?", [embedder])
        return row[0] if row else None

    def missing_embeddings(self, hashes: Iterable[str], embedder: str, extractor: str) -> list[str]:
        """The content hashes among `hashes` whose text (as `extractor` read it) has no vector yet; one
        hash per distinct text, so a text shared by several files is embedded once."""
        wanted = sorted(set(hashes))
        dim = self.embedder_dim(embedder)
        self.con.register("wanted", pa.table({"content_hash": wanted}))
        vectors = f"ANTI JOIN {VECTORS.format(dim=dim)} v ON v.text_hash = x.text_hash AND v.embedder = $embedder"
        rows = self.con.execute(
            f"""SELECT min(w.content_hash) AS first FROM wanted w
               JOIN extractions x ON x.content_hash = w.content_hash AND x.extractor = $extractor
               {vectors if dim is not None else ""}
               GROUP BY x.text_hash ORDER BY first""",
            {"extractor": extractor, **({"embedder": embedder} if dim is not None else {})},
        ).fetchall()
        self.con.unregister("wanted")
        return [r[0] for r in rows]

    def by_length(self, hashes: Sequence[str], extractor: str) -> list[str]:
        """The hashes ordered by extracted text length, so each embedding call holds texts of similar
        length and pads little."""
        self.con.register("wanted", pa.table({"content_hash": list(hashes)}))
        rows = self.con.execute(
            """SELECT w.content_hash FROM wanted w LEFT JOIN extractions e
               ON e.content_hash = w.content_hash AND e.extractor = ? ORDER BY coalesce(e.chars, 0), w.content_hash""",
            [extractor],
        ).fetchall()
        self.con.unregister("wanted")
        return [r[0] for r in rows]

    def iter_texts(self, hashes: Sequence[str], extractor: str, chunk: int = 512) -> Iterator[tuple[str, str]]:
        """(hash, text) for the given hashes, fetched a chunk at a time so memory stays bounded."""
        for start in range(0, len(hashes), chunk):
            part = list(hashes[start : start + chunk])
            rows = self.con.execute(
                "SELECT content_hash, text FROM extractions WHERE extractor = ? AND content_hash IN "
                "(SELECT unnest(?::VARCHAR[]))",
                [extractor, part],
            ).fetchall()
            yield from rows

    def add_embeddings(self, hashes: Sequence[str], vectors: np.ndarray, embedder: str, extractor: str) -> None:
        """Store the vectors of these files' texts as `extractor` read them."""
        dim = self.embedder_dim(embedder)
        if dim != vectors.shape[1]:
            raise ValueError(f"embedder {embedder} is registered with dim {dim}, got vectors of {vectors.shape[1]}")
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        table = pa.table({"content_hash": list(hashes), "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})
        with self._transaction():
            self.con.register("new_embeddings", table)
            self.con.execute(
                f"""INSERT INTO {VECTORS.format(dim=dim)}
                    SELECT DISTINCT ON (x.text_hash) x.text_hash, $embedder, n.vector FROM new_embeddings n
                    JOIN extractions x ON x.content_hash = n.content_hash AND x.extractor = $extractor
                    ON CONFLICT DO NOTHING""",
                {"embedder": embedder, "extractor": extractor},
            )
            self.con.unregister("new_embeddings")

    def load_vectors(self, hashes: Sequence[str], embedder: str, extractor: str) -> np.ndarray:
        """Vectors of the given files' texts (as `extractor` read them), in the given order."""
        dim = self.embedder_dim(embedder)
        if dim is None or not hashes:
            return np.zeros((0, dim or 0), dtype=np.float32)
        self.con.register("wanted", pa.table({"content_hash": list(hashes), "pos": np.arange(len(hashes))}))
        table = self.con.sql(
            f"""SELECT v.vector FROM wanted w
                JOIN extractions x ON x.content_hash = w.content_hash AND x.extractor = $extractor
                JOIN {VECTORS.format(dim=dim)} v ON v.text_hash = x.text_hash AND v.embedder = $embedder
                ORDER BY w.pos""",
            params={"embedder": embedder, "extractor": extractor},
        ).to_arrow_table()
        self.con.unregister("wanted")
        if table.num_rows != len(hashes):
            raise RuntimeError(f"{len(hashes) - table.num_rows} of {len(hashes)} documents have no embedding")
        return table["vector"].combine_chunks().flatten().to_numpy().reshape(len(hashes), dim)

    def count(self, table: str) -> int:
        known = {"extractions", "embedders", "runs", "run_inputs", "feature_versions", "feature_members"}
        if table not in known and not re.fullmatch(r"text_embeddings_\d+", table):
            raise ValueError(table)
        return self._one(f"SELECT count(*) FROM {table}")[0]

    def _one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        # DuckDB 2 refuses new work on a connection with an unfinished result: always fetch to the end.
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0] if rows else None

    def _transaction(self) -> _Transaction:
        return _Transaction(self.con)


class _Transaction:
    """One write, committed whole or rolled back. Ctrl-C and SIGTERM are held until it ends: a signal
    that lands inside DuckDB's or Arrow's C code comes back as a DuckDB error rather than the interrupt
    (a traceback and exit 1, not the conductors' one line and 130), and would throw away a batch that
    was a moment from being saved. A second signal of the same kind stops at once (rolled back)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._signals = HeldSignals()

    def __enter__(self) -> None:
        self._signals.__enter__()
        try:
            self.con.execute("BEGIN TRANSACTION")
        except BaseException:
            self._signals.__exit__()
            raise

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self.con.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._signals.__exit__()


def _now() -> datetime:
    return datetime.now(UTC)


class _Interruptible:
    """The DuckDB connection, except that Ctrl-C stays a KeyboardInterrupt. DuckDB turns a SIGINT that
    lands in its calls into errors of its own (see _is_interrupt), which would escape the conductors'
    one-line handling of Ctrl-C as a traceback (exit 1 instead of 130)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, *args: Any) -> duckdb.DuckDBPyConnection:
        return _as_keyboard_interrupt(self._con.execute, *args)

    def register(self, *args: Any) -> duckdb.DuckDBPyConnection:
        return _as_keyboard_interrupt(self._con.register, *args)  # it reads the Arrow data it is given

    def sql(self, *args: Any, **kwargs: Any) -> _InterruptibleRelation:
        return _InterruptibleRelation(self._con.sql(*args, **kwargs))  # runs when its rows are fetched

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class _InterruptibleRelation:
    def __init__(self, relation: duckdb.DuckDBPyRelation) -> None:
        self._relation = relation

    def to_arrow_table(self) -> Any:
        return _as_keyboard_interrupt(self._relation.to_arrow_table)


def _as_keyboard_interrupt(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except (duckdb.InterruptException, duckdb.InvalidInputException, RuntimeError) as error:
        if _is_interrupt(error):
            raise KeyboardInterrupt from error
        raise


def _is_interrupt(error: Exception) -> bool:
    """DuckDB reports Ctrl-C three ways, depending on where the signal lands: mid-query as its own
    InterruptException, while it waits for the query to start as RuntimeError("Query interrupted"), and
    inside Arrow code it reads as bad input that names the KeyboardInterrupt."""
    if isinstance(error, duckdb.InterruptException):
        return True
    if isinstance(error, duckdb.InvalidInputException):
        return "KeyboardInterrupt" in str(error)
    return str(error) == "Query interrupted"
