"""The Ray Data recipe on a real local Ray (two CPU workers): the same files as ``edsr-lib upscale``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'ray[data]'")

import edsr_lib  # noqa: E402
from edsr_lib.cli import main  # noqa: E402
from edsr_lib.integrations.ray import Upscaler, output_path, upscale_folder  # noqa: E402
from edsr_lib.io import read_image  # noqa: E402

pytestmark = pytest.mark.slow  # starting Ray takes seconds


@pytest.fixture(scope="module")
def local_ray():
    # the workers import edsr_lib from this checkout, and use one thread each
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(edsr_lib.__file__).parents[1])}}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=env, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny_x2")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (12, 9), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (10, 14, 4), dtype=np.uint8)).save(folder / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(folder / "photo.jpg", quality=90)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_ray_recipe_writes_what_the_cli_writes(local_ray: None, model_dir: Path, photos: Path, tmp_path: Path) -> None:
    cli_out, ray_out = tmp_path / "cli", tmp_path / "ray"
    assert main(["upscale", str(photos), "-o", str(cli_out), "--model", str(model_dir)]) == 1  # broken.png fails

    rows = upscale_folder(photos, ray_out, model=str(model_dir), workers=2, batch_size=2)
    status = {Path(r["path"]).name: r["status"] for r in rows}
    assert status.pop("broken.png").startswith("error: ")
    assert status == dict.fromkeys(["alpha.png", "gray.png", "photo.jpg", "rgb.png"], "written")
    assert sorted(p.name for p in ray_out.iterdir()) == sorted(p.name for p in cli_out.iterdir())
    for written in cli_out.iterdir():
        np.testing.assert_array_equal(read_image(ray_out / written.name), read_image(written))
    assert not [p for p in ray_out.iterdir() if p.name.startswith(".")]  # no temporary files left

    # a rerun skips what exists and rewrites nothing; a deleted output is made again
    stamps = {p.name: p.stat().st_mtime_ns for p in ray_out.iterdir()}
    (ray_out / "rgb_x2.png").unlink()
    again = upscale_folder(photos, ray_out, model=str(model_dir), workers=2)
    status = {Path(r["path"]).name: r["status"] for r in again}
    assert status.pop("broken.png").startswith("error: ")
    assert status == {"alpha.png": "skipped", "gray.png": "skipped", "photo.jpg": "skipped", "rgb.png": "written"}
    for name, stamp in stamps.items():
        if name != "rgb_x2.png":
            assert (ray_out / name).stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(read_image(ray_out / "rgb_x2.png"), read_image(cli_out / "rgb_x2.png"))


def test_one_model_per_actor(local_ray: None, model_dir: Path, photos: Path, tmp_path: Path) -> None:
    """Each actor builds its Upscaler once, however many batches it runs."""

    @ray.remote
    class Counter:
        def __init__(self) -> None:
            self.pids: list[int] = []

        def add(self, pid: int) -> None:
            self.pids.append(pid)

        def get(self) -> list[int]:
            return self.pids

    counter = Counter.remote()

    class Counted(Upscaler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            ray.get(counter.add.remote(os.getpid()))

    files = [{"path": str(p)} for p in sorted(photos.glob("*.png")) if p.name != "broken.png"] * 3
    rows = (
        ray.data.from_items(files)
        .map_batches(
            Counted,
            fn_constructor_args=(str(model_dir), tmp_path / "out"),
            fn_constructor_kwargs={"skip_existing": False},
            batch_size=1,
            concurrency=2,
            num_cpus=1,
        )
        .take_all()
    )
    assert len(rows) == 9 and {r["status"] for r in rows} == {"written"}
    pids = ray.get(counter.get.remote())
    assert len(pids) == len(set(pids)) <= 2  # one model per actor process, at most two actors


def test_output_path_is_the_cli_name(tmp_path: Path) -> None:
    assert output_path("/x/photo.final.jpg", tmp_path, 3, "webp") == tmp_path / "photo.final_x3.webp"
