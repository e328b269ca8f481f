"""The benchmark scripts run (in their quick modes) and print what they promise."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

import edsr_lib

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name while the classes are made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]  # not a module every later test could import by that name
    return module


@pytest.mark.slow
@pytest.mark.usefixtures("restore_threads")  # --threads 1
@pytest.mark.parametrize("tf32", [False, True])
def test_bench_train_times_every_precision_and_layout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tf32: bool
) -> None:
    bench = _load("bench_train")
    monkeypatch.setattr(bench, "uses_tf32", lambda device: tf32)  # as on a CUDA GPU with cuDNN's default
    bench.main(["--quick", "--device", "cpu", "--threads", "1"])
    out = capsys.readouterr().out.splitlines()
    fp32 = "tf32" if tf32 else "float32"
    assert out[1].startswith("tf32: float32 settings") == tf32
    rows = [line.split() for line in out[2 + tf32 :]]
    assert [r[:2] for r in rows] == [
        [fp32, "NCHW"],
        [fp32, "channels_last"],
        ["bf16", "NCHW"],
        ["bf16", "channels_last"],
    ]
    assert rows[0][-1] == "1.00x"  # the baseline against itself
    assert all(float(r[3]) > 0 for r in rows)


@pytest.mark.slow
def test_bench_inference_times_plain_fast_and_bf16_on_cpu(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edsr_lib import backends

    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path))  # the runtime rows' exports stay out of the user's cache
    from edsr_lib.inference import cpu_has_native_bf16

    _load("bench_inference").main(
        ["--quick", "--device", "cpu", "--size", "32", "--repeats", "1", "--sgemm-size", "256"]
    )
    out = capsys.readouterr().out
    rows = [line.split("|")[3].strip() for line in out.splitlines() if line.startswith("| edsr")]
    expected = ["plain (NCHW, unfused)", "upscale (fused, channels_last)"]
    if cpu_has_native_bf16():
        expected.append("upscale bf16 (CPU)")
        assert "bf16 (CPU) vs the fp32 fast path: edsr_baseline_x2 x2:" in out
    else:
        assert "this CPU has no native bf16" in out
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=True)  # the benchmark times the shipped weights
    for backend in backends.installed_runtimes():  # the library and the runtime alone, per precision it runs here
        precisions = ["fp32"]
        if backend == "openvino" and cpu_has_native_bf16():
            precisions.append("bf16")
        if backend == "openvino" and backends.cpu_info().flags.get("AVX2"):
            with contextlib.suppress(backends.BackendError):  # where an int8 model is shipped for these weights
                backends.int8_model(model, 2)
                precisions.append("int8")
        for precision in precisions:
            expected += [f"upscale {backend} {precision}", f"standalone {backend} {precision}"]
    assert rows == expected
    header = out.splitlines()[0]
    assert str(backends.cpu_info()) in header and all(v in header for v in backends.runtime_versions().values())
    assert "largest difference from the fp32 fast path" in out


@pytest.mark.slow
def test_bench_video_prints_speed_model_share_and_rss(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("av", reason="the video benchmark needs PyAV (pip install 'edsr-lib[video]')")
    _load("bench_video").main(["--quick"])
    out = capsys.readouterr().out
    assert out.startswith("CPU: ")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines() if line.startswith("| tiny")]
    assert [r[2] for r in rows] == ["12", "12", "48"]
    assert all(float(r[3]) > 0 and 0 < float(r[4].rstrip("%")) <= 100 and float(r[5]) > 0 for r in rows)
    assert "peak RSS, 2 s clip / 0.5 s clip (tiny model): " in out


@pytest.mark.slow
@pytest.mark.datasets
def test_bench_int8_quantises_measures_and_judges_by_the_rule(
    capsys: pytest.CaptureFixture[str], datasets_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("nncf", reason="the int8 benchmark needs NNCF (pip install 'edsr-lib[quantize]')")
    from edsr_lib import backends
    from edsr_lib.weights import int8

    if not backends.cpu_info().flags.get("AVX2"):
        pytest.skip("int8 runs on x86 CPUs with AVX2")
    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path))
    monkeypatch.setattr(int8, "search_path", [])
    shipped = sorted(p.name for p in (Path(edsr_lib.__file__).parent / "weights").rglob("*"))
    args = ["--scale", "2", "--mode", "ptq", "--calibration", "2", "--sets", "Set5", "--repeats", "1", "--size", "24"]
    _load("bench_int8").main([*args, "--datasets", str(datasets_dir)])
    out = capsys.readouterr().out
    assert "quantised in" in out and "int8 is " in out and "Set5 x2: fp32 " in out
    # a quick recipe, measured on one set: the rule names what it lacks; nothing is added to the package
    assert "the rule: " in out and "no PSNR on Set14; no PSNR on B100" in out
    assert sorted(p.name for p in (Path(edsr_lib.__file__).parent / "weights").rglob("*")) == shipped


@pytest.mark.slow
def test_bench_default_compares_the_default_with_one_pass_and_the_runtimes_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edsr_lib import backends

    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path))  # the exports stay out of the user's cache
    _load("bench_default").main(["--quick"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"CPU: {backends.cpu_info()}")
    header = out[2].split()
    assert header[:3] == ["photo", "default", "default,"]
    rows = {line.split()[0]: line for line in out[3:5]}
    assert set(rows) == {"64x48", "96x80"}
    for line in rows.values():
        cells = line.split()[1:]
        assert cells[2] == "1.00x"  # the default against itself
        assert all(float(c) > 0 for c in cells[::3])
    if "openvino" in backends.installed_runtimes():
        paths = [line.split()[0] for line in out[8:]]
        assert paths[0] == "fp32" and ("bf16" in paths) == edsr_lib.inference.cpu_has_native_bf16()
        assert all(float(line.split()[-1].rstrip("x")) > 0 for line in out[8:])


@pytest.mark.slow
@pytest.mark.usefixtures("restore_threads")  # --threads 1
def test_bench_degrade_reports_the_data_share_with_and_without_the_chain(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("bench_degrade").main(["--quick", "--threads", "1"])
    out = capsys.readouterr().out
    assert out.startswith("cpu: ")
    assert [(r["scale"], r["kind"]) for r in rows] == [(2, "clean"), (2, "degrade"), (4, "clean"), (4, "degrade")]
    for r in rows:
        assert 0 < r["batch_s"] < r["step_s"] and r["share"] == pytest.approx(r["batch_s"] / r["step_s"])
        assert f"{100 * r['share']:.1f}%" in out
