"""Weights I/O: the library's own format, and where pretrained weights come from.

Use it through :mod:`edsr_lib.hub`. This module knows no model class and no registry: it
reads a model only through what :class:`WeightsModel` names, and a pretrained config only
as data (:class:`~edsr_lib.PretrainedCfg`), so that the models can import it to save
themselves. What needs the model classes (rebuilding a model from its ``config.json``,
telling a name from a folder or a file) lives above the models, in ``edsr_lib._loading``.

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
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import safetensors
import torch
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError
from safetensors.torch import save

from ._card import CardModel
from ._card import model_card as _default_model_card
from ._files import atomic_write, sha256sum
from ._pretrained import PretrainedCfg
from ._version import LIBRARY_NAME, __version__

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "CONFIG_NAME",
    "LIBRARY_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "InvalidWeightsError",
    "NonFiniteError",
    "StateDictDiff",
    "WeightsModel",
    "WeightsNotFoundError",
    "atomic_write",
    "check_finite_weights",
    "diff_state_dicts",
    "load_pretrained",
    "push_to_hub",
    "save_pretrained",
    "sha256sum",
]

#: File names of a model folder, as huggingface_hub's ``ModelHubMixin`` writes them.
WEIGHTS_NAME: str = constants.SAFETENSORS_SINGLE_FILE
CONFIG_NAME: str = constants.CONFIG_NAME
MODEL_CARD_NAME = "README.md"
#: The safetensors metadata key that records the config the weights were saved with.
CONFIG_METADATA_KEY = "edsr_lib.config"


@runtime_checkable
class WeightsModel(Protocol):
    """What weights I/O reads of a model: its architecture name, its config, its state dict, whether it is fused.

    Every model of the library (:class:`~edsr_lib.SRModel`) has it; ``variant`` (the
    registered name) is read where present.
    """

    architecture: str
    fused: bool

    @property
    def config(self) -> dict[str, Any]:
        """The architecture name and the constructor's keyword arguments, which rebuild the model."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The model's tensors by name."""
        ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """Copy ``state_dict`` into the model."""
        ...


class PublishableModel(WeightsModel, CardModel, Protocol):
    """A model that can be saved and described by a model card: what :func:`push_to_hub` reads."""


class WeightsNotFoundError(FileNotFoundError):
    """No weights where they were looked for; the message lists each place tried and why it failed."""


class InvalidWeightsError(ValueError):
    """Weights that cannot go into the model: not safetensors, a wrong sha256, or a mismatched config or state dict."""


# ----------------------------------------------------------------------------- helpers
def is_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; a later change of the variable counts too
    env = os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES
    return constants.HF_HUB_OFFLINE or env


def _first(items: list[str], n: int = 5) -> str:
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def failure_reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _describe(model: WeightsModel) -> str:
    config = model.config
    numbers = ", ".join(f"{k}={config[k]}" for k in ("scale", "scales", "n_resblocks", "n_feats") if k in config)
    return f"{getattr(model, 'variant', None) or type(model).__name__} ({numbers})"


def _check_saveable(model: WeightsModel) -> None:
    if not isinstance(model, torch.nn.Module) or not isinstance(model, WeightsModel) or not model.architecture:
        raise TypeError(f"expected an edsr_lib model (SRModel), got {type(model).__name__}")
    if model.fused:
        raise ValueError(
            "this model is fused for inference (model.fuse() folded constants into its convolutions), so its "
            "weights no longer match config.json; save the model before fusing it"
        )


# ------------------------------------------------------------------ reading and checking
class NonFiniteError(ValueError):
    """A model's weights or output hold NaN or infinite values: nothing is written from them."""


