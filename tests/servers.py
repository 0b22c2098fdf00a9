"""Helpers for tests that start real servers on loopback: a free port, waiting for HTTP, cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import urllib.error
import urllib.request

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """n different free ports: all held open while they are chosen, since the kernel may hand a port
    just released by free_port() straight out again (two Ray components once got the same one)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def kill_matching(marker: str) -> int:
    """SIGKILL every process whose command line mentions marker, and their descendants (Ray's agents
    and workers rename themselves "ray::..." and no longer show the marker); returns how many."""
    victims: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []) and proc.pid != os.getpid():
                victims[proc.pid] = proc
                victims.update({child.pid: child for child in proc.children(recursive=True)})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    victims.pop(os.getpid(), None)
    victims = list(victims.values())
    for proc in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    return len(victims)


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (401 when token auth guards it): it is up
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
