"""The documentation cannot drift from the code.

Every ```python block of ``README.md`` and ``docs/**/*.md`` runs (the blocks of one file in
order, in one namespace, in a fresh process); a block right after a ``<!-- notest -->``
line is skipped. The model tables are checked against the registry (the model zoo, which
a build hook generates, too), the README's test commands against ``.ci/run``, the
README's sample image against the script that draws it, and the figures in
``docs/assets`` against ``docs/make_figures.py``.

``python tests/test_docs.py FILE.md`` runs the blocks of one file, as the tests do.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from edsr_lib.ops.degrade import split_metric_key

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
MODEL_TABLE_FILES = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "models.md"]
#: Put this line right before a fence to show a block without running it.
NOTEST = "<!-- notest -->"

_FENCE_OPEN = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block of a Markdown file."""

    language: str
    line: int  # 1-based line number of the block's first code line
    code: str
    skip: bool


def code_blocks(path: Path) -> list[CodeBlock]:
    """The top-level fenced code blocks of ``path``, in order (blocks nested in a longer fence are not)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        info = opening["info"].split()
        blocks.append(
            CodeBlock(
                language=info[0] if info else "",
                line=i + 2,
                code="\n".join(line[indent:] for line in lines[i + 1 : end]),
                skip=i > 0 and lines[i - 1].strip() == NOTEST,
            )
        )
        i = end + 1
    return blocks


def runnable_blocks(path: Path) -> list[CodeBlock]:
    """The Python blocks of ``path`` that the tests run."""
    return [b for b in code_blocks(path) if b.language == "python" and not b.skip]


def run_blocks(path: Path) -> None:
    """Run the Python blocks of ``path`` in order in one fresh ``__main__`` namespace.

    Tracebacks point at the Markdown file and line.
    """
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    # registered models look up ``default_cfgs`` in the module that defines them
    sys.modules["__main__"] = module
    for block in runnable_blocks(path):
        code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
        exec(code, module.__dict__)


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in DOC_FILES if runnable_blocks(p)], ids=_relative)
def test_python_blocks_run(path: Path, tmp_path: Path) -> None:
    # an empty working folder (so blocks cannot rely on the checkout) in which the examples exist
    (tmp_path / "examples").symlink_to(REPO_ROOT / "examples")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    result = subprocess.run(
        [sys.executable, __file__, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"a code block of {_relative(path)} failed:\n{result.stderr[-4000:]}"


def test_code_blocks_are_found(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "```python",
            "a = 1",
            "```",
            NOTEST,
            "```python",
            "raise SystemExit",
            "```",
            "````markdown",
            "```python",
            "nested = True",
            "```",
            "````",
            "  ```python",
            "  b = 2",
            "  ```",
        ]
    )
    path = tmp_path / "blocks.md"
    path.write_text(text, encoding="utf-8")
    assert [(b.language, b.line, b.code, b.skip) for b in code_blocks(path)] == [
        ("python", 2, "a = 1", False),
        ("python", 6, "raise SystemExit", True),
        ("markdown", 9, "```python\nnested = True\n```", False),
        ("python", 14, "b = 2", False),
    ]


def model_table(path: Path) -> dict[str, dict[str, str]]:
    """The rows of the first Markdown table of ``path`` whose first header is ``Model``, by model name."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            if rows:
                break
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif header[0] == "Model" and not set(cells[0]) <= set("-: "):
            rows[cells[0].strip("`")] = dict(zip(header, cells, strict=True))
    return rows


