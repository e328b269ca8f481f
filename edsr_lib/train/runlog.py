"""The run folder's format: ``config.json``, the ``log.jsonl`` events and the weights folders.

:class:`~edsr_lib.train.Trainer` writes a run folder through this module and tools (such as
``tools/release_weights.py``) read it back through it, so the format has one owner:

- ``config.json``: the :class:`~edsr_lib.train.TrainConfig`;
- ``log.jsonl``: one JSON record a line, each with ``time`` (Unix seconds) and ``step``.
  Records without ``event`` are training progress (``loss``, ``psnr``, ``lr``,
  ``steps_per_s``, ``train_s``: seconds of training so far); the events are ``start``
  (the first start and every resume: ``world_size``, ``device``, ``threads``, ``images``
  per scale, ``command``, ``amp``: the autocast precision chosen), ``val`` (``val``:
  ``{"raw"|"ema": {"x2": {"psnr", "ssim"}}}``, ``best``: the best mean PSNR and its step
  per kind, ``{"raw", "raw_step", "ema", "ema_step"}``), ``checkpoint``, ``end`` (the
  schedule's last step) and ``stop`` (an early stop, ``reason``: ``"until"`` or
  ``"time_limit"``; the run can resume);
- ``best/`` and ``best_ema/``: the raw and EMA weights of the best validation so far,
  ``final/`` and ``final_ema/``: those of the last stop (``save_pretrained`` folders);
- ``checkpoint.pt``: the rolling training checkpoint, whose contents the trainer owns, and
  ``checkpoint_previous.pt``: the one it replaced (:func:`previous_checkpoint`), the way back
  when the last one is damaged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from .._device import resolve_amp

__all__ = [
    "CHECKPOINT_NAME",
    "LOG_NAME",
    "RUN_CONFIG_NAME",
    "WEIGHT_FOLDERS",
    "Run",
    "RunLog",
    "previous_checkpoint",
    "read_run",
    "weights_folder",
]

#: The run's settings, its event log and its training checkpoint, inside the run folder.
RUN_CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"
CHECKPOINT_NAME = "checkpoint.pt"
#: The weights folders a run writes, the preferred first.
WEIGHT_FOLDERS = ("best_ema", "best", "final_ema", "final")


def previous_checkpoint(path: str | Path) -> Path:
    """Where the checkpoint that ``path`` replaced is kept: ``checkpoint.pt`` -> ``checkpoint_previous.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_previous{path.suffix}")


def weights_folder(*, best: bool, ema: bool) -> str:
    """The name of a weights folder: ``best``/``final``, with ``_ema`` for the EMA weights."""
    return ("best" if best else "final") + ("_ema" if ema else "")


class RunLog:
    """Appends records to a run folder's ``log.jsonl`` (the writer side of this module).

    Args:
        directory: The run folder (created on the first record).
    """

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOG_NAME

    def write(self, event: str | None = None, **fields: Any) -> dict[str, Any]:
        """Append one record (with the time, and ``event`` unless it is progress) and return it."""
        record = {"time": round(time.time(), 3), **({"event": event} if event else {}), **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record) + "\n"
        with open(self.path, "a+b") as f:  # opened at the end; writes always append
            end = f.tell()
            if end:
                f.seek(end - 1)
                if f.read(1) != b"\n":  # a record cut short by a crash keeps its own line
                    line = "\n" + line
            f.write(line.encode())
        return record


