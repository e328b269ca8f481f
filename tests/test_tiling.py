"""Seamless tiling: window geometry, and exact stitching for a small convolutional network."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from edsr_lib.memory import MIN_AUTO_TILE, plan_windows
from edsr_lib.ops.tiling import Span, tile_spans, tiled_apply


def _check_spans(spans: list[Span], size: int, tile: int, overlap: int) -> None:
    window = min(size, tile + 2 * overlap)
    assert len(spans) == (1 if size == window else 1 + math.ceil((size - window) / tile))  # as few as cover
    assert spans[0].core_start == 0 and spans[-1].core_stop == size
    for prev, span in itertools.pairwise(spans):
        assert span.core_start == prev.core_stop
    for span in spans:
        assert 0 <= span.start <= span.core_start < span.core_stop <= span.stop <= size
        assert span.stop - span.start == window
        assert span.core_start - span.start >= min(overlap, span.core_start)
        assert span.stop - span.core_stop >= min(overlap, size - span.core_stop)


@pytest.mark.parametrize("size", [1, 5, 47, 48, 49, 100, 257, 2000])
@pytest.mark.parametrize("tile", [1, 7, 48, 300])
@pytest.mark.parametrize("overlap", [0, 3, 36])
def test_tile_spans_cover_the_axis_with_equal_windows(size: int, tile: int, overlap: int) -> None:
    _check_spans(tile_spans(size, tile, overlap), size, tile, overlap)


def test_tile_spans_keep_windows_inside_the_image_and_spread_them_evenly() -> None:
    assert tile_spans(100, 48, 20) == [Span(0, 88, 0, 50), Span(12, 100, 50, 100)]
    assert tile_spans(60, 48, 20) == [Span(0, 60, 0, 60)]
    assert tile_spans(10, 4, 0) == [Span(0, 4, 0, 3), Span(3, 7, 3, 6), Span(6, 10, 6, 10)]
    # 2000 pixels in windows of 557 (tile 485, overlap 36): 4 windows, not 5
    assert [s.start for s in tile_spans(2000, 485, 36)] == [0, 481, 962, 1443]


@pytest.mark.parametrize(("size", "tile", "overlap"), [(0, 4, 1), (5, 0, 1), (5, 4, -1), (5, True, 1), (5, 2.5, 1)])
def test_tile_spans_rejects_bad_arguments(size: int, tile: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"size|tile|overlap"):
        tile_spans(size, tile, overlap)


# Receptive radius in input pixels: 1 + 2 + 1 at input resolution, 1 output pixel = 1/2 input pixel.
RADIUS = 5


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    layers = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1),
        nn.PixelShuffle(2),
        nn.Conv2d(3, 3, 3, padding=1),
    )
    return layers.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("tile", [1, 2, 3, 7, 16, 40])
@pytest.mark.parametrize("batch_size", [5, 64])
def test_tiled_equals_one_pass(net: nn.Module, image: torch.Tensor, tile: int, batch_size: int) -> None:
    expected = net(image)
    tiled = tiled_apply(net, image, 2, tile, RADIUS, batch_size=batch_size)
    assert tiled.shape == expected.shape
    torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tile", [(3, 40), (40, 2), (5, 9), (17, 23)])
def test_rectangular_tiles_equal_one_pass(net: nn.Module, image: torch.Tensor, tile: tuple[int, int]) -> None:
    windows: list[tuple[int, int]] = []

    def spy(batch: torch.Tensor) -> torch.Tensor:
        windows.append(tuple(batch.shape[-2:]))
        return net(batch)

    tiled = tiled_apply(spy, image, 2, tile, RADIUS, batch_size=3)
    torch.testing.assert_close(tiled, net(image), rtol=0, atol=1e-5)
    assert set(windows) == {(min(17, tile[0] + 2 * RADIUS), min(23, tile[1] + 2 * RADIUS))}


def _computed(height: int, width: int, window: tuple[int, int], overlap: int) -> int:
    """The pixels that windows of ``window`` compute on a ``height x width`` image, as tiled_apply cuts it."""
    rows = tile_spans(height, window[0] - 2 * overlap if window[0] < height else height, overlap)
    cols = tile_spans(width, window[1] - 2 * overlap if window[1] < width else width, overlap)
    assert {s.stop - s.start for s in rows} == {window[0]} and {s.stop - s.start for s in cols} == {window[1]}
    return len(rows) * window[0] * len(cols) * window[1]


@pytest.mark.parametrize(("height", "width", "overlap", "max_pixels"), [(60, 64, 5, 1500), (41, 90, 3, 999)])
def test_planned_windows_compute_the_fewest_pixels(height: int, width: int, overlap: int, max_pixels: int) -> None:
    window = plan_windows(height, width, overlap, max_pixels)
    assert window is not None and window[0] * window[1] <= max_pixels
    # every window shape that fits, with cores of at least MIN_AUTO_TILE where an axis is cut
    shapes = [
        (h, w)
        for h in range(1, height + 1)
        for w in range(1, width + 1)
        if h * w <= max_pixels
        and (h == height or h - 2 * overlap >= MIN_AUTO_TILE)
        and (w == width or w - 2 * overlap >= MIN_AUTO_TILE)
    ]
    best = min(_computed(height, width, s, overlap) for s in shapes)
    assert _computed(height, width, window, overlap) == best


def test_windows_are_planned_for_the_image_not_as_squares() -> None:
    # the case: a 640x600 photo under a budget of 557x557-pixel windows ran as four squares, 3.2x its pixels
    window = plan_windows(600, 640, 36, 557 * 557)
    assert window is not None and window[0] * window[1] <= 557 * 557
    assert _computed(600, 640, window, 36) <= 1.15 * 600 * 640
    assert plan_windows(600, 640, 36, 600 * 640) is None  # one pass whenever it fits


def test_overlap_below_the_receptive_radius_leaves_seams(net: nn.Module, image: torch.Tensor) -> None:
    expected = net(image)
    seams = (tiled_apply(net, image, 2, 8, RADIUS - 1) - expected).abs().max().item()
    assert seams > 1e-3


def test_untiled_runs_each_image_in_one_window(image: torch.Tensor) -> None:
    shapes: list[tuple[int, ...]] = []

    def record(batch: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(batch.shape))
        return batch.repeat_interleave(3, -1).repeat_interleave(3, -2)

    out = tiled_apply(record, image, 3, None, 0, batch_size=8)
    assert shapes == [(2, 3, 17, 23)]
    torch.testing.assert_close(out, image.repeat_interleave(3, -1).repeat_interleave(3, -2))


def test_writes_into_a_numpy_view_through_convert(net: nn.Module, image: torch.Tensor) -> None:
    array = np.zeros((34, 46, 1), dtype=np.uint8)
    view = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)

    def convert(core: torch.Tensor) -> torch.Tensor:
        return (core.mean(0, keepdim=True).clamp(0, 1) * 255).round().to(torch.uint8)

    tiled_apply(net, image[:1], 2, 10, RADIUS, out=view, convert=convert)
    expected = (net(image[:1])[0].mean(0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(array[:, :, 0], expected)


def test_rejects_a_function_with_the_wrong_scale(image: torch.Tensor) -> None:
    with pytest.raises(RuntimeError, match="expected"):
        tiled_apply(lambda b: b, image, 2, 8, 1)


def test_rejects_bad_input(net: nn.Module) -> None:
    with pytest.raises(ValueError, match="4-D"):
        tiled_apply(net, torch.rand(3, 8, 8), 2, 4, 1)
    with pytest.raises(ValueError, match="batch_size"):
        tiled_apply(net, torch.rand(1, 3, 8, 8), 2, 4, 1, batch_size=0)


def test_a_progress_function_hears_of_every_batch(net: nn.Module, image: torch.Tensor) -> None:
    calls: list[tuple[int, int]] = []
    windows = 2 * len(tile_spans(17, 6, RADIUS)) * len(tile_spans(23, 6, RADIUS))  # two images
    tiled_apply(net, image, 2, 6, RADIUS, batch_size=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, windows)] + [(min(d, windows), windows) for d in range(4, windows + 3, 4)]
    calls.clear()
    tiled_apply(net, image, 2, None, 0, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]  # one batch is reported too


def test_what_the_progress_function_raises_stops_the_run(net: nn.Module, image: torch.Tensor) -> None:
    class Cancelled(Exception):
        pass

    batches: list[int] = []

    def cancel_after_two(done: int, total: int) -> None:
        if done >= 2:
            raise Cancelled

    def run(batch: torch.Tensor) -> torch.Tensor:
        batches.append(len(batch))
        return net(batch)

    with pytest.raises(Cancelled):
        tiled_apply(run, image, 2, 6, RADIUS, batch_size=1, progress=cancel_after_two)
    assert batches == [1, 1]  # no window after the cancel
