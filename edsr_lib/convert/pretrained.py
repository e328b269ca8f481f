"""Third-party pretrained weights: fetched and checked, converted once, then read in the library's own format.

A pretrained config with a ``layout`` names a weights file published in another code
base's format, such as super-image's ``pytorch_model_2x.pt`` in ``eugenesiow/edsr-base``.
:func:`converted_weights` turns it into a model folder of the library's format
(``model.safetensors``, ``config.json``, a ``README.md`` card and ``source.json``), kept in
huggingface_hub's assets cache (``HF_ASSETS_CACHE``, by default
``~/.cache/huggingface/assets/edsr-lib/<layout>/<sha256 of the source file>/``):

1. a converted copy already there is used as it is, once its own sha256 checks out: a
   config that pins the file's sha256 (or, for a file the Hub page gives no sha256 for, its
   commit) finds it without touching the original again, so later loads never unpickle;
2. otherwise the file comes from ``cfg.file`` (a local copy), else the Hugging Face cache,
   else a download through huggingface_hub (its progress bar, its cache, the pinned
   revision), unless ``HF_HUB_OFFLINE=1``;
3. its sha256 is checked before anything reads it: against the pinned one, or, for a
   cached Hub file pinned only by commit, against the LFS sha256 the Hub named its blob by;
4. :func:`edsr_lib.convert.convert` reads it (``torch.load(weights_only=True)``, the
   ``module.`` prefix of ``nn.DataParallel`` stripped, the scale from the file name, every
   key mapped) and the result must be the config's variant in every number but the pixel
   convention the file implies (super-image's EDSR works on [0, 1] with no mean shift:
   ``rgb_range`` 1 and a zero ``rgb_mean``);
5. the folder is written atomically, with a model card naming the source, its licence and
   attribution, the publisher's scores and the converter's notes.

Every failure is one line naming the tag, the repository and file, what was expected and
what to do.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from .._builder import set_third_party_weights
from .._card import model_card
from .._files import atomic_folder, atomic_write, sha256sum
from .._hub import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    InvalidWeightsError,
    WeightsNotFoundError,
    failure_reason,
    hub_download,
    is_offline,
    save_pretrained,
)
from .._pretrained import PretrainedCfg
from .._registry import create_model, list_pretrained
from .._version import LIBRARY_NAME
from .reading import convert

__all__ = ["IMPLIED", "SOURCE_NAME", "converted_weights", "find_converted", "offline_alternatives"]

logger = logging.getLogger(__name__)

#: The record of where a converted folder came from: the source file, its sha256, the converted file's sha256.
SOURCE_NAME = "source.json"
#: Constructor values a third-party file may fix differently from its variant's defaults: the pixel
#: convention its code runs at (the converter's layout reads it); every other number must be the variant's.
IMPLIED = ("rgb_range", "rgb_mean")

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


# ----------------------------------------------------------------------------------- where
def _size(cfg: PretrainedCfg) -> str:
    return f"{cfg.download_size / 1e6:,.1f} MB" if cfg.download_size else "size unknown"


def _root() -> Path:
    # read at call time (huggingface_hub reads HF_ASSETS_CACHE at import), so that a test or a caller can move it
    return Path(constants.HF_ASSETS_CACHE) / LIBRARY_NAME


def _namespace(cfg: PretrainedCfg) -> Path:
    """The folder of the conversions from ``cfg``'s layout (``detected`` when the converter tells the layout)."""
    return _root() / (cfg.layout or "detected")


def _folder(cfg: PretrainedCfg, digest: str) -> Path:
    """Where the conversion of the file with sha256 ``digest`` lives."""
    return _namespace(cfg) / digest


def _ref(cfg: PretrainedCfg) -> Path | None:
    """For a Hub file pinned by commit: the small file that records the sha256 of what that commit holds."""
    if cfg.file or not cfg.hf_hub_id or not cfg.revision or not _COMMIT.fullmatch(cfg.revision):
        return None
    return _namespace(cfg) / "refs" / "--".join((*cfg.hf_hub_id.split("/"), cfg.revision, cfg.filename))


