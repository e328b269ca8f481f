"""int8 models shipped beside the weights: where they live, what their record says, and the rule that lets them ship.

A shipped int8 model is an OpenVINO IR quantised by NNCF from one set of shipped weights at
one scale, in the folder ``<arch.tag>/openvino_int8_x<scale>/`` of this package
(``edsr_baseline_x2.t528/openvino_int8_x2/``), with three files:

- ``model.xml`` and ``model.bin``: the IR, run by OpenVINO (``backend="openvino"``,
  ``int8=True`` in :func:`edsr_lib.upscale`);
- ``int8.json``: its record (:class:`Int8Record`): the ``arch.tag`` and scale it was made
  from, the :func:`edsr_lib.backends.weights_sha256` of those weights (the key by which a
  model finds its int8 file, whatever file the model was loaded from), the command that made
  it, its recipe, the versions of the tools, and one measurement per machine it was measured
  on: speeds against every fp32 path and PSNR on each reported set.

``benchmarks/bench_int8.py --save`` writes these folders, ``--measure`` adds the
measurement of another machine. An int8 model ships only if every measurement in its record
passes :func:`rule_problems` (issue #21's rule, checked by the test suite): at least
:data:`MIN_SPEEDUP` times the fastest fp32 path of that machine, and at most
:data:`MAX_COST_DB` dB lost on each of :data:`RULE_SETS`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .._files import atomic_write

__all__ = [
    "FOLDER_PREFIX",
    "MAX_COST_DB",
    "MIN_SPEEDUP",
    "RECORD_NAME",
    "RULE_SETS",
    "Int8Model",
    "Int8Record",
    "card_lines",
    "find",
    "folder_name",
    "read_record",
    "rule_problems",
    "search_path",
    "shipped_models",
    "write_record",
]

#: Folder of an int8 model inside its ``arch.tag`` folder: ``openvino_int8_x<scale>``.
FOLDER_PREFIX = "openvino_int8_x"
#: The record beside the IR.
RECORD_NAME = "int8.json"
#: The rule: int8 must be at least this many times as fast as the fastest fp32 path of the machine ...
MIN_SPEEDUP = 1.3
#: ... and lose at most this many dB PSNR ...
MAX_COST_DB = 0.05
#: ... on each of these sets, at every scale.
RULE_SETS = ("Set5", "Set14", "B100")

#: More folders to search for int8 models (each holding ``<arch.tag>/openvino_int8_x<scale>/``),
#: before this package's weights: add a folder to find int8 models made for other weights, or
#: made another way for the shipped ones.
search_path: list[Path] = []


def folder_name(scale: int) -> str:
    """``openvino_int8_x<scale>``: the folder of the int8 model at ``scale`` inside an ``arch.tag`` folder."""
    return f"{FOLDER_PREFIX}{scale}"


@dataclass
class Int8Record:
    """What ``int8.json`` holds.

    Attributes:
        source: The ``arch.tag`` whose weights were quantised.
        scale: The scale of the IR.
        weights_sha256: :func:`edsr_lib.backends.weights_sha256` of those weights.
        command: The command that made the IR.
        recipe: How it was quantised (NNCF method, crops, allowed drop, ...).
        versions: The versions of the tools that made it (nncf, openvino, torch, edsr-lib).
        measurements: One entry per machine: ``cpu`` (model and flags), ``threads``,
            ``seconds`` (``"int8"`` and each fp32 path, on the same input, alternated),
            ``psnr`` (``{set: {"fp32": dB, "int8": dB}}``), ``command``.
    """

    source: str
    scale: int
    weights_sha256: str
    command: str
    recipe: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    measurements: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Int8Model:
    """A shipped int8 model: its IR file and its record."""

    xml: Path
    record: Int8Record


def read_record(folder: Path) -> Int8Record:
    """The :class:`Int8Record` in ``folder/int8.json``.

    Raises:
        ValueError: If the file is not a JSON object with the record's fields.
    """
    path = Path(folder) / RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Int8Record(**data)
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path} is not an int8 record: {err}") from None


def write_record(folder: Path, record: Int8Record) -> Path:
    """Write ``record`` to ``folder/int8.json`` atomically; returns the path."""
    path = Path(folder) / RECORD_NAME
    atomic_write(path, (json.dumps(asdict(record), indent=1) + "\n").encode())
    return path


def _roots() -> list[Path]:
    package = resources.files(__name__.rpartition(".")[0])
    return [*search_path, Path(str(package))]


def shipped_models() -> list[Int8Model]:
    """Every int8 model in the folders of :data:`search_path` and the package's weights, in that order."""
    found = []
    for root in _roots():
        for xml in sorted(Path(root).glob(f"*/{FOLDER_PREFIX}*/model.xml")):
            if (xml.parent / RECORD_NAME).is_file() and xml.with_suffix(".bin").is_file():
                found.append(Int8Model(xml, read_record(xml.parent)))
    return found


