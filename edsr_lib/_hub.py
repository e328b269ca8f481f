"""Weights I/O: the library's own format, and where pretrained weights come from.

Use it through :mod:`edsr_lib.hub`, which re-exports every public name here once the
library's models are imported (so that ``config.json`` files naming them can be read).
This module reaches the model classes only through the registry's table of
architectures, which the models fill in, so that the models can import it.

A model folder holds ``model.safetensors`` (the state dict) and ``config.json`` (the
architecture name and the constructor arguments that rebuild the model), the layout of
huggingface_hub's ``ModelHubMixin``; an optional ``README.md`` is its model card.
Everything that touches the Hub, its cache or offline mode goes through huggingface_hub,
and every tensor file through safetensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors
import torch
from huggingface_hub import EvalResult, HfApi, ModelCardData, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError
from safetensors.torch import save

from . import __version__
from ._files import atomic_write, sha256sum
from ._pretrained import PretrainedCfg
from ._registry import architectures, create_model, get_pretrained_cfg, is_model
from .metrics import format_score

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from .models import SRModel

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "InvalidWeightsError",
    "StateDictDiff",
    "WeightsNotFoundError",
    "WeightsSource",
    "atomic_write",
    "diff_state_dicts",
    "from_pretrained",
    "load_config",
    "load_pretrained",
    "model_card",
    "model_card_data",
    "push_to_hub",
    "resolve_weights",
    "save_pretrained",
    "sha256sum",
]

#: File names of a model folder, as huggingface_hub's ``ModelHubMixin`` writes them.
WEIGHTS_NAME: str = constants.SAFETENSORS_SINGLE_FILE
CONFIG_NAME: str = constants.CONFIG_NAME
MODEL_CARD_NAME = "README.md"
LIBRARY_NAME = "edsr-lib"

#: Training sets a model card lists under ``datasets`` when its training data names them.
_KNOWN_DATASETS = ("DIV2K", "Flickr2K", "T91", "BSD200", "General100")

#: The paper, on arXiv: the Hub links a model to a paper through an ``arxiv:<id>`` tag.
PAPER_ARXIV_ID = "1707.02921"
PAPER_URL = f"https://arxiv.org/abs/{PAPER_ARXIV_ID}"

_CITATION = """\
@inproceedings{lim2017enhanced,
  title={Enhanced Deep Residual Networks for Single Image Super-Resolution},
  author={Lim, Bee and Son, Sanghyun and Kim, Heewon and Nah, Seungjun and Lee, Kyoung Mu},
  booktitle={The IEEE Conference on Computer Vision and Pattern Recognition (CVPR) Workshops},
  year={2017}
}"""


class WeightsNotFoundError(FileNotFoundError):
    """No weights where they were looked for; the message lists each place tried and why it failed."""


class InvalidWeightsError(ValueError):
    """Weights that cannot go into the model: not safetensors, a wrong sha256, or a mismatched config or state dict."""


# ----------------------------------------------------------------------------- helpers
def _is_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; a later change of the variable counts too
    env = os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES
    return constants.HF_HUB_OFFLINE or env


def _first(items: list[str], n: int = 5) -> str:
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _describe(model: SRModel) -> str:
    config = model.config
    numbers = ", ".join(f"{k}={config[k]}" for k in ("scale", "scales", "n_resblocks", "n_feats") if k in config)
    return f"{getattr(model, 'variant', None) or type(model).__name__} ({numbers})"


def _check_saveable(model: SRModel) -> None:
    if not isinstance(model, tuple(architectures().values())):
        raise TypeError(f"expected an edsr_lib model (SRModel), got {type(model).__name__}")
    if model.fused:
        raise ValueError(
            "this model is fused for inference (model.fuse() folded constants into its convolutions), so its "
            "weights no longer match config.json; save the model before fusing it"
        )


# ------------------------------------------------------------------ reading and checking
def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidWeightsError(f"{path} is not valid JSON: {err}") from None
    known = architectures()
    if not isinstance(config, dict) or "architecture" not in config:
        raise InvalidWeightsError(f'{path} has no "architecture" entry (one of {", ".join(known)})')
    if config["architecture"] not in known:
        raise InvalidWeightsError(f"{path} names architecture {config['architecture']!r}; known: {', '.join(known)}")
    return config


def _build(config: Mapping[str, Any], source: Path) -> SRModel:
    cls = architectures()[config["architecture"]]
    kwargs = {k: v for k, v in config.items() if k != "architecture"}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise InvalidWeightsError(f"{source} does not describe a {cls.__name__}: {err}") from None


def _check_config(model: SRModel, config: Mapping[str, Any], source: Path) -> None:
    own = json.loads(json.dumps(model.config))  # the form config.json stores (tuples become lists)
    diffs = [
        f"{k}={config[k]!r} in the file but {own[k]!r} in the model" for k in own if k in config and config[k] != own[k]
    ]
    if diffs:
        raise InvalidWeightsError(
            f"{source} describes a different model than {_describe(model)}: {'; '.join(diffs)}; "
            f"edsr_lib.from_pretrained({str(source.parent)!r}) builds the model it describes"
        )


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except safetensors.SafetensorError as err:
        raise InvalidWeightsError(
            f"{path} is not a valid safetensors file (truncated, corrupted or another format): {_reason(err)}"
        ) from None
    return tensors, metadata


@dataclasses.dataclass(frozen=True)
class StateDictDiff:
    """How a state dict differs from the one expected: keys missing, keys unexpected, shapes that differ.

    Attributes:
        missing: Expected keys the state dict lacks.
        unexpected: Keys of the state dict that are not expected.
        wrong_shapes: ``(key, shape in the state dict, expected shape)`` for the keys in both.
    """

    missing: list[str]
    unexpected: list[str]
    wrong_shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shapes)


def diff_state_dicts(
    expected: Mapping[str, torch.Tensor | torch.Size | None], found: Mapping[str, torch.Tensor]
) -> StateDictDiff:
    """Compare ``found`` with ``expected`` key by key and shape by shape, in ``expected``'s order.

    Args:
        expected: The keys wanted, each with a tensor or a shape to match (``None``: any shape).
        found: The state dict to check.
    """
    shapes = {
        k: None if v is None else tuple(v.shape if isinstance(v, torch.Tensor) else v) for k, v in expected.items()
    }
    return StateDictDiff(
        missing=[k for k in shapes if k not in found],
        unexpected=[k for k in found if k not in shapes],
        wrong_shapes=[
            (k, tuple(found[k].shape), shape)
            for k, shape in shapes.items()
            if k in found and shape is not None and tuple(found[k].shape) != shape
        ],
    )


def _load_into(model: SRModel, path: Path) -> None:
    """Load the safetensors file ``path`` into ``model`` strictly, with a clear error on any mismatch."""
    tensors, metadata = _read_weights(path)
    arch = metadata.get("architecture")
    if arch and arch != model.architecture:
        raise InvalidWeightsError(f"{path} holds {arch!r} weights, not {model.architecture!r} ({_describe(model)})")
    diff = diff_state_dicts(model.state_dict(), tensors)
    if diff:
        problems = {
            "missing keys": diff.missing,
            "unexpected keys": diff.unexpected,
            "wrong shapes": [f"{k} {got} in the file but {want} in the model" for k, got, want in diff.wrong_shapes],
        }
        found = "; ".join(f"{label}: {_first(items)}" for label, items in problems.items() if items)
        raise InvalidWeightsError(f"{path} does not match {_describe(model)}: {found}")
    model.load_state_dict(tensors, strict=True)


def _check_sha256(path: Path, cfg: PretrainedCfg) -> None:
    actual = sha256sum(path)
    if actual != str(cfg.sha256).lower():
        raise InvalidWeightsError(
            f"{path} has sha256 {actual} but {cfg.name} expects {cfg.sha256}: corrupted or different weights"
        )


def _hub_download(repo_id: str, filename: str, *, local_only: bool, **kwargs: Any) -> Path:
    return Path(
        hf_hub_download(
            repo_id,
            filename,
            local_files_only=local_only,
            library_name=LIBRARY_NAME,
            library_version=__version__,
            **kwargs,
        )
    )


def _folder_file(folder: Path, filename: str) -> Path:
    """``filename`` in a model folder, which must hold it."""
    if not (folder / filename).is_file():
        raise WeightsNotFoundError(
            f"{folder} has no {filename}; a model folder (as save_pretrained writes it) holds "
            f"{WEIGHTS_NAME} and {CONFIG_NAME}"
        )
    return folder / filename


def _model_file(
    path_or_repo_id: str | Path,
    filename: str,
    *,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool | None,
) -> Path:
    """``filename`` of a local model folder, or of a Hub repository (downloaded or from the cache)."""
    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        return _folder_file(local, filename)
    if local.is_file():
        raise ValueError(
            f"{local} is a file; from_pretrained takes a model folder or a Hub repository id "
            "(load a single weights file with edsr_lib.create_model(name, weights=FILE))"
        )
    local_only = bool(local_files_only) or _is_offline()
    try:
        return _hub_download(
            str(path_or_repo_id), filename, local_only=local_only, revision=revision, cache_dir=cache_dir
        )
    except HFValidationError:
        raise WeightsNotFoundError(
            f"{str(path_or_repo_id)!r} is neither a local folder nor a Hugging Face Hub repository id ('org/name')"
        ) from None
    except (HfHubHTTPError, EntryNotFoundError, OSError) as err:
        target = f"{path_or_repo_id}/{filename}"
        cache = cache_dir or constants.HF_HUB_CACHE
        if local_only:
            why = "HF_HUB_OFFLINE=1" if _is_offline() else "local_files_only=True"
            raise WeightsNotFoundError(f"{target} is not in the Hugging Face cache {cache}, and {why}") from None
        raise WeightsNotFoundError(
            f"could not get {target} from the Hub or the cache {cache}: {_reason(err)}"
        ) from None


def _shipped_weights() -> Traversable:
    """The folder of weights shipped inside the package (``edsr_lib/weights/``)."""
    return resources.files("edsr_lib.weights")


def _find_pretrained(cfg: PretrainedCfg | None, cache_dir: str | Path | None, stack: contextlib.ExitStack) -> Path:
    """The weights file of ``cfg``: shipped in the package, else in the HF cache, else downloaded."""
    if cfg is None:
        raise WeightsNotFoundError("no weights file given and no pretrained config to look weights up with")
    tried: list[str] = []
    if cfg.package_file:
        shipped = _shipped_weights().joinpath(cfg.package_file)
        if shipped.is_file():
            # as_file gives a real path even from a zipped install; it lives as long as the stack
            return stack.enter_context(resources.as_file(shipped))
        tried.append(f"package: edsr_lib/weights/{cfg.package_file} is not installed")
    else:
        tried.append("package: no shipped copy")
    if not cfg.hf_hub_id:
        tried.append("cache and hub: the pretrained config names no Hub repository")
        raise WeightsNotFoundError(f"no weights for {cfg.name}; tried {'; '.join(tried)}")
    where = f"{cfg.hf_hub_id}/{cfg.filename}" + (f" at revision {cfg.revision}" if cfg.revision else "")
    pinned = {"revision": cfg.revision, "cache_dir": cache_dir}
    try:
        return _hub_download(cfg.hf_hub_id, cfg.filename, local_only=True, **pinned)
    except (EntryNotFoundError, OSError):
        tried.append(f"cache: {where} not in {cache_dir or constants.HF_HUB_CACHE}")
    if _is_offline():
        tried.append("hub: offline (HF_HUB_OFFLINE=1)")
    else:
        try:
            return _hub_download(cfg.hf_hub_id, cfg.filename, local_only=False, **pinned)
        except (HfHubHTTPError, EntryNotFoundError, OSError) as err:
            tried.append(f"hub: download of {where} failed ({_reason(err)})")
    raise WeightsNotFoundError(
        f"no weights for {cfg.name}; tried {'; '.join(tried)}; pass weights=FILE_OR_FOLDER to load a local copy"
    )


def _verified_pretrained(cfg: PretrainedCfg | None, cache_dir: str | Path | None, stack: contextlib.ExitStack) -> Path:
    """:func:`_find_pretrained`, then the sha256 check when ``cfg`` pins one."""
    path = _find_pretrained(cfg, cache_dir, stack)
    if cfg.sha256:
        _check_sha256(path, cfg)
    return path


def _explicit_weights(model: SRModel, path: Path) -> Path:
    """The weights file a caller named (a file, or a model folder whose config must match ``model``)."""
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise WeightsNotFoundError(f"weights folder {path} has no {WEIGHTS_NAME}")
        if (path / CONFIG_NAME).is_file():
            _check_config(model, _read_config(path / CONFIG_NAME), path / CONFIG_NAME)
        return weights
    if not path.exists():
        raise WeightsNotFoundError(f"weights file {path} does not exist")
    if path.suffix != ".safetensors":
        raise InvalidWeightsError(
            f"{path} is not a .safetensors file; convert third-party checkpoints (.pt, .pth) with `edsr-lib convert`"
        )
    return path


# --------------------------------------------------------------------------- public API
def save_pretrained(
    model: SRModel,
    save_directory: str | Path,
    *,
    model_card: str | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and optionally ``README.md`` to a folder.

    Each file is written atomically. The safetensors metadata records the format and
    the architecture; ``config.json`` is :attr:`SRModel.config`, which rebuilds the model.

    Args:
        model: An unfused edsr-lib model.
        save_directory: The folder (created if needed).
        model_card: Text of ``README.md`` (see :func:`model_card`); none is written if ``None``.
        dtype: Store the tensors in this floating-point dtype (``torch.float16`` halves the
            file); ``None`` keeps the model's. Loading converts them back to the dtype of
            the model they are loaded into.

    Returns:
        The folder.

    Raises:
        ValueError: If the model is fused, or ``dtype`` is not a floating-point dtype.
        TypeError: If ``model`` is not an edsr-lib model.
    """
    _check_saveable(model)
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"weights are stored in a floating-point dtype, not {dtype}")
    directory = Path(save_directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    tensors = {k: v.detach().cpu().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", "architecture": config["architecture"], "library": LIBRARY_NAME}
    atomic_write(directory / WEIGHTS_NAME, save(tensors, metadata=metadata))
    atomic_write(directory / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    if model_card is not None:
        atomic_write(directory / MODEL_CARD_NAME, model_card.encode("utf-8"))
    return directory


def load_config(
    path_or_repo: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> dict[str, Any]:
    """Read and check the ``config.json`` of a model folder or Hub repository.

    Args:
        path_or_repo: A local folder or a Hub repository id (``"org/name"``).
        revision: Hub branch, tag or commit.
        cache_dir: Hugging Face cache directory to use instead of the default.
        local_files_only: Only use the Hugging Face cache (always so when ``HF_HUB_OFFLINE=1``).

    Returns:
        The config: ``"architecture"`` plus the constructor's keyword arguments.

    Raises:
        WeightsNotFoundError: If there is no such file.
        InvalidWeightsError: If it is not JSON or names no known architecture.
    """
    path = _model_file(
        path_or_repo, CONFIG_NAME, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
    )
    return _read_config(path)


def from_pretrained(
    path_or_repo_id: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
    map_location: str | torch.device = "cpu",
) -> SRModel:
    """Rebuild a model from a folder or Hub repository holding ``config.json`` and ``model.safetensors``.

    Args:
        path_or_repo_id: A local folder (as :func:`save_pretrained` writes it) or a Hub
            repository id (``"org/name"``), downloaded or read from the Hugging Face cache.
        revision: Hub branch, tag or commit.
        cache_dir: Hugging Face cache directory to use instead of the default.
        local_files_only: Only use the Hugging Face cache (always so when ``HF_HUB_OFFLINE=1``).
        map_location: Device of the returned model.

    Returns:
        The model with its weights loaded, in eval mode.

    Raises:
        WeightsNotFoundError: If the folder or repository lacks the files.
        InvalidWeightsError: If the config or the weights cannot be used.
    """
    where = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only}
    config_path = _model_file(path_or_repo_id, CONFIG_NAME, **where)
    model = _build(_read_config(config_path), config_path)
    _load_into(model, _model_file(path_or_repo_id, WEIGHTS_NAME, **where))
    return model.to(map_location).eval()


def load_pretrained(
    model: SRModel,
    cfg: PretrainedCfg | None,
    *,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> None:
    """Load pretrained weights into ``model`` (in place), as ``create_model(..., pretrained=True)`` does.

    The weights come from the first of: ``weights``, if given; the copy shipped inside
    the package (``edsr_lib/weights/<cfg.package_file>``); the Hugging Face cache; a
    download from the Hub (not when offline, ``HF_HUB_OFFLINE=1``). When ``cfg.sha256`` is
    set, the file must have that digest.

    Args:
        model: An unfused model built with the architecture of the weights.
        cfg: The pretrained config, or ``None`` when ``weights`` is given alone.
        weights: A ``.safetensors`` file, or a model folder whose ``config.json`` (if
            present) must describe the same model.
        cache_dir: Hugging Face cache directory to use instead of the default.

    Raises:
        WeightsNotFoundError: If no place has the weights (the message lists each place tried).
        InvalidWeightsError: If the file is not safetensors, has the wrong sha256, or its
            config, keys or shapes do not match the model.
        ValueError: If the model is fused.
    """
    if model.fused:
        raise ValueError("load weights into the model before fusing it (model.fuse())")
    with contextlib.ExitStack() as stack:
        if weights is not None:
            path = _explicit_weights(model, Path(weights).expanduser())
            if cfg is not None and cfg.sha256:
                _check_sha256(path, cfg)
        else:
            path = _verified_pretrained(cfg, cache_dir, stack)
        _load_into(model, path)


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """What a user's name for weights stands for: a registered model's pretrained weights, a model folder, or a file.

    :func:`resolve_weights` makes one; everything that takes "a name, a folder or a file"
    (``edsr-lib upscale --model``, ``convert``, ``train --init-from``, the release tool)
    reads it through this class, so that the three are told apart by one rule.

    Attributes:
        source: What the user gave.
        cfg: The pretrained config, when ``source`` names a registered model.
        path: The folder (``save_pretrained`` layout) or the weights file, otherwise.
    """

    source: str
    cfg: PretrainedCfg | None = None
    path: Path | None = None

    @property
    def kind(self) -> str:
        """``"pretrained"``, ``"folder"`` or ``"file"``."""
        if self.cfg is not None:
            return "pretrained"
        return "folder" if self.path is not None and self.path.is_dir() else "file"

    @property
    def weights_file(self) -> Path | None:
        """The local weights file: a folder's ``model.safetensors``, or the file; ``None`` for pretrained weights."""
        if self.path is None:
            return None
        return self.path / WEIGHTS_NAME if self.path.is_dir() else self.path

    @property
    def folder(self) -> Path | None:
        """The model folder this source stands for: the folder, or that of a ``model.safetensors`` beside its config."""
        if self.path is None:
            return None
        if self.path.is_dir():
            return self.path
        beside = self.path.parent / CONFIG_NAME
        return self.path.parent if self.path.name == WEIGHTS_NAME and beside.is_file() else None

    def sha256(self) -> str:
        """The sha256 of the weights file (for pretrained weights, the digest their config pins, else the file's)."""
        if self.cfg is not None:
            if self.cfg.sha256:
                return str(self.cfg.sha256).lower()
            with contextlib.ExitStack() as stack:
                return sha256sum(_find_pretrained(self.cfg, None, stack))
        return sha256sum(self.weights_file)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors of a safetensors source (pretrained weights are found and sha256-checked first).

        Raises:
            InvalidWeightsError: If the file is not safetensors (``.pt`` files are read by
                whoever knows their layout: ``edsr-lib convert``, the trainer).
        """
        with contextlib.ExitStack() as stack:
            if self.cfg is not None:
                path = _verified_pretrained(self.cfg, None, stack)
            else:
                path = self.weights_file
                if path.suffix != ".safetensors":
                    raise InvalidWeightsError(f"{path} is not a .safetensors file")
            return _read_weights(path)[0]

    def load_model(self) -> SRModel:
        """The model with these weights: ``create_model(name, pretrained=True)``, or a folder's :func:`from_pretrained`.

        A ``model.safetensors`` beside its ``config.json`` stands for its folder.

        Raises:
            ValueError: If the source is a lone weights file, which does not say what model it is.
        """
        if self.cfg is not None:
            return create_model(self.source, pretrained=True)
        if self.folder is not None:
            return from_pretrained(self.folder)
        raise ValueError(
            f"{self.source} is a file, which does not say what model it holds: pass a registered model name or a "
            f"folder written by save_pretrained (a {WEIGHTS_NAME} with its {CONFIG_NAME}); load a lone weights file "
            "with edsr_lib.create_model(name, weights=FILE), and read a third-party checkpoint with `edsr-lib convert`"
        )


def resolve_weights(source: str | os.PathLike[str]) -> WeightsSource:
    """What ``source`` names: an existing folder or file, else a registered model name (``"arch"`` or ``"arch.tag"``).

    A path that exists wins over a model name, so a folder called ``edsr_baseline_x2`` in
    the current directory is that folder.

    Raises:
        ValueError: If ``source`` is neither an existing path nor a registered model name.
        WeightsNotFoundError: If a folder has no ``model.safetensors``, or a registered
            model has no pretrained weights (or no such tag).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        _folder_file(path, WEIGHTS_NAME)
        return WeightsSource(str(source), path=path)
    if path.is_file():
        return WeightsSource(str(source), path=path)
    if isinstance(source, str) and is_model(source):
        try:
            return WeightsSource(source, cfg=get_pretrained_cfg(source))
        except ValueError as err:
            raise WeightsNotFoundError(str(err)) from None
    raise ValueError(
        f"{str(source)!r} is neither a registered model name nor a folder written by save_pretrained "
        f"({CONFIG_NAME} and {WEIGHTS_NAME}); `edsr-lib models` lists the names"
    )


def model_card_data(model: SRModel, cfg: PretrainedCfg | None = None, **extra: Any) -> ModelCardData:
    """The YAML front matter of a model card, as huggingface_hub's :class:`~huggingface_hub.ModelCardData`.

    It holds the licence, ``library_name``, ``pipeline_tag: image-to-image``, tags (with
    ``arxiv:1707.02921``, the Hub's link to the paper), the training sets it can name, and
    the scores of ``cfg.metrics`` as structured results (``model-index``): one
    :class:`~huggingface_hub.EvalResult` per set, scale and metric, on the benchmark
    protocol (Y channel, ``crop_border = scale``); self-ensemble scores (sets named with a
    ``+``) carry ``self_ensemble: true`` in their ``metric_args``.

    Args:
        model: The model the card describes.
        cfg: Its pretrained config; defaults to ``model.pretrained_cfg``.
        **extra: Further front matter (e.g. ``base_model=...``), or replacements for the
            defaults (``license``, ``tags``, ``datasets``, ``pipeline_tag``, ``eval_results``).

    Returns:
        The card data; ``ModelCard(text).data`` reads the same back from a card.
    """
    cfg = cfg if cfg is not None else getattr(model, "pretrained_cfg", None)
    training_data = cfg.training_data if cfg else None
    tags = ["super-resolution", "edsr", model.architecture, "pytorch", "safetensors", f"arxiv:{PAPER_ARXIV_ID}"]
    front: dict[str, Any] = {
        "license": (cfg.license if cfg else None) or "unknown",
        "library_name": LIBRARY_NAME,
        "tags": list(dict.fromkeys(tags)),
        "datasets": [d for d in _KNOWN_DATASETS if training_data and d.lower() in training_data.lower()] or None,
        "pipeline_tag": "image-to-image",
        "model_name": cfg.name if cfg else None,
        "eval_results": _eval_results(cfg.metrics) if cfg and cfg.metrics else None,
        **extra,
    }
    if front["eval_results"] and not front["model_name"]:
        front["model_name"] = getattr(model, "variant", None) or model.architecture  # model-index needs a name
    return ModelCardData(**front)


_METRIC_NAMES = {"psnr": "PSNR (dB)", "ssim": "SSIM"}


def _eval_results(metrics: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[EvalResult]:
    """``cfg.metrics`` as the Hub's structured results, in the order of the table."""
    results = []
    for set_name, per_scale in metrics.items():
        dataset = set_name.removesuffix("+")
        ensemble = set_name.endswith("+")
        for scale_name in sorted(per_scale, key=_scale_order):
            scale = int(scale_name.lstrip("x")) if scale_name.lstrip("x").isdigit() else None
            for metric, value in per_scale[scale_name].items():
                results.append(
                    EvalResult(
                        task_type="image-to-image",
                        task_name="Image Super-Resolution",
                        dataset_type=dataset,
                        dataset_name=f"{dataset} {scale_name}",
                        dataset_config=f"bicubic_{scale_name}",
                        dataset_split="test",
                        metric_type=metric,
                        metric_name=_METRIC_NAMES.get(metric, metric) + (", self-ensemble" if ensemble else ""),
                        metric_value=round(float(value), 4),
                        metric_args={"crop_border": scale, "test_y_channel": True, "self_ensemble": ensemble},
                    )
                )
    return results


def _scale_order(key: str) -> tuple[int, str]:
    digits = key.lstrip("x")
    return (int(digits), key) if digits.isdigit() else (1 << 30, key)


def model_card(
    model: SRModel,
    cfg: PretrainedCfg | None = None,
    *,
    repo_id: str | None = None,
    sections: Mapping[str, str] | None = None,
    **extra: Any,
) -> str:
    """A Hugging Face model card (``README.md``) for ``model`` and its pretrained config.

    The card is built from named sections in a fixed order: Usage, Training, Results,
    then any further sections of ``sections``, then License and Citation.

    Args:
        model: The model the card describes.
        cfg: Its pretrained config (training data, command, steps, licence, metrics);
            defaults to ``model.pretrained_cfg`` when the model was built with weights.
        repo_id: Hub repository the card will live in, for the usage snippet.
        sections: Further sections by title, in order, as Markdown without the heading.
            The text of a title the card already has (``"Training"``, ``"Results"``) is
            added at the end of that section; other titles become sections of their own
            after the results. ``"License"`` and ``"Citation"`` are the card's own.
        **extra: Further YAML front matter (e.g. ``base_model=...``), or replacements
            for the defaults; see :func:`model_card_data`.

    Returns:
        The card: YAML front matter (:func:`model_card_data`), description, then the sections.

    Raises:
        ValueError: If ``sections`` names License or Citation.
    """
    cfg = cfg if cfg is not None else getattr(model, "pretrained_cfg", None)
    family = type(model).__name__
    name = cfg.name if cfg else getattr(model, "variant", None) or model.architecture
    training_data = cfg.training_data if cfg else None
    config = model.config
    scales = ", ".join(f"x{s}" for s in model.scales)
    head = [
        "---",
        model_card_data(model, cfg, **extra).to_yaml(),
        "---",
        "",
        f"# {name}",
        "",
        *([cfg.description, ""] if cfg and cfg.description else []),
        f"{family} ({config.get('n_resblocks')} residual blocks, {config.get('n_feats')} features, "
        f"res_scale {config.get('res_scale')}; scales {scales}; {model.num_parameters():,} parameters) "
        f'from "Enhanced Deep Residual Networks for Single Image Super-Resolution" (Lim et al., CVPR 2017 '
        f"workshops; [arXiv:{PAPER_ARXIV_ID}]({PAPER_URL})), in the [{LIBRARY_NAME}](https://edsr-lib.readthedocs.io) "
        "format: `model.safetensors` with the `config.json` that rebuilds the model.",
        "",
    ]
    usage = ["```python", "import edsr_lib", ""]
    hub_id = repo_id or (cfg.hf_hub_id if cfg else None)
    if cfg:
        usage.append(f'model = edsr_lib.create_model("{cfg.name}", pretrained=True)')
        if hub_id:
            pin = f', revision="{cfg.revision}"' if cfg.revision and not repo_id else ""
            usage.append(f'# or: model = edsr_lib.from_pretrained("{hub_id}"{pin})')
    else:
        usage.append(f'model = edsr_lib.from_pretrained("{hub_id or "path/to/this/folder"}")')
    scale = model.scales[0]
    usage += [f"sr = model(lr, scale={scale})  # lr: float RGB NCHW in [0, 1]; sr is {scale}x larger", "```"]
    training = [
        *([f"- Data: {training_data}"] if training_data else []),
        *([f"- Steps: {cfg.steps:,}"] if cfg and cfg.steps else []),
        *([f"- Command: `{cfg.training_command}`"] if cfg and cfg.training_command else []),
    ]
    body: dict[str, list[str]] = {
        "Usage": usage,
        "Training": training,
        "Results": _metrics_table(cfg.metrics) if cfg and cfg.metrics else [],
    }
    for title, text in (sections or {}).items():
        if title in ("License", "Citation"):
            raise ValueError(f"the {title} section is the card's own; it cannot be given")
        part = text.strip("\n").splitlines()
        body[title] = [*body[title], "", *part] if body.get(title) else part
    if cfg and cfg.license:
        body["License"] = [f"The weights are released under the `{cfg.license}` licence (Hugging Face licence id)."]
    body["Citation"] = ["```bibtex", _CITATION, "```"]
    lines = head
    for title, part in body.items():
        if part:
            lines += [f"## {title}", "", *part, ""]
    return "\n".join(lines)


def _metrics_table(metrics: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    scales = sorted({s for per_scale in metrics.values() for s in per_scale}, key=_scale_order)

    def cell(scores: Mapping[str, float] | None) -> str:
        return format_score(scores.get("psnr"), scores.get("ssim")) if scores else "-"

    return [
        "PSNR (dB) / SSIM on the Y channel, ignoring `scale` pixels at every border; LR made with "
        "MATLAB-style bicubic downsampling.",
        "",
        "| set | " + " | ".join(scales) + " |",
        "|---|" + "---|" * len(scales),
        *(f"| {name} | " + " | ".join(cell(per.get(s)) for s in scales) + " |" for name, per in metrics.items()),
    ]


# push_to_hub's ``model_card`` argument shadows the function of that name
_default_model_card = model_card


def push_to_hub(
    model: SRModel,
    repo_id: str,
    *,
    commit_message: str = "Upload edsr-lib model",
    private: bool | None = None,
    token: str | None = None,
    model_card: str | None = None,
) -> str:
    """Upload ``model.safetensors``, ``config.json`` and ``README.md`` to a Hub repository.

    The repository is created if needed; the files are written by :func:`save_pretrained`.

    Args:
        model: An unfused edsr-lib model.
        repo_id: ``"org/name"``.
        commit_message: Message of the commit.
        private: Visibility of a newly created repository (the Hub's default if ``None``).
        token: Hub token (the stored login if ``None``).
        model_card: Text of ``README.md``; a card from :func:`model_card` if ``None``.

    Returns:
        The URL of the commit.
    """
    _check_saveable(model)
    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    if model_card is None:
        model_card = _default_model_card(model, repo_id=repo.repo_id)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, model_card=model_card)
        info = api.upload_folder(repo_id=repo.repo_id, folder_path=tmp, commit_message=commit_message)
    return info.commit_url
