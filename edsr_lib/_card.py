"""The model card: the ``README.md`` of a model folder, with the Hub's YAML front matter.

:func:`model_card` builds it from named sections in one order; :func:`model_card_data` is its
front matter (licence, tags, the paper, structured results). It reads a model only through
what :class:`CardModel` names and the pretrained config, so it knows no model class; use it
through :mod:`edsr_lib.hub`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from huggingface_hub import EvalResult, ModelCardData

from ._pretrained import INPUTS, PretrainedCfg
from ._version import LIBRARY_NAME
from .metrics import format_score
from .ops.degrade import split_metric_key

__all__ = [
    "PAPER_ARXIV_ID",
    "PAPER_URL",
    "CardModel",
    "against_table",
    "model_card",
    "model_card_data",
    "ordered_metrics",
    "results_table",
]

#: Training sets a model card lists under ``datasets`` when its training data names them.
_KNOWN_DATASETS = ("DIV2K", "Flickr2K", "T91", "BSD200", "General100")

#: The paper, on arXiv: the Hub links a model to a paper through an ``arxiv:<id>`` tag.
PAPER_ARXIV_ID = "1707.02921"
PAPER_URL = f"https://arxiv.org/abs/{PAPER_ARXIV_ID}"

_CITATION = """\
@inproceedings{lim2017enhanced,
  title={Enhanced Deep Residual Networks for Single Image Super-Resolution},
  author={Lim, Bee and Son, Sanghyun and Kim, Heewon and Nah, Seungjun and Lee, Kyoung Mu},
  booktitle={The IEEE Conference on Computer Vision and Pattern Recognition (CVPR) Workshops},
  year={2017}
}"""


class CardModel(Protocol):
    """What a model card reads of a model (every model of the library has it).

    ``variant`` (the registered name) and ``pretrained_cfg`` are read where present.
    """

    architecture: str
    scales: Sequence[int]

    @property
    def config(self) -> dict[str, Any]:
        """The architecture name and the constructor's keyword arguments."""
        ...

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        ...

    def summary(self) -> str:
        """One line on the model's structure (blocks, features, scales, parameters)."""
        ...


def model_card_data(model: CardModel, cfg: PretrainedCfg | None = None, **extra: Any) -> ModelCardData:
    """The YAML front matter of a model card, as huggingface_hub's :class:`~huggingface_hub.ModelCardData`.

    It holds the licence, ``library_name``, ``pipeline_tag: image-to-image``, tags (with
    ``arxiv:1707.02921``, the Hub's link to the paper), the training sets it can name, and
    the scores of ``cfg.metrics`` as structured results (``model-index``): one
    :class:`~huggingface_hub.EvalResult` per set, scale and metric, on the benchmark
    protocol (Y channel, ``crop_border = scale``); self-ensemble scores (sets named with a
    ``+``) carry ``self_ensemble: true`` in their ``metric_args``.

    Args:
        model: The model the card describes.
        cfg: Its pretrained config; defaults to ``model.pretrained_cfg``.
        **extra: Further front matter (e.g. ``base_model=...``), or replacements for the
            defaults (``license``, ``tags``, ``datasets``, ``pipeline_tag``, ``eval_results``).

    Returns:
        The card data; ``ModelCard(text).data`` reads the same back from a card.
    """
    cfg = cfg if cfg is not None else getattr(model, "pretrained_cfg", None)
    training_data = cfg.training_data if cfg else None
    tags = ["super-resolution", "edsr", model.architecture, "pytorch", "safetensors", f"arxiv:{PAPER_ARXIV_ID}"]
    front: dict[str, Any] = {
        "license": (cfg.license if cfg else None) or "unknown",
        "library_name": LIBRARY_NAME,
        "tags": list(dict.fromkeys(tags)),
        "datasets": [d for d in _KNOWN_DATASETS if training_data and d.lower() in training_data.lower()] or None,
        "pipeline_tag": "image-to-image",
        "model_name": cfg.name if cfg else None,
        "eval_results": _eval_results(cfg.metrics, cfg) if cfg and cfg.metrics else None,
        **extra,
    }
    if front["eval_results"] and not front["model_name"]:
        front["model_name"] = getattr(model, "variant", None) or model.architecture  # model-index needs a name
    return ModelCardData(**front)


