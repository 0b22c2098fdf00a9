"""A watchdog for the private local Ray a driver starts: when the driver dies without shutting Ray down
(SIGKILL, an out-of-memory kill), it ends every process the driver had started.

Why it exists: Ray's GCS and raylet share the driver's fate, but the raylet's dashboard and runtime-env
agents notice their parent's death only after five polls and then try to report it to the dead GCS with
a 60 s timeout, so they stayed listening for over a minute after the driver was killed. This process
keeps a list of the driver's descendants while the driver lives and, once it is gone, kills those that
are still running (each checked by its start time, so a reused PID is never hit).

Run as `python -m processing.reaper DRIVER_PID`; `processing.engine.start_ray` starts it for a local Ray.
"""

from __future__ import annotations

import signal
import sys
import time

import psutil

POLL_SECONDS = 0.5


def same_process(known: psutil.Process) -> bool:
    """Whether `known` still runs: its PID exists with the start time recorded for it."""
    try:
        return psutil.Process(known.pid).create_time() == known.create_time() and known.status() != "zombie"
    except psutil.Error:
        return False


def watch(driver_pid: int, poll_seconds: float = POLL_SECONDS) -> list[int]:
    """Wait for the driver to exit, then kill its recorded descendants; returns the PIDs it killed."""
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return []
    descendants: dict[int, psutil.Process] = {}
    own_pid = psutil.Process().pid
    while same_process(driver):
        try:
            for child in driver.children(recursive=True):
                if child.pid != own_pid:
                    descendants.setdefault(child.pid, child)  # a Process keeps the start time it was made with
        except psutil.Error:
            pass  # the driver ended between the check and the listing
        time.sleep(poll_seconds)
    killed = []
    for process in descendants.values():
        if same_process(process):
            try:
                process.kill()
                killed.append(process.pid)
            except psutil.Error:
                pass
    return killed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the driver; this one cleans up after it
    watch(int(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
