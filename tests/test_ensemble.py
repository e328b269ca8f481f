"""Self-ensemble: the eight dihedral transforms, their inverses, and the batched average."""

from __future__ import annotations

import pytest
import torch

import edsr_lib
from edsr_lib.ops.ensemble import DIHEDRAL_TRANSFORMS, dihedral, self_ensemble, undo_dihedral


def test_the_eight_transforms_are_distinct_and_invertible() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    images = {tuple(dihedral(x, t).flatten().tolist()) + tuple(dihedral(x, t).shape) for t in DIHEDRAL_TRANSFORMS}
    assert len(DIHEDRAL_TRANSFORMS) == 8 and len(images) == 8
    for t in DIHEDRAL_TRANSFORMS:
        assert torch.equal(undo_dihedral(dihedral(x, t), t), x)
    # the group contains the 90-degree rotation and the horizontal flip
    assert any(torch.equal(dihedral(x, t), torch.rot90(x, 1, (-2, -1))) for t in DIHEDRAL_TRANSFORMS)
    assert any(torch.equal(dihedral(x, t), x.flip(-1)) for t in DIHEDRAL_TRANSFORMS)


@pytest.fixture(scope="module")
def model() -> edsr_lib.SRModel:
    torch.manual_seed(0)
    return edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=16).eval()


@pytest.mark.parametrize("shape", [(1, 3, 11, 11), (2, 3, 9, 14)])
@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_equals_the_mean_of_eight_explicit_runs(model: edsr_lib.SRModel, shape: tuple, batch_size: int | None) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        runs = [undo_dihedral(model(dihedral(x, t)), t) for t in DIHEDRAL_TRANSFORMS]
        result = self_ensemble(model, x, batch_size=batch_size)
    expected = torch.stack(runs).mean(0)
    assert result.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5)
    # the average is not the plain output: the transforms really ran
    assert (result - runs[0]).abs().max() > 1e-4


def test_batches_by_shape() -> None:
    seen: list[tuple[int, ...]] = []

    def record(batch: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(batch.shape))
        return batch

    self_ensemble(record, torch.rand(1, 3, 4, 6))
    assert seen == [(4, 3, 4, 6), (4, 3, 6, 4)]
    seen.clear()
    self_ensemble(record, torch.rand(2, 3, 5, 5), batch_size=6)
    assert seen == [(6, 3, 5, 5), (6, 3, 5, 5), (4, 3, 5, 5)]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="4-D"):
        self_ensemble(lambda b: b, torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="batch_size"):
        self_ensemble(lambda b: b, torch.rand(1, 3, 4, 4), batch_size=0)