_METRIC_NAMES = {"psnr": "PSNR (dB)", "ssim": "SSIM"}


def _source_url(cfg: PretrainedCfg) -> str | None:
    """The Hub page of a third-party file at its pinned commit."""
    if not cfg.hf_hub_id or cfg.file:
        return None
    return f"https://huggingface.co/{cfg.hf_hub_id}/blob/{cfg.revision or 'main'}/{cfg.filename}"


def _eval_results(metrics: Mapping[str, Mapping[str, Mapping[str, float]]], cfg: PretrainedCfg) -> list[EvalResult]:
    """``cfg.metrics`` as the Hub's structured results, in the order of the table.

    Scores measured by someone else (``cfg.metrics_source``) name their source and claim no
    protocol of this library's.
    """
    theirs = bool(cfg.metrics_source)
    url = _source_url(cfg)  # the Hub needs a page for a named source
    source = {"source_name": f"Publisher ({cfg.metrics_source})", "source_url": url} if theirs and url else {}
    results = []
    for key, per_scale in metrics.items():
        set_name, degraded = split_metric_key(key)
        dataset = set_name.removesuffix("+")
        ensemble = set_name.endswith("+")
        # scores on degraded LR (noise, JPEG after the bicubic) are another configuration of the same set
        config = f"bicubic_{degraded.key}" if degraded is not None else "bicubic"
        label = f" ({degraded.describe()})" if degraded is not None else ""
        for scale_name in sorted(per_scale, key=_scale_order):
            scale = int(scale_name.lstrip("x")) if scale_name.lstrip("x").isdigit() else None
            for metric, value in per_scale[scale_name].items():
                results.append(
                    EvalResult(
                        task_type="image-to-image",
                        task_name="Image Super-Resolution",
                        dataset_type=dataset,
                        dataset_name=f"{dataset} {scale_name}{label}",
                        dataset_config=f"{config}_{scale_name}",
                        dataset_split="test",
                        metric_type=metric,
                        metric_name=_METRIC_NAMES.get(metric, metric) + (", self-ensemble" if ensemble else ""),
                        metric_value=round(float(value), 4),
                        metric_args=(
                            {"self_ensemble": ensemble}
                            if theirs
                            else {"crop_border": scale, "test_y_channel": True, "self_ensemble": ensemble}
                        ),
                        **source,
                    )
                )
    return results


def _scale_order(key: str) -> tuple[int, str]:
    digits = key.lstrip("x")
    return (int(digits), key) if digits.isdigit() else (1 << 30, key)


