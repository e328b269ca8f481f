"""Stand-in of ``comfy.utils``: the progress bar that nodes report to ComfyUI's UI through.

Behaviour as in ComfyUI's own module (0.3.64): a :class:`ProgressBar` takes the global hook
that is set when it is made (``main.py`` sets one at start that first calls
``comfy.model_management.throw_exception_if_processing_interrupted`` and then sends the
``progress`` message to the browser), and calls it with ``(value, total, preview, node_id=)``;
a value past the total is reported as the total.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PROGRESS_BAR_HOOK: Callable[..., None] | None = None


def set_progress_bar_global_hook(function: Callable[..., None] | None) -> None:
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


class ProgressBar:
    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        self.node_id = node_id

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value: int) -> None:
        self.update_absolute(self.current + value)
