"""Users' own corpora: a folder of PDFs (local or any pyarrow filesystem, e.g. s3://bucket/docs) with
labels from sub-folder names (DIR/<label>/*.pdf) or from a CSV of `path,label` rows.

Every file found is an input, PDF or not: the extractor gives each one its outcome, so nothing is
silently skipped. Files without a label are extracted and embedded for prediction, not trained on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs


class InputError(ValueError):
    """A problem with the user's input folder or label file; the message says what and where."""


@dataclass(frozen=True)
class InputFile:
    uri: str
    label: str | None
    split: str  # "train", "heldout", or "predict" (no label)


def filesystem_for(uri: str) -> tuple[fs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path for a local path or a URI (s3://, gs://, file://)."""
    if "://" not in uri:
        return fs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    return fs.FileSystem.from_uri(uri)


def join(root: str, relpath: str) -> str:
    """root/relpath for a local path or a URI."""
    return f"{root.rstrip('/')}/{relpath}" if "://" in root else str(Path(root) / relpath)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file; readers never see half of it (local: temp name + rename; object stores: one PUT)."""
    if "://" not in uri:
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)
        return
    filesystem, path = filesystem_for(uri)
    filesystem.create_dir(posixpath.dirname(path), recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)


def existing_relpaths(root: str) -> set[str]:
    """Relative paths of every file under root (one listing, not one request per file)."""
    filesystem, base = filesystem_for(root)
    if filesystem.get_file_info(base).type != fs.FileType.Directory:
        return set()
    found = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
    return {posixpath.relpath(f.path, base) for f in found if f.type == fs.FileType.File}


def read_bytes(uri: str) -> bytes:
    if "://" not in uri:
        return Path(uri).read_bytes()
    filesystem, path = filesystem_for(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def list_files(root: str) -> list[str]:
    """Every file under root (hidden files aside), as URIs the readers accept."""
    filesystem, base = filesystem_for(root)
    if filesystem.get_file_info(base).type != fs.FileType.Directory:
        raise InputError(f"--input {root}: not a folder (or not readable)")
    prefix = root.split("://")[0] + "://" if "://" in root else ""
    return [
        prefix + f.path
        for f in sorted(filesystem.get_file_info(fs.FileSelector(base, recursive=True)), key=lambda f: f.path)
        if f.type == fs.FileType.File and not Path(f.path).name.startswith(".")
    ]


def list_input(root: str, labels_csv: str | None = None, heldout_fraction: float = 0.2) -> list[InputFile]:
    """All files under root with their labels and a stable train/held-out split."""
    filesystem, base = filesystem_for(root)
    info = filesystem.get_file_info(base)
    if info.type != fs.FileType.Directory:
        raise InputError(f"--input {root}: not a folder (or not readable)")
    files = sorted(
        f.path
        for f in filesystem.get_file_info(fs.FileSelector(base, recursive=True))
        if f.type == fs.FileType.File and not Path(f.path).name.startswith(".")
    )
    if not files:
        raise InputError(f"--input {root}: the folder holds no files")
    prefix = root.split("://")[0] + "://" if "://" in root else ""
    if labels_csv:
        labels = _read_labels_csv(labels_csv, base, set(files))
    else:
        labels = {f: Path(f).relative_to(base).parts[0] for f in files if len(Path(f).relative_to(base).parts) > 1}
    distinct = sorted(set(labels.values()))
    if len(distinct) < 2:
        found = f"only {distinct[0]!r}" if distinct else "none"
        raise InputError(
            f"--input {root}: need at least 2 labels to train a classifier, found {found}; put each class's "
            "PDFs in its own sub-folder (DIR/<label>/*.pdf) or pass --labels CSV with path,label rows"
        )
    return [
        InputFile(
            prefix + f,
            labels.get(f),
            _split(Path(f).relative_to(base).as_posix(), heldout_fraction) if f in labels else "predict",
        )
        for f in files
    ]


def _split(relpath: str, heldout_fraction: float) -> str:
    # A hash of the path, not a random draw: the same file lands in the same split on every run.
    bucket = int(hashlib.sha256(relpath.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if bucket < heldout_fraction else "train"


def _read_labels_csv(labels_csv: str, base: str, files: set[str]) -> dict[str, str]:
    try:
        text = read_bytes(labels_csv).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--labels {labels_csv}: cannot read it as UTF-8 text ({exc})") from exc
    labels: dict[str, str] = {}
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (line_no == 1 and [c.strip().lower() for c in row] == ["path", "label"]):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InputError(f"{labels_csv}:{line_no}: expected 'path,label', got {','.join(row)!r}")
        path = row[0].strip()
        full = posixpath.normpath(path if path.startswith("/") else posixpath.join(base, path))
        if full not in files:
            raise InputError(f"{labels_csv}:{line_no}: {path} is not a file under the input folder")
        labels[full] = row[1].strip()
    return labels