@dataclasses.dataclass
class Run:
    """What a training run folder says about itself (the reader side of this module).

    Attributes:
        path: The run folder.
        config: Its ``config.json`` (a ``TrainConfig`` as a dict).
        records: Every record of ``log.jsonl``, in order.
    """

    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def starts(self) -> list[dict[str, Any]]:
        """The ``start`` records: the first run and every resume."""
        return [r for r in self.records if r.get("event") == "start"]

    @property
    def val_events(self) -> list[dict[str, Any]]:
        """One ``val`` record per step (a step validated twice, across a resume, keeps its last)."""
        by_step = {r["step"]: r for r in self.records if r.get("event") == "val"}
        return [by_step[s] for s in sorted(by_step)]

    @property
    def end(self) -> dict[str, Any] | None:
        """The last ``end`` record, if the run finished."""
        ends = [r for r in self.records if r.get("event") == "end"]
        return ends[-1] if ends else None

    @property
    def last_stop(self) -> dict[str, Any] | None:
        """The last ``end`` or ``stop`` record: the step the ``final/`` weights are from."""
        stops = [r for r in self.records if r.get("event") in ("end", "stop")]
        return stops[-1] if stops else None

    @property
    def best(self) -> dict[str, Any]:
        """The best validation so far of the latest training (``{"raw", "raw_step", "ema", "ema_step"}``), or ``{}``.

        From the last ``val`` record since the last ``start`` at step 0, so that an
        earlier run in the same folder does not count.
        """
        fresh = [i for i, r in enumerate(self.records) if r.get("event") == "start" and r.get("step", 0) == 0]
        vals = [r for r in self.records[fresh[-1] if fresh else 0 :] if r.get("event") == "val"]
        return dict(vals[-1].get("best", {})) if vals else {}

    @property
    def commands(self) -> list[str]:
        """The distinct commands that started or resumed the run, in order."""
        return list(dict.fromkeys(s.get("command") or "(not recorded)" for s in self.starts))

    @property
    def devices(self) -> list[str]:
        """The device types the run trained on (``["cpu"]``), sorted."""
        return sorted({str(s.get("device", "cpu")).split(":")[0] for s in self.starts}) or ["cpu"]

    @property
    def amp(self) -> str:
        """The autocast precision the run trained in (``"bf16"``, ``"fp16"`` or ``"none"``).

        From the ``start`` records; logs older than their ``amp`` field give the setting as
        the trainer resolves it (on a GPU, one with bfloat16).
        """
        logged = [s["amp"] for s in self.starts if "amp" in s]
        if logged:
            return logged[-1]
        amp = str(self.config.get("amp", "auto"))
        if amp != "auto":
            return amp
        return resolve_amp(amp, "cuda" if self.devices == ["cuda"] else "cpu", bf16_supported=True)

    def train_seconds(self, step: int) -> float | None:
        """Training time (optimiser steps only, as the trainer counts it) at ``step``."""
        times = [r["train_s"] for r in self.records if "train_s" in r and r.get("step", 0) <= step]
        return times[-1] if times else None

    def pick_weights(self, which: str = "auto") -> tuple[str, int]:
        """The weights folder to use and the step its weights are from.

        Args:
            which: One of :data:`WEIGHT_FOLDERS`, or ``"auto"``: the better of ``best_ema``
                and ``best`` by the logged validation PSNR.

        Raises:
            ValueError: If the log cannot tell the step, or ``auto`` has neither folder.
            FileNotFoundError: If the folder does not exist.
        """
        vals = self.val_events
        best = vals[-1].get("best", {}) if vals else {}
        if which == "auto":
            candidates = [(best[key], name) for name, key in (("best_ema", "ema"), ("best", "raw")) if key in best]
            candidates = [(psnr, name) for psnr, name in candidates if (self.path / name).is_dir()]
            if not candidates:
                raise ValueError(f"{self.path} has no best/ or best_ema/ weights with a logged validation score")
            which = max(candidates)[1]
        folder = self.path / which
        if not folder.is_dir():
            have = [name for name in WEIGHT_FOLDERS if (self.path / name).is_dir()]
            raise FileNotFoundError(f"{folder} does not exist; the run has: {', '.join(have) or 'no weights folders'}")
        if which.startswith("best"):
            step_key = "ema_step" if which == "best_ema" else "raw_step"
            if step_key not in best:
                raise ValueError(
                    f"the log of {self.path} records no {step_key!r}: cannot tell which step {which}/ is from"
                )
            return which, int(best[step_key])
        stop = self.last_stop
        if stop is None:
            raise ValueError(
                f"the log of {self.path} has no 'end' record, nor a 'stop' one: {which}/ is from an unfinished run"
            )
        return which, int(stop["step"])


def read_run(path: str | Path) -> Run:
    """Read a run folder's ``config.json`` and ``log.jsonl``.

    A log line that is not JSON (a record cut short by a crash) is passed over.

    Raises:
        FileNotFoundError: If the folder or either file is missing.
        ValueError: If ``config.json`` is not JSON, or the log has no ``start`` record.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {path} does not exist")
    files = {name: path / name for name in (RUN_CONFIG_NAME, LOG_NAME)}
    for name, file in files.items():
        if not file.is_file():
            raise FileNotFoundError(f"{path} has no {name}; is it a folder written by `edsr-lib train`?")
    try:
        config = json.loads(files[RUN_CONFIG_NAME].read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{files[RUN_CONFIG_NAME]} is damaged: not JSON ({exc.msg}, line {exc.lineno})") from None
    records = []
    for line in files[LOG_NAME].read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    run = Run(path, config, records)
    if not run.starts:
        raise ValueError(f"{files[LOG_NAME]} has no 'start' record")
    return run