def _valid(folder: Path) -> bool:
    """True when ``folder`` holds a complete conversion whose weights still have the sha256 recorded for them."""
    try:
        record = json.loads((folder / SOURCE_NAME).read_text(encoding="utf-8"))
        weights = folder / WEIGHTS_NAME
        return (folder / CONFIG_NAME).is_file() and sha256sum(weights) == record["converted_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def find_converted(cfg: PretrainedCfg) -> Path | None:
    """The converted copy of ``cfg``'s file, if one is cached and intact, found without reading the original.

    It can be found this way when the config pins the file's sha256, or pins a commit for
    which an earlier conversion recorded the file's sha256; never for a local ``file``,
    which is hashed each time, so that the copy loaded is the file given.

    Args:
        cfg: A pretrained config with a ``layout``.

    Returns:
        The folder (``model.safetensors``, ``config.json``, ``README.md``, ``source.json``), or ``None``.
    """
    if cfg.file:
        return None
    digest = str(cfg.sha256).lower() if cfg.sha256 else None
    ref = _ref(cfg)
    if digest is None and ref is not None and ref.is_file():
        digest = ref.read_text(encoding="utf-8").strip()
    if digest is None or not _SHA256.fullmatch(digest):
        return None
    folder = _folder(cfg, digest)
    return folder if _valid(folder) else None


# ---------------------------------------------------------------------------- the source file
def offline_alternatives(cfg: PretrainedCfg) -> list[str]:
    """Shipped weights that serve the same scale(s) as ``cfg``'s variant and so work offline: its own tags first."""
    with torch.device("meta"):
        scales = set(create_model(str(cfg.architecture)).scales)
    shipped = [c for c in list_pretrained() if c.package_file]
    same = [c.name for c in shipped if c.architecture == cfg.architecture]
    others = []
    for c in shipped:
        with torch.device("meta"):
            if c.architecture != cfg.architecture and scales <= set(create_model(str(c.architecture)).scales):
                others.append(c.name)
    return same + others


def _offline_message(cfg: PretrainedCfg, cache_dir: str | Path | None, why: str) -> str:
    revision = f" --revision {cfg.revision}" if cfg.revision else ""
    offline = offline_alternatives(cfg)
    fallback = f"; {offline[0]} is shipped inside the package and works offline" if offline else ""
    return (
        f"{cfg.name} needs {cfg.source} ({_size(cfg)}), which is not in the Hugging Face cache "
        f"{cache_dir or constants.HF_HUB_CACHE} and {why}: fetch it where the Hub is reachable with "
        f"`hf download {cfg.hf_hub_id} {cfg.filename}{revision}` and copy that cache here, or pass the file with "
        f"pretrained_cfg_overlay={{'file': PATH}} (on the command line: `edsr-lib convert PATH DIR`, then "
        f"`--model DIR`){fallback}"
    )


def _source(cfg: PretrainedCfg, cache_dir: str | Path | None) -> Path:
    """The file ``cfg`` names: its local copy, else from the Hugging Face cache, else downloaded."""
    if cfg.file:
        path = Path(cfg.file).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{cfg.name}: the local copy {path} is not a file; pass the path of {cfg.filename} as "
                "pretrained_cfg_overlay={'file': PATH}"
            )
        return path
    if not cfg.hf_hub_id:
        raise WeightsNotFoundError(f"{cfg.name} names no Hub repository and no local file for its weights")
    pinned = {"revision": cfg.revision, "cache_dir": cache_dir}
    try:
        return hub_download(cfg.hf_hub_id, cfg.filename, local_only=True, **pinned)
    except (EntryNotFoundError, OSError):
        pass
    if is_offline():
        raise WeightsNotFoundError(_offline_message(cfg, cache_dir, "HF_HUB_OFFLINE=1")) from None
    try:
        return hub_download(cfg.hf_hub_id, cfg.filename, local_only=False, **pinned)
    except (HfHubHTTPError, EntryNotFoundError, OSError) as err:
        why = f"the download failed ({failure_reason(err)})"
        raise WeightsNotFoundError(_offline_message(cfg, cache_dir, why)) from None


def _checked_digest(cfg: PretrainedCfg, path: Path) -> str:
    """The sha256 of ``path``, checked (before anything reads the file) against what it must be."""
    digest = sha256sum(path)
    if cfg.sha256:
        if digest != str(cfg.sha256).lower():
            raise InvalidWeightsError(
                f"{cfg.name}: {cfg.source} has sha256 {digest}, but {cfg.sha256} is pinned for it: a corrupted "
                f"or different file, not read; delete {path} (and its blob) and download it again, or pin the file "
                "you trust with pretrained_cfg_overlay={'sha256': ...}"
            )
        return digest
    blob = path.resolve().name  # huggingface_hub names an LFS file's blob by the sha256 the Hub sent for it
    if not cfg.file and _SHA256.fullmatch(blob) and blob != digest:
        raise InvalidWeightsError(
            f"{cfg.name}: {cfg.source} in the Hugging Face cache has sha256 {digest}, but the Hub sent it as "
            f"{blob}: a corrupted download, not read; delete {path.resolve()} and download it again"
        )
    return digest


