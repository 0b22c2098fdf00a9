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
import sys
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
    return [prefix + f for f in _entries(filesystem, base)]


def _entries(filesystem: fs.FileSystem, base: str) -> list[str]:
    """Sorted paths of every entry under base that is not a directory, hidden ones aside.

    Locally the tree is walked without following links to directories: a link that points back up
    (`ln -s .. up`) or out of the tree is an entry of its own, which extraction records as unreadable,
    instead of a loop that multiplies and relabels files. FIFOs, dangling links and names that are not
    UTF-8 are entries too: each gets one outcome, none is silently dropped.
    """
    if not isinstance(filesystem, fs.LocalFileSystem):
        found = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
        return sorted(f.path for f in found if f.type == fs.FileType.File and not Path(f.path).name.startswith("."))
    entries, stack = [], [base]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        entries.append(entry.path)
        except OSError as exc:
            raise InputError(f"--input: cannot list {display_path(folder)}: {exc.strerror}") from None
    return sorted(entries, key=lambda p: p.encode("utf-8", "surrogateescape"))


def display_path(path: str) -> str:
    """A path as valid UTF-8 text (for DuckDB, CSV, logs): bytes a file name holds that are not UTF-8
    are shown as \\xNN. The original string still opens the file."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def list_input(root: str, labels_csv: str | None = None, heldout_fraction: float = 0.2) -> list[InputFile]:
    """All files under root with their labels and a stable train/held-out split."""
    filesystem, base = filesystem_for(root)
    info = filesystem.get_file_info(base)
    if info.type != fs.FileType.Directory:
        raise InputError(f"--input {root}: not a folder (or not readable)")
    files = _entries(filesystem, base)
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
    bucket = int(hashlib.sha256(relpath.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if bucket < heldout_fraction else "train"


def read_label_rows(labels_csv: str) -> list[tuple[int, str, str]]:
    """(line number, path as written, label) for each row of a path,label CSV (an optional header)."""
    try:
        text = read_bytes(labels_csv).decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"--labels {labels_csv}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--labels {labels_csv}: cannot read it as UTF-8 text ({exc})") from exc
    rows = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (line_no == 1 and [c.strip().lower() for c in row] == ["path", "label"]):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InputError(f"{labels_csv}:{line_no}: expected 'path,label', got {','.join(row)!r}")
        rows.append((line_no, row[0].strip(), row[1].strip()))
    return rows


def resolve_label_path(path: str, base: str) -> str:
    """A labels CSV's path: absolute, or relative to the input folder."""
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(base, path))


def _read_labels_csv(labels_csv: str, base: str, files: set[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line_no, path, label in read_label_rows(labels_csv):
        full = resolve_label_path(path, base)
        if full not in files:
            raise InputError(f"{labels_csv}:{line_no}: {path} is not a file under the input folder")
        if full in labels:
            if labels[full] != label:
                raise InputError(
                    f"{labels_csv}:{line_no}: {path} is labelled {label!r} here and {labels[full]!r} on line "
                    f"{first_line[full]}; keep one of the two rows"
                )
            print(f"[docscale] warning: {labels_csv}:{line_no}: repeats line {first_line[full]}", file=sys.stderr)
            continue
        labels[full], first_line[full] = label, line_no
    return labels
