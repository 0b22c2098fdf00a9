"""The rows a batch scorer writes, one per file: processing.predict's Parquet/CSV and the loop's
predictions.parquet share them, so both say the same of the same file.

A file's row holds its outcome, the message saying why it has no label (or which pages OCR read), its
quality flags, and for a usable file or a byte-for-byte copy of one the label and every class's probability.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingestion.extract import USABLE

SCORED = (*USABLE, "duplicate")  # a duplicate has the same bytes as a scored file: the same prediction
CHUNK = 10_000  # rows written at a time: memory stays flat however many files there are


def prediction_schema(classes: Sequence[str], with_hash: bool = False) -> pa.Schema:
    head = ["path", *(["content_hash"] if with_hash else []), "outcome", "message", "flags", "label"]
    return pa.schema(
        [(name, pa.string()) for name in head]
        + [("probability", pa.float64())]
        + [(f"p_{c}", pa.float64()) for c in classes]
    )


def prediction_rows(
    paths: Sequence[str],
    files: dict[str, tuple[str, str, str, str]],
    probabilities: dict[str, np.ndarray],
    schema: pa.Schema,
) -> pa.Table:
    """`files`: path -> (content hash, outcome, message, flags); `probabilities`: content hash -> one
    probability per class, in the schema's p_ order."""
    classes = [name[2:] for name in schema.names if name.startswith("p_")]
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for path in paths:
        digest, outcome, message, flags = files[path]
        row = probabilities.get(digest) if outcome in SCORED else None
        values = {"path": path, "content_hash": digest, "outcome": outcome, "message": message, "flags": flags}
        values["label"] = classes[int(row.argmax())] if row is not None else None
        values["probability"] = float(row.max()) if row is not None else None
        values |= {f"p_{c}": float(row[i]) if row is not None else None for i, c in enumerate(classes)}
        for name in schema.names:
            columns[name].append(values[name])
    return pa.table(columns, schema=schema)


@dataclass
class Written:
    """What a prediction file holds: labels given, and why the other rows have none."""

    labels: Counter[str] = field(default_factory=Counter)  # label -> rows
    without: Counter[str] = field(default_factory=Counter)  # outcome -> rows without a label
    uncertain: int = 0  # rows whose label has a probability under UNCERTAIN

    @property
    def predicted(self) -> int:
        return sum(self.labels.values())


UNCERTAIN = 0.5  # a label its model gives less than even odds: worth a person's look


def write_prediction_file(
    out: Path,
    paths: Sequence[str],
    files: dict[str, tuple[str, str, str, str]],
    probabilities: dict[str, np.ndarray],
    classes: Sequence[str],
    with_hash: bool = False,
) -> Written:
    """One row per path to `out` (.parquet, or .csv), CHUNK rows at a time, under a temporary name renamed
    when complete: a kill leaves the old file or the new one, never half of one. `files` and
    `probabilities`: as prediction_rows."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    schema = prediction_schema(classes, with_hash)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    csv = out.suffix.lower() == ".csv"
    writer = pacsv.CSVWriter(str(tmp), schema) if csv else pq.ParquetWriter(str(tmp), schema)
    written = Written()
    try:
        try:
            for start in range(0, len(paths), CHUNK):
                table = prediction_rows(paths[start : start + CHUNK], files, probabilities, schema)
                columns = (table.column(name).to_pylist() for name in ("label", "probability", "outcome"))
                for label, probability, outcome in zip(*columns, strict=True):
                    if label is None:
                        written.without[outcome] += 1
                    else:
                        written.labels[label] += 1
                        written.uncertain += probability < UNCERTAIN
                writer.write_table(table)
        finally:
            writer.close()
    except BaseException:
        tmp.unlink(missing_ok=True)  # a partial file, maybe on a full disk
        raise
    tmp.replace(out)
    return written


def labels_line(labels: dict[str, int], uncertain: int, shown: int = 8) -> str:
    """How the predictions spread over the classes (the commonest first), and how many are uncertain."""
    ranked = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))
    spread = ", ".join(f"{label} {n}" for label, n in ranked[:shown])
    rest = sum(n for _, n in ranked[shown:])
    more = len(ranked) - shown
    spread += f", and {rest} in {more} more class{'es' if more > 1 else ''}" if rest else ""
    return f"  labels: {spread}; under {UNCERTAIN} probability (worth a look): {uncertain}"
