"""docscale's processing stage and its commands (`python -m processing.<command>`)."""

import os
import signal
import sys


def _quiet_until_started(signum: int, frame: object) -> None:
    """Ctrl-C while a command is still importing its libraries (seconds: torch, Ray, MLflow): nothing has
    started, so it ends quietly (130) instead of with Python's traceback of the import it stopped. Once
    the command's module has defined `main`, Ctrl-C is Python's KeyboardInterrupt again, which each
    command turns into its one-line "interrupted"."""
    command = sys.modules.get("__main__")
    if command is None or "main" not in vars(command):
        os.write(2, b"interrupted: nothing had started\n")
        os._exit(130)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt


# While `python -m processing.X` finds its module, sys.argv[0] is "-m". A process that ignores Ctrl-C
# (started under nohup) keeps ignoring it; a library importing this package is left alone.
if sys.argv[:1] == ["-m"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _quiet_until_started)
