"""A full disk, wherever it surfaces, as one line that says what to do.

A disk fills under whatever writes at that moment, and each writer reports it its own way: the corpus
generator and MLflow's artifact copy raise OSError (ENOSPC); DuckDB raises its own IOException or
TransactionException, text only; MLflow's SQLite store raises "database or disk is full", wrapped by
SQLAlchemy and then MLflow; a Ray task or actor arrives as RayTaskError or ActorDiedError, whose text
or chained cause carries the OSError. So the exception, its causes and the exceptions it was raised
while handling are searched, by errno where there is one and by text where there is not.

What a full disk leaves behind is safe to resume from: each stage commits whole batches (a generated PDF
appears whole or not at all, DuckDB rolls back a commit it could not write), so the rerun picks up after
the last batch stored (tests/processing/test_out_of_space.py fills a disk at each stage and resumes).
"""

from __future__ import annotations

import errno
import re
import shutil
import tempfile
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FULL_TEXTS = ("No space left on device", "database or disk is full", "Disk quota exceeded")


def out_of_space_error(exc: BaseException) -> BaseException | None:
    """The full-disk (or quota) error in `exc`'s chain, its causes and contexts included; None if none."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return current
        if any(text in str(current) for text in FULL_TEXTS):
            return current
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None)]  # Ray's own cause
    return None


def out_of_space_message(error: BaseException, workspace: Path | str, also: dict[str, Path] | None = None) -> str:
    """One line for a full disk: what could not be written, what each disk docscale writes to has left
    (the workspace's, the temporary files', and `also`'s: e.g. a command's output), and what to do."""
    lines = [_plain(line) for line in str(error).strip().splitlines()] or [type(error).__name__]
    # Ray's errors open with the task's name and carry the cause's line further down.
    what = next((line for line in lines if any(text in line for text in FULL_TEXTS)), lines[0])[:300]
    places = {"workspace": Path(workspace).resolve(), "temporary files": Path(tempfile.gettempdir())}
    places |= {name: Path(path).resolve() for name, path in (also or {}).items()}
    free = ", ".join(f"{name} {path} {_free(_existing(path))}" for name, path in places.items())
    return (
        f"a disk is full: {what} (free: {free}); free some space, then run the same command again: what was "
        "stored is kept and the run resumes from it"
    )


def _plain(line: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", line).strip()  # Ray colours its task names


def _existing(path: Path) -> Path:
    """The path, or its nearest existing parent (a workspace that was never created has no disk yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free(path: Path) -> str:
    try:
        mib = shutil.disk_usage(path).free / 2**20
    except OSError:
        return "unknown"
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"
