"""Training on several machines: each rank holds only its shard of the images; two "nodes" under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edsr_lib.io import read_image, write_image
from edsr_lib.train import CHECKPOINT_NAME, PatchSampler, make_lr_images
from edsr_lib.train.data import shard_indices


def _write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        paths.append(folder / f"{i:02d}.png")
        write_image(paths[-1], rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return paths


# ------------------------------------------------------------------------ shards
def test_shards_cover_everything_once_and_balance_the_pixels() -> None:
    sizes = [900, 100, 400, 400, 300, 250, 50, 700, 10]
    shards = [shard_indices(sizes, r, 3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(len(sizes)))
    totals = [sum(sizes[i] for i in s) for s in shards]
    assert max(totals) - min(totals) <= max(sizes) // 2, totals
    assert totals == [1050, 1010, 1050]  # largest first, each to the emptiest shard
    assert [shard_indices([1] * 5, r, 2) for r in range(2)] == [[0, 2, 4], [1, 3]]  # equal sizes: dealt in turn


def test_more_processes_than_images_is_refused() -> None:
    with pytest.raises(ValueError, match="2 training images cannot be shared among 3 processes"):
        shard_indices([5, 5], 0, 3)
    with pytest.raises(ValueError, match=r"rank 3 is not in 0\.\.2"):
        shard_indices([5, 5, 5], 3, 3)


def test_a_sampler_shard_reads_only_its_images_across_folders(tmp_path: Path) -> None:
    a = _write_images(tmp_path / "a", [(40, 40), (20, 24), (36, 30)])
    b = _write_images(tmp_path / "b", [(32, 32), (24, 28)], seed=1)
    every = a + b
    sizes = [read_image(p).shape[0] * read_image(p).shape[1] for p in every]
    whole = PatchSampler.from_folders([tmp_path / "a", tmp_path / "b"], [2], 8)
    assert whole.sources == tuple(every)
    held = []
    for rank in range(2):
        part = PatchSampler.from_folders([tmp_path / "a", tmp_path / "b"], [2], 8, shard=(rank, 2))
        assert part.sources == tuple(every[i] for i in shard_indices(sizes, rank, 2))
        assert part.num_images(2) == len(part.sources)
        held += part.sources
    assert sorted(held) == sorted(every)
    by_count = PatchSampler.from_folders([tmp_path / "a", tmp_path / "b"], [2], 8, shard=(1, 2), sample_by="image")
    assert by_count.sources == (every[1], every[3])


# ------------------------------------------------------------- two nodes, torchrun
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_under_torchrun_each_hold_their_shard(tmp_path: Path) -> None:
    """Two torchrun launches (--nnodes=2, --node-rank 0 and 1, static rendezvous on localhost), an LR cache each."""
    paths = _write_images(tmp_path / "train", [(40, 40), (24, 20), (36, 30), (32, 32), (20, 28)])
    out = tmp_path / "run"
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}",
               "--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "edsr_lib",
               "train", "--model", "edsr_baseline_x2", "--model-arg", "n_resblocks=1", "--model-arg", "n_feats=8",
               "--train-dir", str(tmp_path / "train"), "--output-dir", str(out), "--patch-size", "8",
               "--batch-size", "4", "--steps", "3", "--save-every", "3", "--cache-dir", str(tmp_path / f"cache{node}"),
               "--threads", "1", "--no-progress"]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    for proc in procs:
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log[-3000:]

    assert torch.load(out / CHECKPOINT_NAME, weights_only=True)["step"] == 3
    start = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2
    sizes = [read_image(p).shape[0] * read_image(p).shape[1] for p in paths]
    shards = [shard_indices(sizes, rank, 2) for rank in range(2)]
    assert start["images_per_rank"] == [{"x2": len(s)} for s in shards]
    assert start["images"] == {"x2": len(paths)}
    # each node's cache holds the LR images of its own rank's shard, and nothing else
    for node, shard in enumerate(shards):
        (cache,) = (tmp_path / f"cache{node}").glob("*.npz")
        with np.load(cache) as data:
            got = [data[f"lr{i}"] for i in range(len(data.files))]
        want = make_lr_images([read_image(paths[i]) for i in shard], 2)
        assert len(got) == len(want) == len(shard)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
