"""What every backend shares: the :class:`Backend` protocol, :class:`BackendError`, the :data:`Runner` it makes.

A backend is one object (one module each: :mod:`~edsr_lib.backends.pytorch`,
:mod:`~edsr_lib.backends.openvino`, :mod:`~edsr_lib.backends.onnxruntime`, listed in
:mod:`~edsr_lib.backends.table`) that says which precisions and devices it runs, checks
that it can run here, and makes a :data:`Runner` for a model at one scale. Everything
around the runner (tiling, batching, self-ensemble, alpha, gray, 16-bit, the
out-of-memory retry) is the same for every backend, in :class:`edsr_lib.Upscaler`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch

from ..models import SRModel
from ..options import RUNTIMES, BackendError

__all__ = ["Backend", "BackendError", "Runner"]

#: What runs a batch of windows through the network: a float32 ``(B, C, h, w)`` tensor in
#: [0, 1], on any device, to the float32 output ``(B, C, scale * h, scale * w)`` (on any
#: device; not clamped).
Runner = Callable[[torch.Tensor], torch.Tensor]


class Backend:
    """One way to compute the network: its name, what it runs, its check, and the :data:`Runner` it makes.

    Subclasses set the class attributes and implement :meth:`runner`; a runtime that runs
    an exported file derives from :class:`edsr_lib.backends.cache.FileBackend` instead.

    Attributes:
        name: The ``backend=`` name.
        precisions: The precisions it runs (of :data:`edsr_lib.options.PRECISIONS`).
        package: The Python package it needs, or ``None`` (PyTorch).
        cpu_only: It runs on the CPU only.
    """

    name: str = ""
    precisions: tuple[str, ...] = ()
    package: str | None = None
    cpu_only: bool = True

    def installed(self) -> bool:
        """Whether its package can be imported here."""
        return self.package is None or importlib.util.find_spec(self.package) is not None

    def check(self, precision: str, device: torch.device) -> None:
        """Raise :class:`BackendError` if it cannot run ``precision`` on ``device`` here.

        The default checks the device, the package and the precision; a backend adds its own.
        """
        if self.cpu_only and device.type != "cpu":
            raise BackendError(
                f"backend {self.name!r} runs on the CPU; device {device} was asked for (use backend='torch')"
            )
        if not self.installed():
            raise BackendError(
                f'backend {self.name!r} needs the {self.package} package: pip install "edsr-lib[{RUNTIMES[self.name]}]"'
            )
        if precision not in self.precisions:
            raise BackendError(f"backend {self.name!r} does not run {precision}; it runs {', '.join(self.precisions)}")

    def runner(
        self,
        model: SRModel,
        scale: int,
        precision: str,
        *,
        device: torch.device,
        channels_last: bool = True,
        compile: bool = False,
    ) -> Runner:
        """The :data:`Runner` of ``model`` at ``scale`` in ``precision`` (already checked by :meth:`check`).

        The model is never modified or moved: a backend works on its own copy or export.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
