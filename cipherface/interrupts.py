"""Ctrl-C that no library can swallow.

DeepFace's OpenCV detector catches every exception in a bare ``except`` and reports
"no face" instead of the KeyboardInterrupt it swallowed. The command line installs a
SIGINT handler that remembers the interrupt; code that calls such a library asks
:func:`raise_if_interrupted` afterwards, so Ctrl-C stops the command instead of
blaming a photo.
"""

from __future__ import annotations

import signal
import threading

_interrupted = threading.Event()


def _on_sigint(signum, frame) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through the remembering handler (main thread only)."""
    _interrupted.clear()
    signal.signal(signal.SIGINT, _on_sigint)


def raise_if_interrupted() -> None:
    if _interrupted.is_set():
        raise KeyboardInterrupt