def model_card(
    model: CardModel,
    cfg: PretrainedCfg | None = None,
    *,
    repo_id: str | None = None,
    sections: Mapping[str, str] | None = None,
    **extra: Any,
) -> str:
    """A Hugging Face model card (``README.md``) for ``model`` and its pretrained config.

    The card is built from named sections in a fixed order: Usage, Training, Results,
    Source (for a third-party file: repository, commit, file, sha256, layout),
    then any further sections of ``sections``, then License (with ``cfg.attribution``) and Citation. Scores that
    ``cfg.metrics_source`` says someone else measured are marked as theirs.

    Args:
        model: The model the card describes.
        cfg: Its pretrained config (training data, command, steps, licence, metrics);
            defaults to ``model.pretrained_cfg`` when the model was built with weights.
        repo_id: Hub repository the card will live in, for the usage snippet.
        sections: Further sections by title, in order, as Markdown without the heading.
            The text of a title the card already has (``"Training"``, ``"Results"``) is
            added at the end of that section; other titles become sections of their own
            after the results. ``"License"`` and ``"Citation"`` are the card's own.
        **extra: Further YAML front matter (e.g. ``base_model=...``), or replacements
            for the defaults; see :func:`model_card_data`.

    Returns:
        The card: YAML front matter (:func:`model_card_data`), description, then the sections.

    Raises:
        ValueError: If ``sections`` names License or Citation.
    """
    cfg = cfg if cfg is not None else getattr(model, "pretrained_cfg", None)
    family = type(model).__name__
    name = cfg.name if cfg else getattr(model, "variant", None) or model.architecture
    training_data = cfg.training_data if cfg else None
    head = [
        "---",
        model_card_data(model, cfg, **extra).to_yaml(),
        "---",
        "",
        f"# {name}",
        "",
        *([cfg.description, ""] if cfg and cfg.description else []),
        *(
            [
                f"**For {INPUTS[cfg.for_input]}.** "
                "For clean downscales and benchmarks, use the architecture's default tag.",
                "",
            ]
            if cfg and cfg.for_input != "clean"
            else []
        ),
        f"{family} ({model.summary()}) "
        f'from "Enhanced Deep Residual Networks for Single Image Super-Resolution" (Lim et al., CVPR 2017 '
        f"workshops; [arXiv:{PAPER_ARXIV_ID}]({PAPER_URL})), in the [{LIBRARY_NAME}](https://edsr-lib.readthedocs.io) "
        "format: `model.safetensors` with the `config.json` that rebuilds the model.",
        "",
    ]
    usage = ["```python", "import edsr_lib", ""]
    hub_id = repo_id or (cfg.hf_hub_id if cfg else None)
    if cfg:
        usage.append(f'model = edsr_lib.create_model("{cfg.name}", pretrained=True)')
        if hub_id and not (cfg.third_party and not repo_id):  # a third-party repository is not in this format
            pin = f', revision="{cfg.revision}"' if cfg.revision and not repo_id else ""
            usage.append(f'# or: model = edsr_lib.from_pretrained("{hub_id}"{pin})')
    else:
        usage.append(f'model = edsr_lib.from_pretrained("{hub_id or "path/to/this/folder"}")')
    scale = model.scales[0]
    usage += [f"sr = model(lr, scale={scale})  # lr: float RGB NCHW in [0, 1]; sr is {scale}x larger", "```"]
    training = [
        *([f"- Data: {training_data}"] if training_data else []),
        *([f"- Steps: {cfg.steps:,}"] if cfg and cfg.steps else []),
        *([f"- Command: `{cfg.training_command}`"] if cfg and cfg.training_command else []),
    ]
    body: dict[str, list[str]] = {
        "Usage": usage,
        "Training": training,
        "Results": results_table(cfg) if cfg and cfg.metrics else [],
        "Source": _source(cfg) if cfg and cfg.third_party else [],
    }
    for title, text in (sections or {}).items():
        if title in ("License", "Citation"):
            raise ValueError(f"the {title} section is the card's own; it cannot be given")
        part = text.strip("\n").splitlines()
        body[title] = [*body[title], "", *part] if body.get(title) else part
    if cfg and cfg.license:
        body["License"] = [f"The weights are released under the `{cfg.license}` licence (Hugging Face licence id)."]
        if cfg.attribution:
            body["License"] += ["", f"{cfg.attribution}."]
    body["Citation"] = ["```bibtex", _CITATION, "```"]
    lines = head
    for title, part in body.items():
        if part:
            lines += [f"## {title}", "", *part, ""]
    return "\n".join(lines)


def _source(cfg: PretrainedCfg) -> list[str]:
    """Where a third-party file comes from: repository, commit, file, sha256, size and layout."""
    if cfg.file:
        lines = [f"- File: a local copy, `{cfg.file}`"]
    else:
        commit = cfg.revision or "main (not pinned)"
        lines = [
            f"- Repository: [{cfg.hf_hub_id}](https://huggingface.co/{cfg.hf_hub_id}), commit `{commit}`",
            f"- File: [`{cfg.filename}`]({_source_url(cfg)})"
            + (f", about {cfg.download_size / 1e6:,.1f} MB" if cfg.download_size else ""),
        ]
    lines.append(
        f"- sha256: `{cfg.sha256}`, checked before the file is read"
        if cfg.sha256
        else "- sha256: not published on the file's Hub page; the pinned commit identifies the file"
    )
    lines.append(f"- Layout: `{cfg.layout or 'told from the file'}`, converted on first use by edsr-lib's converter")
    return lines