@pytest.mark.parametrize("path", MODEL_TABLE_FILES, ids=_relative)
def test_model_table_matches_the_registry(path: Path) -> None:
    import torch

    import edsr_lib

    rows = model_table(path)
    assert sorted(rows) == edsr_lib.list_models(), "the table must list every registered model"
    for name, row in rows.items():
        with torch.device("meta"):  # shapes only: instant even for the 43 M-parameter models
            model = edsr_lib.create_model(name)
        assert row["Scales"] == ", ".join(map(str, model.scales)), name
        assert int(row["Parameters"].replace(",", "")) == model.num_parameters(), name
        tags = [cfg.tag for cfg in edsr_lib.list_pretrained(name) if cfg.has_weights]
        assert row["Pretrained tags"] == (", ".join(f"`{t}`" for t in tags) or "—"), name
        if "Blocks × features" in row:
            assert row["Blocks × features"] == f"{model.config['n_resblocks']} × {model.config['n_feats']}", name
        if "`res_scale`" in row:
            assert float(row["`res_scale`"]) == model.config["res_scale"], name


def _load_script(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_zoo_hook_is_installed() -> None:
    zoo = _load_script(REPO_ROOT / "docs" / "_hooks" / "model_zoo.py")
    assert zoo.MARKER in (REPO_ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    assert "docs/_hooks/model_zoo.py" in (REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert zoo.on_page_markdown("a\nb") == "a\nb"


def test_model_zoo_lists_every_registered_set_of_weights() -> None:
    import edsr_lib

    zoo = _load_script(REPO_ROOT / "docs" / "_hooks" / "model_zoo.py")
    text = zoo.on_page_markdown(f"before\n\n{zoo.MARKER}\n\nafter")
    assert zoo.MARKER not in text and text.startswith("before\n\n") and text.endswith("\n\nafter")
    cfgs = [cfg for cfg in edsr_lib.list_pretrained() if cfg.has_weights]
    if not cfgs:
        assert zoo.NO_WEIGHTS in text
        return
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for cfg in cfgs:
        model = edsr_lib.create_model(cfg.architecture)
        for scale in model.scales:
            row = next(r for r in rows if r.startswith(f"| `{cfg.name}` | x{scale} |"))
            assert f"| {model.num_parameters():,} |" in row
            for key, per_scale in cfg.metrics.items():
                if f"x{scale}" in per_scale and split_metric_key(key)[1] is None:  # degraded: the input table's
                    assert f"{per_scale[f'x{scale}']['psnr']:.2f}" in row, (cfg.name, row)
    assert len(rows) == sum(len(edsr_lib.create_model(cfg.architecture).scales) for cfg in cfgs)


def test_which_input_table_holds_each_tag_for_photos_against_the_default() -> None:
    import edsr_lib

    zoo = _load_script(REPO_ROOT / "docs" / "_hooks" / "model_zoo.py")
    text = zoo.on_page_markdown(f"{zoo.INPUT_MARKER}\n")
    assert zoo.INPUT_MARKER not in text
    real = [cfg for cfg in edsr_lib.list_pretrained() if cfg.for_input != "clean" and cfg.has_weights]
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert bool(rows) == bool(real)
    for cfg in real:
        default = edsr_lib.get_pretrained_cfg(cfg.architecture)
        for key, per_scale in cfg.metrics.items():
            name, degraded = split_metric_key(key)
            for scale, ours in per_scale.items():
                theirs = default.metrics.get(key, {}).get(scale)
                if theirs is None or name.endswith("+"):
                    continue
                start = f"| `{cfg.architecture}` ({scale}) | {name} | {degraded.describe() if degraded else 'clean'} |"
                row = next(r for r in rows if r.startswith(start))
                assert f"{ours['psnr']:.2f}" in row and f"{theirs['psnr']:.2f}" in row
                assert row.endswith(f"| {ours['psnr'] - theirs['psnr']:+.2f} dB |")


def test_model_zoo_row() -> None:
    import edsr_lib

    zoo = _load_script(REPO_ROOT / "docs" / "_hooks" / "model_zoo.py")
    cfg = edsr_lib.PretrainedCfg(
        hf_hub_id="org/mdsr",
        training_data="T91 + BSD200",
        metrics={
            "Set5": {"x2": {"psnr": 37.6049, "ssim": 0.95871}, "x4": {"psnr": 31.2}},
            "Set5+": {"x2": {"psnr": 37.7, "ssim": 0.959}},
        },
        architecture="mdsr_baseline",
        tag="demo",
    )
    third = edsr_lib.PretrainedCfg(
        hf_hub_id="org/edsr",
        revision="ab" * 20,
        filename="w_2x.pt",
        layout="super-image",
        download_size=163_000_000,
        license="apache-2.0",
        metrics={"Urban100": {"x2": {"psnr": 32.68, "ssim": 0.9331}}},
        metrics_source="the publisher's, with their code",
        architecture="edsr_x2",
        tag="pub",
    )
    no_weights = edsr_lib.PretrainedCfg(architecture="edsr_x2", tag="none")
    lines = zoo.zoo_markdown([cfg, third, no_weights]).splitlines()
    assert lines[0] == (
        "| Weights | Scale | Parameters | Where | Size | Licence | Training data | Set5 | Set14 | B100 | Urban100 "
        "| Scores by |"
    )
    assert lines[2:] == [
        "| `mdsr_baseline.demo` | x2 | 3,227,203 | Hub `org/mdsr` | — | — | T91 + BSD200 "
        "| 37.60 / 0.9587<br>+ 37.70 / 0.9590 | — | — | — | edsr-lib |",
        "| `mdsr_baseline.demo` | x3 | 3,227,203 | Hub `org/mdsr` | — | — | T91 + BSD200 | — | — | — | — | edsr-lib |",
        "| `mdsr_baseline.demo` | x4 | 3,227,203 | Hub `org/mdsr` | — | — | T91 + BSD200 | 31.20 | — | — | — "
        "| edsr-lib |",
        "| `edsr_x2.pub` | x2 | 40,729,603 | Hub `org/edsr` @ `abababa` | 163.0 MB | apache-2.0 | — | — | — | — "
        "| 32.68 / 0.9331 | publisher¹ |",
        "",
        "¹ The publisher's, with their code.",
    ]
    assert zoo.zoo_markdown([no_weights]) == zoo.NO_WEIGHTS
    shipped = next(c for c in edsr_lib.list_pretrained() if c.package_file)
    place, size = zoo.where(shipped)
    assert place == "package" and size.endswith(" MB")


def test_readme_links_exist() -> None:
    # mkdocs checks the links of docs/ (strict); nothing else reads the README's
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", readme) if "://" not in t]
    assert targets
    assert [t for t in targets if not (REPO_ROOT / t).exists()] == []


@pytest.mark.parametrize("path", DOC_FILES, ids=_relative)
def test_ci_runs_the_documented_test_command(path: Path) -> None:
    blocks = [b for b in code_blocks(path) if b.language == "bash" and "python -m pytest" in b.code]
    if path.name == "README.md":
        assert len(blocks) == 1, "the README shows one install-and-test command"
    ci_lines = {line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()}
    for block in blocks:
        venv, *commands = block.code.splitlines()
        # CI makes its own fresh virtual environment; every other line runs as written
        assert venv.startswith("python3 -m venv "), venv
        for line in commands:
            assert line in ci_lines, f"{_relative(path)}: test command line {line!r} is not in .ci/run"


def test_sample_image_is_drawn_by_its_script() -> None:
    import numpy as np
    from PIL import Image

    script = _load_script(REPO_ROOT / "examples" / "make_sample_image.py")
    drawn = script.draw().astype(np.int16)
    shipped = np.asarray(Image.open(script.DEFAULT_OUTPUT).convert("RGB"), dtype=np.int16)
    assert shipped.shape == drawn.shape == (96, 96, 3)
    # one level of slack for float rounding differences between platforms
    assert np.abs(shipped - drawn).max() <= 1


#: Names the API reference must document (issue 5), by their public path.
API_NAMES = (
    "create_model",
    "list_models",
    "upscale",
    "upscale_video",
    "evaluate",
    "imresize",
    "ResBlock",
    "Upsampler",
    "MeanShift",
    "train.Trainer",
    "train.TrainConfig",
    "metrics.psnr",
    "metrics.ssim",
)


@pytest.mark.parametrize("name", API_NAMES)
def test_api_reference_documents(name: str) -> None:
    import importlib

    module_name, _, attr = f"edsr_lib.{name}".rpartition(".")
    obj = getattr(importlib.import_module(module_name), attr)
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
    # a page that renders the module defining it, or a package above it that re-exports it
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "docs" / "api").glob("*.md"))
    rendered = set(re.findall(r"^::: ([\w.]+)", pages, flags=re.MULTILINE))
    parts = obj.__module__.split(".")
    assert any(".".join(parts[:i]) in rendered for i in range(2, len(parts) + 1)), (name, obj.__module__)


def _tile_overlap_block() -> tuple[types.ModuleType, str]:
    """bench_tile_overlap.py, and the lines docs/integrations.md holds between its markers."""
    script = _load_script(REPO_ROOT / "benchmarks" / "bench_tile_overlap.py")
    begin, end = script.MARKERS
    doc = (REPO_ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
    assert doc.count(begin) == doc.count(end) == 1, f"docs/integrations.md needs one {begin} ... {end} block"
    return script, doc.split(begin)[1].split(end)[0].strip()


def test_tile_overlap_table_names_the_weights_its_script_loads() -> None:
    """Cheap half of the check below: the weights named are those the script loads by default today."""
    from edsr_lib.registry import get_pretrained_cfg

    _, block = _tile_overlap_block()
    default = get_pretrained_cfg("edsr_baseline_x2").name
    assert block.startswith(f"`{default}` x2,"), (
        f"docs/integrations.md's tile-overlap table is not measured with {default}, which "
        "benchmarks/bench_tile_overlap.py loads: rerun it and paste its output between the markers"
    )


@pytest.mark.slow
@pytest.mark.datasets
def test_tile_overlap_table_is_what_its_script_prints(datasets_dir: Path) -> None:
    script, block = _tile_overlap_block()
    image = datasets_dir / "Set14" / "HR" / "baboon.png"
    run = subprocess.run(
        [sys.executable, script.__file__, "--image", str(image)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == block, (
        "docs/integrations.md's tile-overlap table is not what benchmarks/bench_tile_overlap.py prints now: "
        f"paste its output between the markers:\n{run.stdout}"
    )


@pytest.mark.slow
@pytest.mark.datasets
def test_figures_are_drawn_by_their_script(tmp_path: Path, datasets_dir: Path) -> None:
    import numpy as np
    from PIL import Image

    import edsr_lib

    if not edsr_lib.list_models(pretrained=True):
        pytest.skip("the figures show the shipped models, and no pretrained weights are registered")
    script = _load_script(REPO_ROOT / "docs" / "make_figures.py")
    assert script.main(["--out-dir", str(tmp_path), "--datasets", str(datasets_dir)]) == 0
    names = ["comparison_x2.png"] + (["training_curve.png"] if script.find_log() else [])
    arch = f"edsr_baseline_x{script.REAL_SCALE}"
    if any(cfg.for_input == "real" and cfg.has_weights for cfg in edsr_lib.list_pretrained(arch)):
        names.append(f"real_jpeg_x{script.REAL_SCALE}.png")
    for name in names:
        drawn, shipped = Image.open(tmp_path / name), Image.open(REPO_ROOT / "docs" / "assets" / name)
        message = f"docs/assets/{name} is not what docs/make_figures.py draws now: run python docs/make_figures.py"
        assert drawn.size == shipped.size, message
        # fonts and float rounding may differ a little between machines; the pictures may not
        difference = np.abs(np.asarray(drawn.convert("RGB"), np.int16) - np.asarray(shipped.convert("RGB"), np.int16))
        assert difference.mean() < 1.0, message


if __name__ == "__main__":
    run_blocks(Path(sys.argv[1]).resolve())
