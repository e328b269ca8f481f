"""Start-up: ``--help`` without torch, ``import edsr_lib`` without timm's models, timm still sees the models."""

from __future__ import annotations

import subprocess
import sys

import pytest

import edsr_lib
from edsr_lib.cli import COMMANDS


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


_HELP = """
import contextlib, io, sys
from edsr_lib.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main({argv!r})
print("torch" in sys.modules, "timm" in sys.modules, len(out.getvalue()))
"""


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name in COMMANDS)])
def test_help_does_not_import_torch(argv: list[str]) -> None:
    torch_loaded, timm_loaded, length = _python(_HELP.format(argv=argv)).split()
    assert (torch_loaded, timm_loaded) == ("False", "False")
    assert int(length) > 200


def test_top_level_help_lists_every_command_with_its_line() -> None:
    out = _python(
        "import contextlib, io\nfrom edsr_lib.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as o, contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\nprint(o.getvalue())"
    )
    for name in COMMANDS:
        assert name in out
    assert "upscale image and video files" in out and "PSNR/SSIM of a model" in out


@pytest.mark.slow
def test_import_edsr_lib_leaves_timm_alone_and_the_bridge_registers_the_models() -> None:
    code = (
        "import sys, edsr_lib\n"
        "print('timm' in sys.modules)\n"
        "import edsr_lib.timm_bridge, timm\n"
        "print(timm.list_models('edsr_baseline*'))\n"
        "print(type(timm.create_model('edsr_baseline_x2')).__name__)\n"
        "print(timm.list_models('mdsr*', pretrained=True))\n"
    )
    lines = _python(code).splitlines()
    assert lines[0] == "False"
    assert lines[1] == "['edsr_baseline_x2', 'edsr_baseline_x3', 'edsr_baseline_x4']"
    assert lines[2] == "EDSR"
    assert all(name in lines[3] for name in edsr_lib.list_models("mdsr*", pretrained=True))  # every tag


@pytest.mark.slow
def test_timm_first_then_edsr_lib() -> None:
    out = _python("import timm, edsr_lib\nprint(type(timm.create_model('mdsr_baseline')).__name__)")
    assert out.strip() == "MDSR"


def test_import_edsr_lib_hooks_nothing() -> None:
    """No import hook, no wrapped loader, no replaced module class: timm registers what its importers register."""
    out = _python(
        "import sys, types, edsr_lib\n"
        "print([type(f).__module__ for f in sys.meta_path if type(f).__module__.startswith('edsr_lib')])\n"
        "print(type(sys.modules['edsr_lib']) is types.ModuleType)"
    )
    assert out.split("\n")[:2] == ["[]", "True"]


def test_lazy_names_resolve() -> None:
    out = _python(
        "import edsr_lib, edsr_lib.evaluation\n"
        "print(callable(edsr_lib.evaluate), edsr_lib.EDSR.__name__, edsr_lib.upscale.__module__,"
        " 'edsr_x2' in edsr_lib.list_models(), sorted(set(edsr_lib.__all__) - set(dir(edsr_lib))))"
    )
    assert out.split() == ["True", "EDSR", "edsr_lib.inference", "True", "[]"]


def test_convert_help_offers_the_converters_layouts() -> None:
    from edsr_lib import convert
    from edsr_lib.cli import convert as cli_convert

    assert cli_convert.LAYOUT_CHOICES == convert.LAYOUTS
    assert cli_convert.WRITABLE_CHOICES == convert.WRITABLE_LAYOUTS


def test_one_list_behind_each_choice_the_command_line_offers() -> None:
    from edsr_lib import _device, io, options
    from edsr_lib.cli import train as cli_train
    from edsr_lib.cli import upscale as cli_upscale

    assert cli_train.AMP_CHOICES is _device.AMP_CHOICES is options.AMP_CHOICES
    assert cli_upscale.OUTPUT_FORMATS is io.OUTPUT_FORMATS is options.OUTPUT_FORMATS
    assert cli_upscale.BACKENDS is options.BACKENDS