Metrics = Mapping[str, Mapping[str, Mapping[str, float]]]


def ordered_metrics(metrics: Metrics, sets: Sequence[str] = ()) -> dict[str, Mapping[str, Mapping[str, float]]]:
    """``metrics`` in the cards' order: by set (as first named), its clean scores, self-ensemble, then degraded.

    Degraded inputs of a set follow in the order of their keys (``Set5_jpeg30`` before
    ``Set5_noise5``), so scores added later (``tools/score_degraded.py --write``) land in
    their place. ``sets`` puts those sets first, in its order (a release's reported sets).
    """
    order_of_sets = list(sets)
    for key in metrics:
        plain = split_metric_key(key)[0].removesuffix("+")
        if plain not in order_of_sets:
            order_of_sets.append(plain)

    def order(key: str) -> tuple[int, int, str]:
        name, degraded = split_metric_key(key)
        return order_of_sets.index(name.removesuffix("+")), 2 if degraded is not None else int(name.endswith("+")), key

    return {key: metrics[key] for key in sorted(metrics, key=order)}


def results_table(cfg: PretrainedCfg) -> list[str]:
    """The lines of a card's Results section: every score of ``cfg.metrics``, one row per set and input."""
    return _metrics_table(ordered_metrics(cfg.metrics or {}), cfg.metrics_source)


def against_table(metrics: Metrics, other: PretrainedCfg) -> list[str]:
    """The lines of a card's "Against <other>" section: each score beside ``other``'s on the same input, and the gap."""
    lines = [
        f"PSNR (dB) / SSIM of these weights and of `{other.name}` on the same input (benchmark protocol; "
        "degraded rows as `edsr-lib evaluate --noise SIGMA --jpeg Q`, docs/evaluation.md).",
        "",
        f"| set | input | scale | this model | {other.name} | PSNR difference |",
        "|---|---|---|---|---|---|",
    ]
    for key, per_scale in ordered_metrics(metrics).items():
        if key.endswith("+"):
            continue
        set_name, degraded = split_metric_key(key)
        for s, ours in per_scale.items():
            theirs = (other.metrics or {}).get(key, {}).get(s)
            if theirs is None:
                continue
            lines.append(
                f"| {set_name} | {degraded.describe() if degraded else 'clean'} | {s} | "
                f"{format_score(ours['psnr'], ours['ssim'])} | {format_score(theirs['psnr'], theirs['ssim'])} | "
                f"{ours['psnr'] - theirs['psnr']:+.2f} dB |"
            )
    return lines


def _metrics_table(metrics: Metrics, source: str | None = None) -> list[str]:
    degraded_note = (
        "; rows with noise or JPEG degrade that LR as `edsr-lib evaluate --noise SIGMA --jpeg Q` does "
        "(Gaussian noise seeded per image, then a Pillow JPEG round trip; docs/evaluation.md)."
    )
    scales = sorted({s for per_scale in metrics.values() for s in per_scale}, key=_scale_order)

    def cell(scores: Mapping[str, float] | None) -> str:
        return format_score(scores.get("psnr"), scores.get("ssim")) if scores else "-"

    return [
        f"PSNR (dB) / SSIM: {source}; edsr-lib has not measured them (`edsr-lib evaluate` does, under its "
        "benchmark protocol)."
        if source
        else "PSNR (dB) / SSIM on the Y channel, ignoring `scale` pixels at every border; LR made with "
        "MATLAB-style bicubic downsampling" + (degraded_note if any(split_metric_key(k)[1] for k in metrics) else "."),
        "",
        "| set | " + " | ".join(scales) + " |",
        "|---|" + "---|" * len(scales),
        *(
            f"| {_row_name(name)} | " + " | ".join(cell(per.get(s)) for s in scales) + " |"
            for name, per in metrics.items()
        ),
    ]


def _row_name(key: str) -> str:
    """A metrics key as a table row: ``Set5``, ``Set5+``, ``Set5, jpeg 50``."""
    set_name, degraded = split_metric_key(key)
    return f"{set_name}, {degraded.describe()}" if degraded is not None else set_name
