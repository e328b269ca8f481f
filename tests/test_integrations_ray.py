"""The Ray Data recipe on a real local Ray (two CPU workers): the same files as ``edsr-lib upscale``."""

from __future__ import annotations

import filecmp
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'ray[data]'")

import edsr_lib  # noqa: E402
from edsr_lib.cli import main  # noqa: E402
from edsr_lib.integrations.ray import BatchUpscaler, actor_resources, output_path, upscale_folder  # noqa: E402
from edsr_lib.io import read_image  # noqa: E402


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


ICC = b"\x00\x00\x02\x0cnot a real profile, but bytes to carry"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (12, 9), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (10, 14, 4), dtype=np.uint8)).save(folder / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (7, 8, 2), dtype=np.uint8), mode="LA").save(folder / "gray_alpha.png")
    Image.fromarray(rng.integers(0, 65536, (9, 7)).astype(np.uint16)).save(folder / "gray16.png")
    Image.fromarray(rng.random((6, 5), dtype=np.float32), mode="F").save(folder / "float.tif")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated: the output is upright, tagged 1
    exif[0x0110] = "edsr-lib test camera"
    Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(
        folder / "photo.jpg", quality=90, exif=exif.tobytes(), icc_profile=ICC, dpi=(300, 300)
    )
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


@pytest.mark.slow  # starting Ray takes seconds
def test_ray_recipe_writes_what_the_cli_writes(local_ray: None, model_dir: Path, photos: Path, tmp_path: Path) -> None:
    cli_out, ray_out = tmp_path / "cli", tmp_path / "ray"
    # one path asked for both: the fast default's "auto" is measured per thread count (the actors run one thread),
    # and two backends' float outputs differ in their last bits, which a float TIFF keeps
    assert main(["upscale", str(photos), "-o", str(cli_out), "--model", str(model_dir), "--fp32"]) == 1  # broken.png

    rows = upscale_folder(photos, ray_out, model=str(model_dir), workers=2, batch_size=2, precision="fp32")
    status = {Path(r["path"]).name: r["status"] for r in rows}
    assert status.pop("broken.png").startswith("error: ")
    names = ["alpha.png", "float.tif", "gray.png", "gray16.png", "gray_alpha.png", "photo.jpg", "rgb.png"]
    assert status == dict.fromkeys(names, "written")
    assert {Path(r["output"]).name for r in rows if r["status"] == "written"} == {p.name for p in cli_out.iterdir()}
    assert sorted(p.name for p in ray_out.iterdir()) == sorted(p.name for p in cli_out.iterdir())
    for written in cli_out.iterdir():  # byte for byte: pixels, bit depth, mode, ICC, EXIF, DPI
        assert filecmp.cmp(ray_out / written.name, written, shallow=False), written.name
    with Image.open(ray_out / "photo_x2.png") as img:
        assert img.info["icc_profile"] == ICC and img.getexif()[0x0110] == "edsr-lib test camera"
    with Image.open(ray_out / "gray16_x2.png") as img:
        assert img.mode == "I;16"
    with Image.open(ray_out / "float_x2.tif") as img:
        assert img.mode == "F"
    assert not [p for p in ray_out.iterdir() if p.name.startswith(".")]  # no temporary files left

    # a rerun skips what exists and rewrites nothing; a deleted output is made again
    stamps = {p.name: p.stat().st_mtime_ns for p in ray_out.iterdir()}
    (ray_out / "rgb_x2.png").unlink()
    again = upscale_folder(photos, ray_out, model=str(model_dir), workers=2)
    status = {Path(r["path"]).name: r["status"] for r in again}
    assert status.pop("broken.png").startswith("error: ")
    assert status == {**dict.fromkeys(names, "skipped"), "rgb.png": "written"}
    for name, stamp in stamps.items():
        if name != "rgb_x2.png":
            assert (ray_out / name).stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(read_image(ray_out / "rgb_x2.png"), read_image(cli_out / "rgb_x2.png"))


