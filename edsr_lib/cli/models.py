"""``edsr-lib models [PATTERN]``: list the registered models, then every set of pretrained weights.

The first table has one row per model (scales, parameter count, pretrained tags); the
second one row per ``arch.tag``: where the weights live (inside the package, or a Hub
repository at a pinned commit), the size of the file, the scales at which an int8 model is
shipped for it (``--int8``), its licence, the Set5 scores, whose scores they are
(edsr-lib's own, or the publisher's), and the input the weights are for (``clean``
benchmarks and downscales, or ``real`` photos: JPEG and noise), with a line saying which.
"""

from __future__ import annotations

import argparse
from typing import Any

#: The benchmark set whose scores the weights table shows.
SCORE_SET = "Set5"
PUBLISHER_NOTE = (
    "* the publisher's scores, measured with their own code; after the first download, "
    "`edsr-lib evaluate --model NAME` measures them here"
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``models`` subcommand."""
    parser = subparsers.add_parser(
        "models",
        help="list models, scales, parameter counts and pretrained weights",
        description=(
            "List the registered models with their scales, parameter counts and pretrained weight tags, then every "
            "set of pretrained weights: where it lives (package or Hub), its size, licence and scores."
        ),
    )
    parser.add_argument("pattern", nargs="?", default="", help="shell-style filter such as 'edsr*'")
    parser.add_argument("--pretrained", action="store_true", help="only models that have pretrained weights")
    parser.add_argument(
        "--openmodeldb",
        nargs="?",
        const="openmodeldb",
        metavar="DIR",
        help="instead of the tables, write one OpenModelDB entry (<id>.json, the format of its data/models/) per "
        "set of weights the package ships into DIR (default ./openmodeldb), checked against the format",
    )
    parser.add_argument("--date", help="--openmodeldb: the entries' publication date, yyyy-mm-dd (default today)")
    parser.set_defaults(func=run)
    return parser


def model_table(pattern: str = "", pretrained: bool = False) -> list[tuple[str, str, str, str]]:
    """Rows ``(name, scales, parameters, pretrained tags)`` for the models matching ``pattern``.

    Models are built on the ``meta`` device, so listing even the 43 M-parameter EDSR
    allocates no weights.
    """
    import torch

    from ..registry import create_model, list_models, list_pretrained

    rows = []
    for name in list_models(pattern, pretrained=pretrained, include_tags=False):
        with torch.device("meta"):
            model = create_model(name)
        tags = [cfg.tag for cfg in list_pretrained(name) if cfg.architecture == name and cfg.has_weights]
        rows.append(
            (
                name,
                ", ".join(f"x{s}" for s in model.scales),
                f"{model.num_parameters() / 1e6:.2f} M",
                ", ".join(tags) or "-",
            )
        )
    return rows


def _megabytes(size: int | None) -> str:
    return f"{size / 1e6:.1f} MB" if size else "?"


def weights_table(pattern: str = "") -> list[tuple[str, str, str, str, str, str, str, str]]:
    """Rows ``(arch.tag, where, size, int8, licence, Set5 scores, whose scores, input)`` for every set of weights.

    A tag's weights live inside the package (``package``), or in a Hub repository at a
    pinned commit (``hub org/name@commit``); the size is the shipped file's or the
    download's (as the Hub rounds it); ``int8`` lists the scales with a shipped int8 model
    (:mod:`edsr_lib.weights.int8`). Scores the publisher measured with their own code are
    marked ``publisher*``. ``input`` is :attr:`~edsr_lib.PretrainedCfg.for_input`.
    """
    from ..metrics import format_score
    from ..registry import list_pretrained
    from ..weights import int8, shipped_size

    int8_scales: dict[str, list[int]] = {}
    for found in int8.shipped_models():
        int8_scales.setdefault(found.record.source, []).append(found.record.scale)

    rows = []
    for cfg in list_pretrained(pattern):
        if not cfg.has_weights:
            continue
        if cfg.package_file:
            where, size = "package", shipped_size(cfg.package_file)
        else:
            where = f"hub {cfg.hf_hub_id}" + (f"@{cfg.revision[:7]}" if cfg.revision else "")
            size = cfg.download_size
        per_scale = cfg.metrics.get(SCORE_SET, {})
        scores = ", ".join(
            f"{scale} {format_score(values['psnr'], values.get('ssim'))}"
            for scale, values in sorted(per_scale.items())
            if "psnr" in values
        )
        whose = ("publisher*" if cfg.metrics_source else "edsr-lib") if scores else "-"
        quantised = ", ".join(f"x{s}" for s in sorted(int8_scales.get(cfg.name, []))) or "-"
        rows.append(
            (cfg.name, where, _megabytes(size), quantised, cfg.license or "?", scores or "-", whose, cfg.for_input)
        )
    return rows


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def run(args: argparse.Namespace) -> int:
    """Print the table of models, then the table of pretrained weights (or write the OpenModelDB entries)."""
    if args.openmodeldb is not None:
        return _write_openmodeldb(args.openmodeldb, args.date)
    models = model_table(args.pattern, args.pretrained)
    if not models:
        print(f"(no model matches {args.pattern!r})")
        return 0
    _print_table([("model", "scales", "parameters", "pretrained tags"), *models])
    weights = weights_table(args.pattern)
    if weights:
        print()
        from .._pretrained import INPUTS

        header = ("weights", "where", "size", "int8", "licence", f"{SCORE_SET} PSNR / SSIM", "scores by", "for")
        _print_table([header, *weights])
        if any(row[6] == "publisher*" for row in weights):
            print(PUBLISHER_NOTE)
        for name in sorted({row[7] for row in weights}, key=list(INPUTS).index):
            print(f"* for {name}: {INPUTS[name]}")
    return 0


def _write_openmodeldb(folder: str, date: str | None) -> int:
    import datetime

    from ..openmodeldb import write_entries

    if date is not None:
        try:
            datetime.date.fromisoformat(date)
        except ValueError:
            raise SystemExit(f"error: --date {date!r} is not a date in the form yyyy-mm-dd") from None
    written = write_entries(folder, date=date)
    for path in written:
        print(path)
    print(f"{len(written)} OpenModelDB entries (checked against its required fields); see docs/hub.md#openmodeldb")
    return 0
