"""An offline Hugging Face cache holding files written by the real super-image package.

The ``div2k`` tags name super-image's EDSR files on the Hub (``eugenesiow/edsr-base`` and
``eugenesiow/edsr``); those cannot be downloaded here, so the tests write files of the same
kind with super-image itself (random weights, the model wrapped in ``nn.DataParallel`` as
super-image's trainer saves it, its ``config.json`` beside) and lay them out under the real
repository and file names, at the pinned commit, as huggingface_hub lays out its cache:
``models--org--name/blobs/<sha256>``, ``snapshots/<commit>/<file>`` (a relative symlink to
the blob) and ``refs/main``.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from super_image import EdsrConfig, EdsrModel, MdsrConfig, MdsrModel
from torch import nn

#: super-image's two EDSR repositories: blocks, features, residual scaling (the model cards' numbers).
EDSR_REPOS = {
    "eugenesiow/edsr-base": {"n_resblocks": 16, "n_feats": 64, "res_scale": 1},
    "eugenesiow/edsr": {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1},
}


@dataclass
class SuperImageFile:
    """A file written by super-image: its bytes, the ``config.json`` written with it, and the model."""

    data: bytes
    config: bytes
    model: nn.Module

    @property
    def sha256(self) -> str:
        """The sha256 of :attr:`data`, as the Hub publishes it for an LFS file."""
        return hashlib.sha256(self.data).hexdigest()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """super-image's own forward pass on ``x`` (float NCHW in [0, 1])."""
        with torch.no_grad():
            return self.model.eval()(x)


def _saved(model: nn.Module, config: EdsrConfig | MdsrConfig, tmp: Path) -> SuperImageFile:
    """``model`` saved as super-image's trainer saves a ``data_parallel`` run, with its config.json."""
    buffer = io.BytesIO()
    torch.save(nn.DataParallel(model).state_dict(), buffer)  # keys start with "module."
    config.save_pretrained(str(tmp))
    return SuperImageFile(buffer.getvalue(), (tmp / "config.json").read_bytes(), model)


def edsr_file(repo: str, scale: int, tmp: Path, seed: int = 0) -> SuperImageFile:
    """A super-image ``EdsrModel`` of ``repo``'s size at ``scale`` with random weights, as its file would be."""
    torch.manual_seed(seed)
    config = EdsrConfig(scale=scale, data_parallel=True, **EDSR_REPOS[repo])
    return _saved(EdsrModel(config), config, tmp)


def mdsr_file(scale: int, tmp: Path, *, bam: bool = False, seed: int = 0) -> SuperImageFile:
    """A super-image ``MdsrModel`` (``eugenesiow/mdsr``, or ``mdsr-bam`` with ``bam``) at ``scale``."""
    torch.manual_seed(seed)
    config = MdsrConfig(scale=scale, bam=bam, data_parallel=True)
    return _saved(MdsrModel(config), config, tmp)


def populate(cache: Path, repo_id: str, revision: str, files: dict[str, bytes]) -> Path:
    """Lay ``files`` (name -> bytes) out in the Hugging Face cache ``cache`` as ``repo_id`` at ``revision``.

    Returns:
        The snapshot folder.
    """
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