def check_finite_weights(model: torch.nn.Module) -> None:
    """Refuse a model whose weights hold NaN or infinity (its output would be garbage).

    Upscaling refuses such a model, and the converter writes none.

    Raises:
        NonFiniteError: Naming the tensors (the first five, and how many more).
    """
    bad = [
        name
        for name, t in model.state_dict().items()
        if t.is_floating_point() and t.device.type != "meta" and not bool(torch.isfinite(t).all())
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteError(f"the model's weights hold NaN or infinite values in {shown}; its output would be garbage")


def read_config(path: Path) -> dict[str, Any]:
    """A ``config.json``: a JSON object with an ``"architecture"`` name (which models exist is not known here)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidWeightsError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise InvalidWeightsError(f'{path} has no "architecture" entry naming the model family')
    return config


def _config_diffs(model: WeightsModel, config: Mapping[str, Any], theirs: str, ours: str) -> list[str]:
    """Each setting of ``model`` that ``config`` gives another value, as ``key=<theirs> ... but <ours> ...``."""
    own = json.loads(json.dumps(model.config))  # the form config.json stores (tuples become lists)
    return [f"{k}={config[k]!r} {theirs} but {own[k]!r} {ours}" for k in own if k in config and config[k] != own[k]]


def _check_config(model: WeightsModel, config: Mapping[str, Any], source: Path) -> None:
    diffs = _config_diffs(model, config, "in the file", "in the model")
    if diffs:
        raise InvalidWeightsError(
            f"{source} describes a different model than {_describe(model)}: {'; '.join(diffs)}; "
            f"edsr_lib.from_pretrained({str(source.parent)!r}) builds the model it describes"
        )


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except safetensors.SafetensorError as err:
        raise InvalidWeightsError(
            f"{path} is not a valid safetensors file (truncated, corrupted or another format): {failure_reason(err)}"
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


def _check_saved_config(model: WeightsModel, saved: str | None, path: Path) -> None:
    """Refuse weights saved by a model whose settings differ from ``model``'s (files older than the record pass)."""
    if saved is None:
        return
    try:
        then = json.loads(saved)
    except json.JSONDecodeError:
        raise InvalidWeightsError(f"{path}: the config recorded in its metadata is not JSON") from None
    diffs = _config_diffs(model, then, "when saved", "now")
    if diffs:
        raise InvalidWeightsError(
            f"{path} was saved by a model with other settings than {_describe(model)}: {'; '.join(diffs)} "
            "(was config.json edited? these weights give wrong pixels with other values; restore the saved ones)"
        )


def load_into(model: WeightsModel, path: Path) -> None:
    """Load the safetensors file ``path`` into ``model`` strictly, with a clear error on any mismatch."""
    tensors, metadata = read_weights(path)
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
    _check_saved_config(model, metadata.get(CONFIG_METADATA_KEY), path)  # the tensors fit: now what they cannot show
    model.load_state_dict(tensors, strict=True)


def _check_sha256(path: Path, cfg: PretrainedCfg) -> None:
    actual = sha256sum(path)
    if actual != str(cfg.sha256).lower():
        raise InvalidWeightsError(
            f"{path} has sha256 {actual} but {cfg.name} expects {cfg.sha256}: corrupted or different weights"
        )


def hub_download(repo_id: str, filename: str, *, local_only: bool, **kwargs: Any) -> Path:
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


def folder_file(folder: Path, filename: str) -> Path:
    """``filename`` in a model folder, which must hold it."""
    if not (folder / filename).is_file():
        raise WeightsNotFoundError(
            f"{folder} has no {filename}; a model folder (as save_pretrained writes it) holds "
            f"{WEIGHTS_NAME} and {CONFIG_NAME}"
        )
    return folder / filename


def model_file(
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
        return folder_file(local, filename)
    if local.is_file():
        raise ValueError(
            f"{local} is a file; from_pretrained takes a model folder or a Hub repository id "
            "(load a single weights file with edsr_lib.create_model(name, weights=FILE))"
        )
    local_only = bool(local_files_only) or is_offline()
    try:
        return hub_download(
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
            why = "HF_HUB_OFFLINE=1" if is_offline() else "local_files_only=True"
            raise WeightsNotFoundError(f"{target} is not in the Hugging Face cache {cache}, and {why}") from None
        raise WeightsNotFoundError(
            f"could not get {target} from the Hub or the cache {cache}: {failure_reason(err)}"
        ) from None


def _shipped_weights() -> Traversable:
    """The folder of weights shipped inside the package (``edsr_lib/weights/``)."""
    return resources.files("edsr_lib.weights")


def find_pretrained(cfg: PretrainedCfg | None, cache_dir: str | Path | None, stack: contextlib.ExitStack) -> Path:
    """The weights file of ``cfg``: shipped in the package, else in the HF cache, else downloaded."""
    if cfg is None:
        raise WeightsNotFoundError("no weights file given and no pretrained config to look weights up with")
    if cfg.third_party:  # this function finds files of the library's own format
        raise InvalidWeightsError(
            f"{cfg.name}'s weights are a third-party file ({cfg.source}), converted on load, with the pixel "
            f"convention it implies: load them with edsr_lib.create_model({cfg.name!r}, pretrained=True)"
        )
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
        return hub_download(cfg.hf_hub_id, cfg.filename, local_only=True, **pinned)
    except (EntryNotFoundError, OSError):
        tried.append(f"cache: {where} not in {cache_dir or constants.HF_HUB_CACHE}")
    if is_offline():
        tried.append("hub: offline (HF_HUB_OFFLINE=1)")
    else:
        try:
            return hub_download(cfg.hf_hub_id, cfg.filename, local_only=False, **pinned)
        except (HfHubHTTPError, EntryNotFoundError, OSError) as err:
            tried.append(f"hub: download of {where} failed ({failure_reason(err)})")
    raise WeightsNotFoundError(
        f"no weights for {cfg.name}; tried {'; '.join(tried)}; pass weights=FILE_OR_FOLDER to load a local copy"
    )


def verified_pretrained(cfg: PretrainedCfg | None, cache_dir: str | Path | None, stack: contextlib.ExitStack) -> Path:
    """:func:`find_pretrained`, then the sha256 check when ``cfg`` pins one."""
    path = find_pretrained(cfg, cache_dir, stack)
    if cfg.sha256:
        _check_sha256(path, cfg)
    return path


def _explicit_weights(model: WeightsModel, path: Path) -> Path:
    """The weights file a caller named (a file, or a model folder whose config must match ``model``)."""
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise WeightsNotFoundError(f"weights folder {path} has no {WEIGHTS_NAME}")
        if (path / CONFIG_NAME).is_file():
            _check_config(model, read_config(path / CONFIG_NAME), path / CONFIG_NAME)
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
    model: WeightsModel,
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
    # the whole config too: rgb_range, rgb_mean and res_scale shape no tensor, so only this record tells
    # weights from a config.json edited by hand (which would give wrong colours in silence)
    metadata = {
        "format": "pt",
        "architecture": config["architecture"],
        "library": LIBRARY_NAME,
        CONFIG_METADATA_KEY: json.dumps(config, sort_keys=True),
    }
    atomic_write(directory / WEIGHTS_NAME, save(tensors, metadata=metadata))
    atomic_write(directory / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    if model_card is not None:
        atomic_write(directory / MODEL_CARD_NAME, model_card.encode("utf-8"))
    return directory


def load_pretrained(
    model: WeightsModel,
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
            path = verified_pretrained(cfg, cache_dir, stack)
        load_into(model, path)


def push_to_hub(
    model: PublishableModel,
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
