"""The MLOps loop's state in the feature store: labels that arrive over time, and one decision per batch.

Labels are keyed by content hash (the same document under a new path keeps its label); a later label for
the same document replaces the earlier one. A batch's decision row is written last, so a batch without
one was not finished, and a batch with one is never scored, decided or promoted again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

CYCLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cycle_labels (
    content_hash VARCHAR PRIMARY KEY, label VARCHAR, batch_id VARCHAR, source VARCHAR, added_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS decisions (
    batch_id VARCHAR PRIMARY KEY, input VARCHAR, decided_at TIMESTAMPTZ, decision VARCHAR, reason VARCHAR,
    drift_detected BOOLEAN, domain_auc DOUBLE, mmd_p DOUBLE, new_labels INTEGER, labelled_macro_f1 DOUBLE,
    champion_before VARCHAR, champion_after VARCHAR, challenger_version VARCHAR, feature_version VARCHAR,
    details JSON);
"""


class CyclesMixin:
    """The cycle half of FeatureStore; expects the store's `con`."""

    con: Any

    def add_labels(self, labels: dict[str, str], batch_id: str, source: str) -> int:
        """Record content_hash -> label; returns how many are new or changed."""
        changed = 0
        now = datetime.now(UTC)
        for content_hash, label in labels.items():
            old = self.con.execute("SELECT label FROM cycle_labels WHERE content_hash = ?", [content_hash]).fetchone()
            if old and old[0] == label:
                continue
            changed += 1
            self.con.execute(
                "INSERT OR REPLACE INTO cycle_labels VALUES (?, ?, ?, ?, ?)",
                [content_hash, label, batch_id, source, now],
            )
        return changed

    def labels_outside(self, version_id: str, extractor: str) -> dict[str, str]:
        """Labelled documents (with usable text) that are not members of `version_id`: new since it."""
        rows = self.con.execute(
            """SELECT l.content_hash, l.label FROM cycle_labels l
               JOIN extractions x ON x.content_hash = l.content_hash AND x.extractor = ?
                                 AND x.outcome IN ('ok', 'fallback_ok')
               WHERE l.content_hash NOT IN (SELECT content_hash FROM feature_members WHERE version_id = ?)
               ORDER BY l.content_hash""",
            [extractor, version_id],
        ).fetchall()
        return dict(rows)

    def hashes_of_paths(self, paths: list[str]) -> dict[str, str]:
        """The content hash each path had when last seen by any run (labels may name earlier batches' files)."""
        if not paths:
            return {}
        rows = self.con.execute(
            """SELECT path, arg_max(content_hash, started_at) FROM run_inputs i JOIN runs r USING (run_id)
               WHERE path IN (SELECT unnest($paths)) AND content_hash <> '' GROUP BY path""",
            {"paths": paths},
        ).fetchall()
        return dict(rows)

    def record_decision(self, batch_id: str, row: dict[str, Any]) -> None:
        columns = [
            "input", "decision", "reason", "drift_detected", "domain_auc", "mmd_p", "new_labels",
            "labelled_macro_f1", "champion_before", "champion_after", "challenger_version", "feature_version",
        ]  # fmt: skip
        values = [row.get(c) for c in columns]
        self.con.execute(
            f"INSERT INTO decisions (batch_id, decided_at, {', '.join(columns)}, details) "
            f"VALUES (?, ?, {', '.join('?' for _ in columns)}, ?)",
            [batch_id, datetime.now(UTC), *values, json.dumps(row, default=str)],
        )

    def decision(self, batch_id: str) -> dict[str, Any] | None:
        found = self.con.execute("SELECT details FROM decisions WHERE batch_id = ?", [batch_id]).fetchone()
        return json.loads(found[0]) if found else None

    def decisions(self) -> list[dict[str, Any]]:
        rows = self.con.execute("SELECT details FROM decisions ORDER BY decided_at").fetchall()
        return [json.loads(r[0]) for r in rows]

    def drift_streak(self) -> int:
        """How many of the latest decisions in a row saw drift. A batch too small to judge is skipped: it
        neither extends the streak nor breaks it."""
        streak = 0
        rows = self.con.execute(
            "SELECT drift_detected FROM decisions WHERE decision <> 'not_judged' ORDER BY decided_at DESC"
        ).fetchall()
        for (detected,) in rows:
            if not detected:
                break
            streak += 1
        return streak