# ------------------------------------------------------------------------------ conversion
def _check_variant(cfg: PretrainedCfg, config: dict[str, Any]) -> None:
    """Refuse a conversion that is not ``cfg``'s variant in every number but the pixel convention."""
    with torch.device("meta"):
        expected = json.loads(json.dumps(create_model(str(cfg.architecture)).config))
    got = json.loads(json.dumps(config))
    diffs = [
        f"{k}={got.get(k)!r} (expected {v!r})" for k, v in expected.items() if k not in IMPLIED and got.get(k) != v
    ]
    if diffs:
        raise InvalidWeightsError(
            f"{cfg.name}: {cfg.source} does not hold {cfg.architecture}: {'; '.join(diffs)}; name a file of that "
            "variant, or the tag of the variant this file is"
        )


def _implied_note(cfg: PretrainedCfg, config: dict[str, Any]) -> str | None:
    with torch.device("meta"):
        defaults = json.loads(json.dumps(create_model(str(cfg.architecture)).config))
    got = json.loads(json.dumps(config))
    changed = [f"`{k}={got[k]!r}`" for k in IMPLIED if got.get(k) != defaults.get(k)]
    if not changed:
        return None
    return (
        f"This tag builds `{cfg.architecture}` with {' and '.join(changed)} instead of the variant's defaults "
        f"({', '.join(f'`{k}={defaults[k]!r}`' for k in IMPLIED)}): that is what the file implies, because "
        f"its code ({cfg.layout}) feeds the network [0, 1] images without a mean shift. The outputs equal "
        "the original's."
    )


def _sections(cfg: PretrainedCfg, digest: str, notes: tuple[str, ...], config: dict[str, Any]) -> dict[str, str]:
    """The card's Conversion section: the file converted, the converter's notes, what the file implies."""
    conversion = [f"Converted by edsr-lib's converter from `{cfg.source}` (sha256 `{digest}`) on first use:", ""]
    conversion += [f"- {note}" for note in notes]
    if implied := _implied_note(cfg, config):
        conversion += ["", implied]
    return {"Conversion": "\n".join(conversion)}


def _convert(cfg: PretrainedCfg, path: Path, digest: str) -> Path:
    """Convert the checked file ``path`` and write the folder of the result atomically."""
    with torch.device("meta"):
        res_scale = create_model(str(cfg.architecture)).config.get("res_scale")
    overrides = {"res_scale": res_scale} if res_scale is not None else {}
    try:
        model = convert(path, layout=cfg.layout, **overrides)
    except (ValueError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidWeightsError(
            f"{cfg.name}: cannot convert {cfg.source}: {reason} (`edsr-lib convert FILE OUT_DIR` shows what the "
            "converter reads; pretrained_cfg_overlay={'layout': ...} names the layout)"
        ) from None
    config = model.config
    _check_variant(cfg, config)
    model.pretrained_cfg = cfg
    card = model_card(model, cfg, sections=_sections(cfg, digest, model.conversion.notes, config))
    final = _folder(cfg, digest)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not _valid(final):  # an earlier, broken conversion
        shutil.rmtree(final, ignore_errors=True)
    try:
        with atomic_folder(final) as staging:
            save_pretrained(model, staging, model_card=card)
            record = {
                "source": cfg.source,
                "layout": cfg.layout,
                "sha256": digest,
                "converted_sha256": sha256sum(staging / WEIGHTS_NAME),
            }
            atomic_write(staging / SOURCE_NAME, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    except OSError:
        if not _valid(final):  # not another process that converted the same file meanwhile
            raise
    logger.info("%s: converted %s into %s", cfg.name, cfg.source, final)
    return final


def converted_weights(cfg: PretrainedCfg, cache_dir: str | Path | None = None) -> Path:
    """The folder of ``cfg``'s third-party weights in the library's format, converting them on first use.

    Args:
        cfg: A pretrained config with a ``layout`` (and a Hub file or a local ``file``).
        cache_dir: Hugging Face cache directory for the download, instead of the default.

    Returns:
        A model folder (``model.safetensors``, ``config.json``, ``README.md``, ``source.json``).

    Raises:
        WeightsNotFoundError: If the file is neither cached nor downloadable (offline: the
            message says which file, its size, how to fetch it and which shipped weights work offline).
        InvalidWeightsError: If its sha256 is not the one pinned, or it cannot be converted
            into the config's variant.
    """
    if (found := find_converted(cfg)) is not None:
        return found
    path = _source(cfg, cache_dir)
    digest = _checked_digest(cfg, path)
    folder = _folder(cfg, digest)
    if not _valid(folder):
        folder = _convert(cfg, path, digest)
    if (ref := _ref(cfg)) is not None:
        ref.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(ref, digest.encode("ascii"))
    return folder


set_third_party_weights(converted_weights)