def find(weights_sha256: str, scale: int) -> Int8Model | None:
    """The int8 model quantised from the weights with this digest at ``scale``, if one is shipped.

    The folders are read at each call (a few small files), so a model added meanwhile is
    found; the first folder of :func:`shipped_models`'s order that has one wins.
    """
    for found in shipped_models():
        if (found.record.weights_sha256, found.record.scale) == (weights_sha256, scale):
            return found
    return None


def rule_problems(measurement: dict[str, Any]) -> list[str]:
    """Why one measurement fails the rule for shipping int8 (empty when it passes).

    The int8 time must be at most ``1 / MIN_SPEEDUP`` of the fastest fp32 time in
    ``seconds``, and each set of :data:`RULE_SETS` must be in ``psnr`` with at most
    :data:`MAX_COST_DB` dB lost.
    """
    problems = []
    seconds = measurement.get("seconds", {})
    fp32 = {name: s for name, s in seconds.items() if name != "int8"}
    if "int8" not in seconds or not fp32:
        problems.append("no int8 and fp32 times")
    else:
        name = min(fp32, key=fp32.__getitem__)
        speedup = fp32[name] / seconds["int8"]
        if speedup < MIN_SPEEDUP:
            problems.append(f"{speedup:.2f}x the fastest fp32 path ({name}), below {MIN_SPEEDUP}x")
    psnr = measurement.get("psnr", {})
    for name in RULE_SETS:
        if name not in psnr:
            problems.append(f"no PSNR on {name}")
        elif (cost := psnr[name]["fp32"] - psnr[name]["int8"]) > MAX_COST_DB:
            problems.append(f"{cost:.3f} dB lost on {name}, above {MAX_COST_DB} dB")
    return problems


def card_lines(record: Int8Record) -> list[str]:
    """Markdown lines for the model card of the weights ``record`` was made from: what the int8 model is and costs.

    One line says where the IR is, how it was made and how to run it; one line per
    measurement gives its speed against the fastest fp32 path of that machine and the PSNR
    it loses on each set.
    """
    recipe = record.recipe
    made = recipe.get("method", "NNCF")
    if recipe.get("calibration"):
        made += f", calibrated on {recipe['calibration']}"
    lines = [
        f"- x{record.scale}: an OpenVINO int8 IR in `{folder_name(record.scale)}/` ({made}; made with "
        f"`{record.command}`). Run it with `edsr-lib upscale --int8` or `upscale(..., int8=True)` (OpenVINO)."
    ]
    for m in record.measurements:
        seconds = m.get("seconds", {})
        fp32 = {name: s for name, s in seconds.items() if name != "int8"}
        flags = ", ".join(m.get("flags", [])) or "no flags recorded"
        cpu = f"{m.get('cpu', '?')} ({flags}), {m.get('threads')} threads"
        parts = []
        if "int8" in seconds and fp32:
            fastest = min(fp32, key=fp32.__getitem__)
            parts.append(f"{fp32[fastest] / seconds['int8']:.2f}x the speed of {fastest}, the fastest fp32 path")
        costs = [
            f"{scores['int8'] - scores['fp32']:+.3f} dB on {name}"
            for name, scores in m.get("psnr", {}).items()
            if {"fp32", "int8"} <= set(scores)
        ]
        if costs:
            parts.append("PSNR " + ", ".join(costs))
        lines.append(f"  - on {cpu}, {m.get('date', 'undated')}: {'; '.join(parts) or 'no figures'}.")
    return lines
