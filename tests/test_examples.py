"""Every training example runs end to end in its ``--smoke`` mode (tiny model, synthetic images)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "steps"),
    [("train_edsr_baseline_x2.py", 4), ("finetune_x4_from_x2.py", 4), ("train_mdsr.py", 6)],
)
def test_example_smoke_run(script: str, steps: int, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"step {steps}: best validation PSNR" in done.stdout
    assert '"event": "val"' in done.stdout  # it validated
    assert list(tmp_path.iterdir()) == []  # a smoke run leaves nothing behind
