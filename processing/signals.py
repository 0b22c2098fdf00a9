"""Holding Ctrl-C and SIGTERM over a step that must not be cut half-way.

Python runs a signal's handler at the next bytecode of the main thread, wherever that is: inside a
callback from C code (DuckDB, Arrow, Ray's core worker), which may turn the interrupt into an error of
its own, swallow it, or leave a lock taken. Over such a step the signal is noted instead, and handed to
the handler the process had once the step is over; a second signal of the same kind stops at once.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class HeldSignals:
    """with HeldSignals(): step()  # SIGINT and SIGTERM take effect after step, or at once if sent twice"""

    def __init__(self) -> None:
        self._held: dict[int, Any] = {}
        self._received: list[int] = []

    def __enter__(self) -> HeldSignals:
        if threading.current_thread() is threading.main_thread():  # only its handlers can be set, and run
            for signum in (signal.SIGINT, signal.SIGTERM):
                handler = signal.getsignal(signum)
                # None: a handler set outside Python, which cannot be put back; an ignored signal stays ignored.
                if handler not in (None, signal.SIG_IGN):
                    self._held[signum] = handler
                    signal.signal(signum, self._note)
        return self

    def __exit__(self, *_: object) -> None:
        for signum, handler in self._held.items():
            signal.signal(signum, handler)
        self._held.clear()
        received, self._received = self._received, []
        for signum in received:
            signal.raise_signal(signum)  # now, to the handler the process had

    def _note(self, signum: int, _frame: object) -> None:
        if signum in self._received:
            raise KeyboardInterrupt
        self._received.append(signum)