@pytest.mark.slow  # starting Ray takes seconds
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

    class Counted(BatchUpscaler):
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
    assert len(rows) == len(files) and {r["status"] for r in rows} == {"written"}
    pids = ray.get(counter.get.remote())
    assert len(pids) == len(set(pids)) <= 2  # one model per actor process, at most two actors


def test_output_path_is_the_cli_name(tmp_path: Path) -> None:
    assert output_path("/x/photo.final.jpg", tmp_path, 3, "webp") == tmp_path / "photo.final_x3.webp"
    assert output_path("/x/photo.jpg", tmp_path, 1.5) == tmp_path / "photo_x1.5.png"


def test_never_more_actors_than_gpus() -> None:
    with pytest.warns(UserWarning, match="1 GPU"):
        assert actor_resources(2, {"GPU": 1.0, "CPU": 16.0}) == (1, {"num_gpus": 1})
    assert actor_resources(None, {"GPU": 4.0, "CPU": 16.0}) == (4, {"num_gpus": 1})
    assert actor_resources(3, {"GPU": 4.0}) == (3, {"num_gpus": 1})
    assert actor_resources(None, {"CPU": 8.0}) == (8, {"num_cpus": 1})
    assert actor_resources(2, {"CPU": 8.0}) == (2, {"num_cpus": 1})


def test_out_of_memory_costs_one_row(model_dir: Path, photos: Path, tmp_path: Path, monkeypatch) -> None:
    from edsr_lib import inference

    real = inference.Upscaler._run

    def short_of_memory(self, image, scale):
        height = image.shape[-3] if image.ndim == 4 else image.shape[0]
        if height == 17:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if height == 12:
            raise MemoryError()
        return real(self, image, scale)

    monkeypatch.setattr(inference.Upscaler, "_run", short_of_memory)
    upscaler = BatchUpscaler(str(model_dir), tmp_path / "out", skip_existing=False)
    paths = [str(photos / n) for n in ("rgb.png", "gray.png", "alpha.png", "photo.jpg")]
    rows = upscaler({"path": np.asarray(paths)})
    status = dict(zip([Path(p).name for p in rows["path"]], rows["status"], strict=True))
    assert status["rgb.png"].startswith("error: out of memory") and "20.00 GiB" in status["rgb.png"]
    assert status["gray.png"] == "error: out of memory"
    assert status["alpha.png"] == status["photo.jpg"] == "written"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["alpha_x2.png", "photo_x2.png"]


def test_decoding_overlaps_the_model(model_dir: Path, photos: Path, tmp_path: Path, monkeypatch) -> None:
    """While the model runs on one image, the next is decoded (each model call waits to see it)."""
    from edsr_lib.jobs import running

    decoded: list[str] = []
    readers: set[int] = set()
    overlapped: list[bool] = []
    changed = threading.Condition()
    real_load, real_upscale = running.load_image, edsr_lib.Upscaler.__call__

    def load(path):
        image = real_load(path)
        with changed:
            decoded.append(Path(path).name)
            readers.add(threading.get_ident())
            changed.notify_all()
        return image

    def upscale(self, image):
        with changed:
            seen = len(decoded)
            if threading.get_ident() not in readers:  # decoded on another thread: the next file comes meanwhile
                # no clock in the check: the timeout only ends a hang, however loaded the machine
                changed.wait_for(lambda: len(decoded) > seen or len(decoded) == 4, timeout=300)
            overlapped.append(len(decoded) > seen or len(decoded) == 4)
        return real_upscale(self, image)

    monkeypatch.setattr(running, "load_image", load)
    monkeypatch.setattr(edsr_lib.Upscaler, "__call__", upscale)
    upscaler = BatchUpscaler(str(model_dir), tmp_path / "out", skip_existing=False, workers=1)
    paths = [str(photos / n) for n in ("rgb.png", "gray.png", "alpha.png", "photo.jpg")]
    rows = upscaler({"path": np.asarray(paths)})
    assert list(rows["status"]) == ["written"] * 4
    assert all(overlapped) and len(overlapped) == 4
