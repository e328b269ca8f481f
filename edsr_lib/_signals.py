"""SIGTERM as Ctrl-C: the one handler that the command line, video and the demo install.

A run that is terminated (``kill``, a job scheduler, ``docker stop``) should end as an
interrupted one does: the writes in flight finish, temporary files are removed, and what is
left is said. :func:`sigterm_as_interrupt` makes SIGTERM raise :class:`KeyboardInterrupt` in
the main thread while a block runs, and tells afterwards whether it came.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Received", "sigterm_as_interrupt"]


class Received:
    """What :func:`sigterm_as_interrupt` saw: ``name`` is ``"SIGTERM"`` once it came, else ``""``."""

    name = ""


@contextlib.contextmanager
def sigterm_as_interrupt(*, keep_existing: bool = False) -> Iterator[Received]:
    """While the block runs, SIGTERM raises :class:`KeyboardInterrupt` as Ctrl-C does; then the old handler is back.

    Signal handlers belong to the main thread: in another thread nothing is installed.

    Args:
        keep_existing: Install only where SIGTERM still has its default action (ending the
            process at once), so that a caller that handles it already keeps its handler
            (video inside ``edsr-lib upscale``).
    """
    received = Received()
    if threading.current_thread() is not threading.main_thread() or (
        keep_existing and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield received
        return

    def interrupt(signum: int, frame: Any) -> None:
        received.name = signal.Signals(signum).name
        raise KeyboardInterrupt(received.name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
