"""OpenModelDB entries for the weights the package ships, in the format of its ``data/models/<id>.json``.

`OpenModelDB <https://openmodeldb.info>`_ lists upscaling models for chaiNNer, ComfyUI and
their kin; each model is one JSON file in ``data/models/`` of the repository
``OpenModelDB/open-model-database``, named by its id (``<scale>x-<Name>``). This module writes
one such entry per set of weights the package ships (the configs with a ``package_file``): the
architecture, scale, size, licence, training data and steps, author, and the file's size,
sha256 and download URL, all from the registry's :class:`~edsr_lib.registry.PretrainedCfg`.

The format is kept in ``model.schema.json`` beside this module, a JSON schema transcribed
from OpenModelDB's own validator (``src/lib/model-props.ts``; its ``$id`` and description name
the files and commits); :func:`check_entry` checks an entry against its required fields and
types before anything is written.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_path, sha256sum
from ..registry import create_model, list_pretrained

__all__ = [
    "AUTHOR",
    "SCHEMA_PATH",
    "check_entry",
    "entry_id",
    "model_entries",
    "model_entry",
    "schema",
    "write_entries",
]

#: The schema of one ``data/models/<id>.json`` file (see the module's docstring for its source).
SCHEMA_PATH = Path(__file__).with_name("model.schema.json")
#: The OpenModelDB user id the entries name as author (``data/users.json`` must list it on submission).
AUTHOR = "edsr-lib"
#: OpenModelDB's architecture id (``data/architectures.json``) per edsr-lib family; MDSR has none there yet.
_ARCHITECTURES = {"edsr": "edsr", "mdsr": "mdsr"}
#: The tags (``data/tags.json``) every entry carries: PSNR-trained on photographs, from a paper.
_TAGS = ("general-upscaler", "photo", "research")


def schema() -> dict[str, Any]:
    """The JSON schema of an entry, as kept in :data:`SCHEMA_PATH`."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def entry_id(cfg: Any, scale: int) -> str:
    """The entry's OpenModelDB id: ``<scale>x-`` and the weights' name (``2x-EDSR-baseline-t528``)."""
    family = cfg.architecture.rsplit("_x", 1)[0] if re.search(r"_x\d+$", cfg.architecture) else cfg.architecture
    words = [w.upper() if w in ("edsr", "mdsr") else w for w in family.split("_")]
    return "-".join([f"{scale}x", *words, re.sub(r"[^A-Za-z0-9]+", "-", cfg.tag).strip("-")])


def _int_after(pattern: str, text: str | None) -> int | None:
    found = re.search(pattern, text or "")
    return int(found.group(1)) if found else None


def model_entry(cfg: Any, *, date: str | None = None) -> tuple[str, dict[str, Any]]:
    """The id and the entry for one set of shipped weights.

    Args:
        cfg: A :class:`~edsr_lib.registry.PretrainedCfg` with a ``package_file``.
        date: The publication date (``yyyy-mm-dd``); default today (UTC).

    Raises:
        ValueError: If the weights are not shipped in the package.
    """
    if not cfg.package_file:
        raise ValueError(f"{cfg.name}: the package does not ship these weights (no package_file)")
    with torch.device("meta"):
        model = create_model(cfg.architecture)
    config = model.config if hasattr(model, "config") else {}
    family = config.get("architecture", "edsr")
    scale = max(model.scales)  # a multi-scale MDSR: spandrel and ComfyUI load it at its largest scale
    scales = ", ".join(f"x{s}" for s in model.scales)
    url = f"https://huggingface.co/{cfg.hf_hub_id}/resolve/{cfg.revision or 'main'}/{cfg.filename}"
    description = "\n\n".join(
        part
        for part in (
            cfg.description,
            f"{model.__class__.__name__} ({scales}) from edsr-lib, the EDSR/MDSR library "
            f"(`pip install edsr-lib`; `create_model('{cfg.name}', pretrained=True)`), after Lim et al., "
            "Enhanced Deep Residual Networks for Single Image Super-Resolution (CVPR 2017 workshops).",
            "Trained for PSNR on bicubic downscaling (MATLAB imresize), like the paper: it restores detail lost to "
            "resizing, not noise or compression."
            if not cfg.training_command or "degrad" not in cfg.training_command
            else None,
            f"Multi-scale: this file holds x{', x'.join(map(str, model.scales))}; loaders that take one scale use "
            f"x{scale}."
            if len(model.scales) > 1
            else None,
            "Scores (Y channel, benchmark protocol): "
            + "; ".join(
                f"{dataset} {s} {v['psnr']:.2f} dB"
                for dataset, by_scale in (cfg.metrics or {}).items()
                if not dataset.endswith("+")
                for s, v in by_scale.items()
            )
            if cfg.metrics
            else None,
        )
        if part
    )
    with resources.as_file(resources.files("edsr_lib.weights").joinpath(cfg.package_file)) as file:
        size, digest = file.stat().st_size, sha256sum(file)
    entry: dict[str, Any] = {
        "name": f"{entry_id(cfg, scale).split('-', 1)[1]}",
        "author": AUTHOR,
        "license": _spdx(cfg.license),
        "tags": list(_TAGS),
        "description": description,
        "date": date or datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "architecture": _ARCHITECTURES.get(family, family),
        "size": [f"{config.get('n_resblocks', '?')}nb", f"{config.get('n_feats', '?')}nf"],
        "scale": scale,
        "inputChannels": model.n_colors,
        "outputChannels": model.n_colors,
        "resources": [
            {
                "platform": "pytorch",
                "type": "pth",  # OpenModelDB's type for PyTorch weights; the file is a safetensors state dict
                "size": size,
                "sha256": digest,
                "urls": [url],
            }
        ],
        "trainingIterations": cfg.steps,
        "trainingBatchSize": _int_after(r"--batch-size (\d+)", cfg.training_command),
        "dataset": cfg.training_data,
        "datasetSize": _int_after(r"\((\d+) images\)", cfg.training_data),
        "images": [],
    }
    entry = {k: v for k, v in entry.items() if v is not None}
    problems = check_entry(entry)
    if problems:
        raise ValueError(f"{cfg.name}: the OpenModelDB entry is not valid: {'; '.join(problems)}")
    return entry_id(cfg, scale), entry


