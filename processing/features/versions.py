"""Immutable, content-addressed feature versions: commit, load, list, diff, export.

Part of FeatureStore (processing/features/store.py), kept apart to keep each file about one thing; it
reaches DuckDB only through the store's connection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

# A member's vector: its file's text as the version's extractor read it, embedded by the version's embedder.
_VECTORS_OF_MEMBERS = """JOIN extractions x ON x.content_hash = m.content_hash AND x.extractor = $extractor
               JOIN text_embeddings_{dim} v ON v.text_hash = x.text_hash AND v.embedder = $embedder"""


class UnknownVersionError(LookupError):
    pass


@dataclass(frozen=True)
class Member:
    content_hash: str
    label: str
    split: str


@dataclass
class Features:
    version_id: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_heldout: np.ndarray
    y_heldout: np.ndarray


@dataclass
class VersionRows:
    hashes: list[str]
    labels: list[str]  # "" where a member has no label
    lengths: np.ndarray  # extracted characters
    vectors: np.ndarray


class VersionsMixin:
    """The version half of FeatureStore; expects the store's `con`, `_one`, `_transaction`, `embedder_dim`."""

    con: Any

    # -- feature versions -------------------------------------------------------------------------
    def commit_version(
        self, members: Sequence[Member], source: str, extractor: str, embedder: str, params: dict[str, Any]
    ) -> tuple[str, bool]:
        """Commit an immutable version; returns (version_id, created). Same inputs -> same id."""
        version_id = version_id_for(members, extractor, embedder, params)
        if self._one("SELECT 1 FROM feature_versions WHERE version_id = ?", [version_id]):
            return version_id, False
        parent = self._one(
            "SELECT version_id FROM feature_versions WHERE embedder = ? ORDER BY created_at DESC LIMIT 1",
            [embedder],
        )
        dim = self.embedder_dim(embedder)
        n_train = sum(m.split == "train" for m in members)
        table = pa.table(
            {
                "version_id": [version_id] * len(members),
                "content_hash": [m.content_hash for m in members],
                "label": [m.label for m in members],
                "split": [m.split for m in members],
            }
        )
        with self._transaction():
            self.con.execute(
                "INSERT INTO feature_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    version_id,
                    parent[0] if parent else None,
                    source,
                    extractor,
                    embedder,
                    json.dumps(params),
                    _now(),
                    n_train,
                    len(members) - n_train,
                    len({m.label for m in members}),
                    dim,
                ],
            )
            self.con.register("new_members", table)
            self.con.execute("INSERT INTO feature_members SELECT * FROM new_members")
            self.con.unregister("new_members")
        return version_id, True

    def load_features(self, version_id: str) -> Features:
        info = self.version(version_id)
        table = self.con.sql(
            f"""SELECT m.split, m.label, v.vector FROM feature_members m
               {_VECTORS_OF_MEMBERS.format(dim=int(info["dim"]))}
               WHERE m.version_id = $version ORDER BY m.split, m.content_hash""",
            params={"embedder": info["embedder"], "extractor": info["extractor"], "version": version_id},
        ).to_arrow_table()
        expected = info["n_train"] + info["n_heldout"]
        if table.num_rows != expected:
            raise RuntimeError(f"feature version {version_id}: {table.num_rows} vectors for {expected} members")
        split = np.asarray(table["split"].to_pylist())
        labels = np.asarray(table["label"].to_pylist())
        vectors = table["vector"].combine_chunks()
        x = vectors.flatten().to_numpy().reshape(table.num_rows, -1)
        train, heldout = split == "train", split == "heldout"
        return Features(version_id, x[train], labels[train], x[heldout], labels[heldout])

    def version_rows(self, version_id: str, splits: tuple[str, ...] | None = None) -> VersionRows:
        """Members of a version (of the given splits, default all) with vectors, labels and text lengths."""
        info = self.version(version_id)
        wanted = list(splits) if splits else ["train", "heldout", "batch"]
        table = self.con.sql(
            f"""SELECT m.content_hash, m.label, x.chars, v.vector FROM feature_members m
               {_VECTORS_OF_MEMBERS.format(dim=int(info["dim"]))}
               WHERE m.version_id = $version AND list_contains($splits, m.split) ORDER BY m.content_hash""",
            params={
                "embedder": info["embedder"],
                "extractor": info["extractor"],
                "version": version_id,
                "splits": wanted,
            },
        ).to_arrow_table()
        vectors = table["vector"].combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
        return VersionRows(
            table["content_hash"].to_pylist(),
            [label or "" for label in table["label"].to_pylist()],
            np.asarray(table["chars"].to_pylist(), dtype=float),
            vectors,
        )

    def sample_texts(self, version_id: str, n: int, splits: tuple[str, ...] | None = None) -> list[str]:
        """The first 4,000 characters of up to n members' texts: a fixed sample (by content hash), so
        that monitoring reads a bounded amount of text at any corpus size."""
        info = self.version(version_id)
        rows = self.con.execute(
            """SELECT left(e.text, 4000) FROM feature_members m
               JOIN extractions e ON e.content_hash = m.content_hash AND e.extractor = ?
               WHERE m.version_id = ? AND list_contains(?, m.split) AND e.text IS NOT NULL
               ORDER BY hash(m.content_hash), m.content_hash LIMIT ?""",
            [info["extractor"], version_id, list(splits) if splits else ["train", "heldout", "batch"], n],
        ).fetchall()
        return [t for (t,) in rows]

    def version_members(self, version_id: str) -> list[Member]:
        rows = self.con.execute(
            "SELECT content_hash, label, split FROM feature_members WHERE version_id = ? ORDER BY split, content_hash",
            [version_id],
        ).fetchall()
        return [Member(*r) for r in rows]

    def heldout_hashes(self, version_id: str) -> list[str]:
        """The held-out members' content hashes, in the order of load_features' held-out rows."""
        rows = self.con.execute(
            "SELECT content_hash FROM feature_members WHERE version_id = ? AND split = 'heldout' ORDER BY content_hash",
            [version_id],
        ).fetchall()
        return [h for (h,) in rows]

    def member_names(self, version_id: str, split: str = "train") -> list[str]:
        """A path each member of `split` was read from (the first by name when several files had the same
        bytes; "" when no run recorded one), in the order of load_features' rows of that split."""
        rows = self.con.execute(
            """SELECT m.content_hash, coalesce(min(r.path), '') FROM feature_members m
               LEFT JOIN run_inputs r ON r.content_hash = m.content_hash
               WHERE m.version_id = ? AND m.split = ? GROUP BY m.content_hash ORDER BY m.content_hash""",
            [version_id, split],
        ).fetchall()
        return [path for _, path in rows]

    def load_texts(self, version_id: str) -> tuple[list[str], list[str]]:
        """(train texts, held-out texts) of a version, in the same order as load_features' rows."""
        info = self.version(version_id)
        rows = self.con.execute(
            """SELECT m.split, e.text FROM feature_members m
               JOIN extractions e ON e.content_hash = m.content_hash AND e.extractor = ?
               WHERE m.version_id = ? ORDER BY m.split, m.content_hash""",
            [info["extractor"], version_id],
        ).fetchall()
        return [t for s, t in rows if s == "train"], [t for s, t in rows if s == "heldout"]

    def version(self, version_id: str) -> dict[str, Any]:
        cur = self.con.execute("SELECT * FROM feature_versions WHERE version_id = ?", [version_id])
        rows = cur.fetchall()
        if not rows:
            raise UnknownVersionError(
                f"no feature version {version_id!r}; list them with python -m processing.features list"
            )
        return dict(zip([d[0] for d in cur.description], rows[0], strict=True))

    def versions(self) -> list[dict[str, Any]]:
        """Every version, oldest first, with `splits`: its members counted by split (train, heldout, and
        batch for a batch the loop scored)."""
        cur = self.con.execute("SELECT * FROM feature_versions ORDER BY created_at")
        names = [d[0] for d in cur.description]
        versions = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        counts: dict[str, dict[str, int]] = {}
        for version_id, split, n in self.con.execute(
            "SELECT version_id, split, count(*) FROM feature_members GROUP BY ALL"
        ).fetchall():
            counts.setdefault(version_id, {})[split] = n
        return [{**v, "splits": counts.get(v["version_id"], {})} for v in versions]

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed from version a to version b: members added, removed, relabelled; params."""
        va, vb = self.version(a), self.version(b)
        rows = self.con.execute(
            """SELECT
                 count(*) FILTER (WHERE x.content_hash IS NULL),
                 count(*) FILTER (WHERE y.content_hash IS NULL),
                 count(*) FILTER (WHERE x.content_hash IS NOT NULL AND y.content_hash IS NOT NULL
                                  AND x.label <> y.label)
               FROM (SELECT * FROM feature_members WHERE version_id = ?) x
               FULL OUTER JOIN (SELECT * FROM feature_members WHERE version_id = ?) y
                 ON x.content_hash = y.content_hash AND x.split = y.split""",
            [a, b],
        ).fetchall()[0]
        changed = {k: (va[k], vb[k]) for k in ("source", "extractor", "embedder", "params", "dim") if va[k] != vb[k]}
        return {"a": a, "b": b, "added": rows[0], "removed": rows[1], "relabelled": rows[2], "changed": changed}

    def export(self, version_id: str, folder: Path) -> list[Path]:
        """Write a version's members and vectors as Parquet (one file per split) plus its lineage as JSON."""
        info = self.version(version_id)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        params = {"embedder": info["embedder"], "extractor": info["extractor"], "version": version_id}
        for split in ("train", "heldout"):
            target = folder / f"{split}.parquet"
            partial = folder / f".{split}.parquet.partial"  # renamed once whole: a full disk leaves no half file
            try:
                self.con.execute(
                    f"""COPY (SELECT m.content_hash, m.label, v.vector FROM feature_members m
                        {_VECTORS_OF_MEMBERS.format(dim=int(info["dim"]))}
                        WHERE m.version_id = $version AND m.split = $split ORDER BY m.content_hash)
                        TO '{_sql_path(partial)}' (FORMAT parquet)""",
                    {**params, "split": split},
                )
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
            written.append(target)
        lineage = folder / "version.json"
        lineage.write_text(json.dumps(info, indent=2, default=str))
        return [*written, lineage]


def version_id_for(members: Sequence[Member], extractor: str, embedder: str, params: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([extractor, embedder, params], sort_keys=True).encode())
    for m in sorted(members, key=lambda m: (m.split, m.content_hash)):
        digest.update(f"{m.split}\t{m.content_hash}\t{m.label}\n".encode())
    return "fv-" + digest.hexdigest()[:16]


def _sql_path(path: Path) -> str:
    return str(Path(path).resolve()).replace("'", "''")


def _now() -> datetime:
    return datetime.now(UTC)
