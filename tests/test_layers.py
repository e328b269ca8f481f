"""Building blocks, each used alone and through the block registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edsr_lib.layers import (
    DIV2K_RGB_MEAN,
    MeanShift,
    ResBlock,
    ScalePreprocess,
    Upsampler,
    create_block,
    get_block,
    list_blocks,
    register_block,
)


def test_mean_shift_scales_to_reference_range_and_back() -> None:
    x = torch.rand(2, 3, 5, 7)
    sub, add = MeanShift(255, sign=-1), MeanShift(255, sign=1)
    mean = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(sub(x), (x - mean) * 255)
    torch.testing.assert_close(add(sub(x)), x)
    assert sum(p.numel() for p in sub.parameters()) == 0
    assert sub.state_dict() == {}  # fixed: comes from the config, not the weights


def test_mean_shift_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="sign"):
        MeanShift(sign=0)
    with pytest.raises(ValueError, match="rgb_range"):
        MeanShift(rgb_range=0)


def test_resblock_is_identity_plus_scaled_branch() -> None:
    block = ResBlock(8, kernel_size=3, res_scale=0.1)
    x = torch.randn(1, 8, 6, 6)
    expected = x + 0.1 * block.body(x)
    torch.testing.assert_close(block(x), expected)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())


def test_resblock_fuse_folds_res_scale() -> None:
    block = ResBlock(8, res_scale=0.1)
    x = torch.randn(1, 8, 6, 6)
    before = block(x)
    block.fuse()
    assert block.res_scale == 1.0
    torch.testing.assert_close(block(x), before, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_resblock_keeps_size(kernel_size: int) -> None:
    assert ResBlock(4, kernel_size).forward(torch.randn(1, 4, 7, 9)).shape == (1, 4, 7, 9)


def test_resblock_rejects_even_kernel() -> None:
    with pytest.raises(ValueError, match="odd"):
        ResBlock(4, kernel_size=4)


@pytest.mark.parametrize(("scale", "n_convs"), [(2, 1), (3, 1), (4, 2), (8, 3)])
def test_upsampler_scales(scale: int, n_convs: int) -> None:
    up = Upsampler(scale, 4)
    assert up(torch.randn(1, 4, 5, 6)).shape == (1, 4, 5 * scale, 6 * scale)
    assert sum(isinstance(m, nn.Conv2d) for m in up) == n_convs
    assert not any(isinstance(m, nn.ReLU | nn.PReLU) for m in up)


@pytest.mark.parametrize("scale", [1, 5, 6, 0, -2])
def test_upsampler_refuses_other_scales(scale: int) -> None:
    with pytest.raises(ValueError, match=f"scale {scale}"):
        Upsampler(scale, 4)


def test_scale_preprocess_is_two_5x5_resblocks() -> None:
    pre = ScalePreprocess(8)
    assert [type(m) for m in pre] == [ResBlock, ResBlock]
    assert all(m.kernel_size == (5, 5) for m in pre.modules() if isinstance(m, nn.Conv2d))


def test_block_registry() -> None:
    assert {"mean_shift", "resblock", "upsampler", "scale_preprocess"} <= set(list_blocks())
    assert isinstance(create_block("resblock", n_feats=4), ResBlock)
    assert get_block("upsampler") is Upsampler
    with pytest.raises(ValueError, match="unknown block 'nope'"):
        create_block("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_block("resblock")(nn.Identity)
