"""Models from what a user names: a registered model, a model folder, or a weights file.

:func:`from_pretrained` and :func:`load_config` rebuild a model from a folder or Hub
repository; :func:`resolve_weights` tells "a name, a folder or a file" apart by one rule
(``edsr-lib upscale --model``, ``convert``, ``train --init-from`` and the release tool read
it through its :class:`WeightsSource`). This module sits above the models: it imports them,
so that every architecture a ``config.json`` can name and every registered name is known;
the file format and the search for pretrained weights are :mod:`edsr_lib._hub`'s. Use it
through :mod:`edsr_lib.hub`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ._hub import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    InvalidWeightsError,
    WeightsNotFoundError,
    find_pretrained,
    folder_file,
    load_into,
    model_file,
    read_config,
    read_weights,
    sha256sum,
    verified_pretrained,
)
from ._pretrained import PretrainedCfg
from ._registry import architectures, create_model, get_pretrained_cfg, is_model
from .models import SRModel  # the model files add their architectures and variants as they are imported

__all__ = ["WeightsSource", "from_pretrained", "load_config", "resolve_weights"]


def _known_config(path: Path) -> dict[str, Any]:
    """:func:`edsr_lib._hub.read_config`, and its architecture must be one the library has."""
    config = read_config(path)
    known = architectures()
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
    path = model_file(
        path_or_repo, CONFIG_NAME, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
    )
    return _known_config(path)


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
    config_path = model_file(path_or_repo_id, CONFIG_NAME, **where)
    model = _build(_known_config(config_path), config_path)
    load_into(model, model_file(path_or_repo_id, WEIGHTS_NAME, **where))
    return model.to(map_location).eval()


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
                return sha256sum(find_pretrained(self.cfg, None, stack))
        return sha256sum(self.weights_file)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors of a safetensors source (pretrained weights are found and sha256-checked first).

        Raises:
            InvalidWeightsError: If the file is not safetensors (``.pt`` files are read by
                whoever knows their layout: ``edsr-lib convert``, the trainer).
        """
        with contextlib.ExitStack() as stack:
            if self.cfg is not None:
                path = verified_pretrained(self.cfg, None, stack)
            else:
                path = self.weights_file
                if path.suffix != ".safetensors":
                    raise InvalidWeightsError(f"{path} is not a .safetensors file")
            return read_weights(path)[0]

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
        folder_file(path, WEIGHTS_NAME)
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
