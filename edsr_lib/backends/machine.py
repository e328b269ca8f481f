"""The machine the backends run on: the CPU and its instruction sets, the runtimes installed and their versions.

``"auto"`` keys its measurements by these (:mod:`~edsr_lib.backends.auto`), the cache names
its files by the versions (:mod:`~edsr_lib.backends.cache`), and the benchmarks print them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import platform
from dataclasses import dataclass, field

import torch

from ..options import RUNTIMES

__all__ = ["CPUInfo", "cpu_info", "installed_runtimes", "runtime_versions", "threads"]


@dataclass(frozen=True)
class CPUInfo:
    """The CPU's model name and the instruction-set extensions that decide which kernels run.

    Attributes:
        model: The model name (``/proc/cpuinfo``'s ``model name``, else :func:`platform.processor`).
        flags: ``"AVX2"``, ``"AVX-512"``, ``"AVX-512 BF16"``, ``"VNNI"`` (AVX-512 VNNI or AVX-VNNI)
            and ``"AMX"``, each ``True`` or ``False``.
    """

    model: str
    flags: dict[str, bool] = field(default_factory=dict)

    def __str__(self) -> str:
        present = [name for name, has in self.flags.items() if has]
        return f"{self.model} ({', '.join(present) or 'none of AVX2, AVX-512, VNNI, AMX'})"


#: Our name of each extension, and the Linux cpuinfo flags that stand for it.
_CPU_FLAGS = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "AVX-512 BF16": ("avx512_bf16",),
    "VNNI": ("avx512_vnni", "avx_vnni"),
    "AMX": ("amx_tile",),
}


@functools.cache
def cpu_info() -> CPUInfo:
    """The CPU this process runs on, read from ``/proc/cpuinfo`` (Linux; elsewhere the model name only)."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    return CPUInfo(model, {name: any(f in flags for f in names) for name, names in _CPU_FLAGS.items()})


def installed_runtimes() -> tuple[str, ...]:
    """The runtimes of :data:`edsr_lib.options.RUNTIMES` that can be imported here."""
    return tuple(name for name in RUNTIMES if importlib.util.find_spec(name) is not None)


def runtime_versions() -> dict[str, str]:
    """Versions of PyTorch (the exporter and the ``"torch"`` backend) and of each installed runtime."""
    versions = {"torch": torch.__version__}
    for name in installed_runtimes():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def threads() -> int:
    """The threads a runtime uses: as many as PyTorch, so that :func:`torch.set_num_threads` rules every backend."""
    return torch.get_num_threads()
