"""User errors: one line on stderr and exit code 2, never a traceback (the one place that prints them).

The library raises ``ValueError`` subclasses (``HparamsError``, ``CheckpointError``, ``AudioError``, ...)
whose message names the file or argument and the fix, and ``OSError``s for files it cannot reach.
Every command's entry point runs through :func:`run_command`. ``GANAUG_DEBUG=1`` re-raises, for
the traceback of an error that should not have been one.
"""

from __future__ import annotations

import os
import sys

__all__ = ["USER_ERRORS", "run_command"]

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               OSError)  # OSError: a full disk, a read-only folder, a locked run folder (ganaug.io.WriteError)


def run_command(prog: str, fn, *args, **kwargs) -> int:
    """``fn(*args, **kwargs)`` as a command: its return code, or 2 and one line on stderr for a user error."""
    try:
        return int(fn(*args, **kwargs) or 0)
    except USER_ERRORS as err:
        if os.environ.get("GANAUG_DEBUG"):
            raise
        message = " ".join(str(err).split("\n")) if str(err) else type(err).__name__
        if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in message:
            message = f"{err.filename}: {message}"
        _end_progress_bars()
        print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
        return 2


def _end_progress_bars() -> None:
    """Close the tqdm bars still on screen, so the error starts a line of its own (a bar leaves the
    cursor at the end of its line)."""
    if "tqdm" not in sys.modules:
        return
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    sys.stderr.flush()
