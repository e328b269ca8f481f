"""``backend="auto"``: the fastest backend for an architecture on this machine, measured once and remembered.

:func:`fastest_backend` times every installed runtime and the PyTorch fast path on the
model's architecture, once, and remembers the winner in ``auto.json`` in the cache folder
(:func:`~edsr_lib.backends.cache_dir`), keyed by the CPU, its flags, the thread count, the
runtime versions, the architecture, the scale and the precision.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from .._files import atomic_write
from ..models import SRModel
from ..options import RUNTIMES
from .base import BackendError
from .cache import cache_dir, cache_problem, one_export
from .machine import cpu_info, installed_runtimes, runtime_versions, threads
from .table import get_backend, load_runtime

__all__ = ["auto_measurement", "fastest_backend"]

#: Side of the square input on which ``"auto"`` times the candidates (LR pixels).
AUTO_SIZE = 96
#: Timed rounds, after one warm-up round.
AUTO_ROUNDS = 3
#: The choices of "auto" made or read in this process, by record file and key.
decided: dict[tuple[Path, str], str] = {}
#: The unwritable caches "auto" has said it falls back to PyTorch for, once each.
_noted: set[str] = set()


def _auto_key(model: SRModel, scale: int, precision: str) -> str:
    cpu = cpu_info()
    architecture = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode()).hexdigest()[:16]
    versions = ",".join(f"{k}={v}" for k, v in sorted(runtime_versions().items()))
    flags = ",".join(k for k, v in cpu.flags.items() if v)
    return f"{cpu.model}|{flags}|threads={threads()}|{versions}|{architecture}|x{scale}|{precision}"


def auto_measurement(model: SRModel, scale: int | None, precision: str) -> dict | None:
    """What :func:`fastest_backend` recorded for this machine, architecture, scale and precision, if anything.

    Returns:
        ``{"backend": winner, "seconds": {backend: fastest round}}``, or ``None`` before the
        first measurement.
    """
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads((cache_dir() / "auto.json").read_text()).get(
            _auto_key(model, model.resolve_scale(scale), precision)
        )
        return entry if isinstance(entry, dict) else None
    return None


def fastest_backend(
    model: SRModel,
    scale: int | None,
    precision: str,
    torch_runner: Callable[[torch.Tensor], torch.Tensor],
) -> str:
    """The fastest backend for this model's architecture at ``scale`` and ``precision`` on this machine.

    The first time (for this CPU, thread count, runtime versions, architecture, scale and
    precision) it times ``torch_runner`` (the PyTorch fast path) and every installed
    runtime that runs ``precision`` (:func:`~edsr_lib.backends.load_runtime`) on a 96 x 96
    input, one warm-up and three rounds alternated, keeps the fastest round of each, and
    records the winner with the times in ``auto.json`` in
    :func:`~edsr_lib.backends.cache_dir`; later calls read it.

    Args:
        model: The model.
        scale: The scale.
        precision: ``"fp32"`` or ``"bf16"``.
        torch_runner: The PyTorch path, a callable on a float NCHW batch.
    """
    scale = model.resolve_scale(scale)
    candidates = [b for b in installed_runtimes() if b in RUNTIMES and precision in get_backend(b).precisions]
    if not candidates:
        return "torch"
    if (problem := cache_problem()) is not None:
        if problem not in _noted:
            _noted.add(problem)
            warnings.warn(f"backend 'auto' runs PyTorch: {problem}", RuntimeWarning, stacklevel=2)
        return "torch"
    key = _auto_key(model, scale, precision)
    record = cache_dir() / "auto.json"
    if (record, key) in decided:
        return decided[record, key]
    known: dict[str, dict] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(record.read_text())
    if isinstance(known.get(key), dict) and known[key].get("backend") in ("torch", *candidates):
        decided[record, key] = known[key]["backend"]
        return decided[record, key]
    # the one slow call on a new machine: exports for the runtimes, then a few seconds of timing; said once
    print(
        f"edsr_lib: timing torch, {', '.join(candidates)} once on this CPU for this model at x{scale} {precision} "
        f"(exports the model; remembered in {record})",
        file=sys.stderr,
        flush=True,
    )
    runs: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"torch": torch_runner}
    x = torch.rand(1, model.n_colors, AUTO_SIZE, AUTO_SIZE, generator=torch.Generator().manual_seed(0))
    left_out = False
    torch_runner(x)  # the warm-up call of each candidate, untimed
    with one_export():
        for name in candidates:
            try:
                runs[name] = load_runtime(model, scale, name, precision)
                runs[name](x)  # a runtime that loads but cannot run here is left out too
            except (BackendError, MemoryError, RuntimeError) as exc:
                runs.pop(name, None)
                left_out = True
                warnings.warn(f"backend 'auto' leaves out {name}: {exc}", RuntimeWarning, stacklevel=2)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(AUTO_ROUNDS):
        for name, run in runs.items():
            start = time.perf_counter()
            run(x)
            best[name] = min(best[name], time.perf_counter() - start)
    winner = min(best, key=best.__getitem__)
    if left_out:  # not remembered: what failed here (a memory limit, say) may run next time
        decided[record, key] = winner
        return winner
    known[key] = {"backend": winner, "seconds": {k: round(v, 5) for k, v in best.items()}}
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(record, json.dumps(known, indent=1, sort_keys=True).encode())
    decided[record, key] = winner
    return winner