def _spdx(license: str | None) -> str | None:
    """The SPDX id OpenModelDB expects for the registry's (Hub-style, lower-case) licence name."""
    known = {"mit": "MIT", "apache-2.0": "Apache-2.0", "cc-by-4.0": "CC-BY-4.0", "cc-by-nc-4.0": "CC-BY-NC-4.0"}
    return known.get((license or "").lower(), license)


def check_entry(entry: dict[str, Any]) -> list[str]:
    """The ways ``entry`` breaks the schema's required fields and types (empty when it is valid).

    A small check of what the schema in :data:`SCHEMA_PATH` requires (present and not null,
    of the right JSON type, within its enum, minimum, maximum and pattern), so that the
    command needs no JSON-schema package; the tests validate with ``jsonschema`` as well.
    """
    spec = schema()
    return _check(entry, spec, spec, "entry")


def _check(value: Any, spec: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    if "$ref" in spec:
        spec = root["$defs"][spec["$ref"].rsplit("/", 1)[1]]
    if "oneOf" in spec:
        if any(not _check(value, option, root, where) for option in spec["oneOf"]):
            return []
        return [f"{where} matches none of its allowed forms"]
    problems: list[str] = []
    types = spec.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        kinds = {
            "string": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
            "array": list,
            "object": dict,
            "null": type(None),
        }
        is_bool = isinstance(value, bool)
        if not any(isinstance(value, kinds[t]) and (t == "boolean" or not is_bool) for t in allowed):
            return [f"{where} should be {' or '.join(allowed)}, not {type(value).__name__}"]
    if "enum" in spec and value not in spec["enum"]:
        problems.append(f"{where} should be one of {spec['enum']}, not {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in spec and value < spec["minimum"]:
            problems.append(f"{where} is below {spec['minimum']}")
        if "maximum" in spec and value > spec["maximum"]:
            problems.append(f"{where} is above {spec['maximum']}")
    if isinstance(value, str):
        if "pattern" in spec and not re.search(spec["pattern"], value):
            problems.append(f"{where} {value!r} does not match {spec['pattern']}")
        if len(value) < spec.get("minLength", 0):
            problems.append(f"{where} is shorter than {spec['minLength']}")
    if isinstance(value, list):
        if len(value) < spec.get("minItems", 0):
            problems.append(f"{where} needs at least {spec['minItems']} item(s)")
        for i, item in enumerate(value):
            problems += _check(item, spec.get("items", {}), root, f"{where}[{i}]")
    if isinstance(value, dict):
        for key in spec.get("required", []):
            if value.get(key) is None:
                problems.append(f"{where} lacks the required field {key!r}")
        for key, sub in spec.get("properties", {}).items():
            if value.get(key) is not None:
                problems += _check(value[key], sub, root, f"{where}.{key}")
    return problems


def model_entries(date: str | None = None) -> dict[str, dict[str, Any]]:
    """``{id: entry}`` for every set of weights the package ships (every registered config with a ``package_file``)."""
    entries = dict(model_entry(cfg, date=date) for cfg in list_pretrained() if cfg.package_file)
    if not entries:
        raise ValueError("the package ships no weights")
    return entries


def write_entries(folder: str | os.PathLike[str], date: str | None = None) -> list[Path]:
    """Write :func:`model_entries` as ``<folder>/<id>.json`` (OpenModelDB's ``data/models`` layout), atomically.

    The files are formatted as OpenModelDB's own (four-space indent, a final newline), so
    that they can be copied into a clone of ``OpenModelDB/open-model-database``.

    Returns:
        The files written, in registry order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in model_entries(date).items():
        path = folder / f"{name}.json"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(entry, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
