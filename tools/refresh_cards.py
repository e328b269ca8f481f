#!/usr/bin/env python
"""Bring the model cards of the shipped weights up to date with :func:`edsr_lib.hub.model_card_data`.

A maintainer's tool, run from the repository root::

    .venv/bin/python tools/refresh_cards.py          # rewrite edsr_lib/weights/*/README.md
    .venv/bin/python tools/refresh_cards.py --check  # exit 1 if a card is out of date

The cards were written by ``tools/release_weights.py`` from the training runs, which are
not in the repository; so only what the library derives from the registry is rewritten:
the YAML front matter (licence, tags, ``model-index`` from the pretrained config's
metrics), the paper link of the description, and the score tables made from those metrics:
the Results section and, where the card has one, the "Against <tag>" section (so scores
added later with ``tools/score_degraded.py --write`` reach the card's text too), and the
"int8" section of the weights an int8 model is shipped for (from its ``int8.json``). The rest of
each card, and every ``model.safetensors``, is left as it is.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO_ROOT / "edsr_lib" / "weights"
_UNLINKED = "(Lim et al., CVPR 2017 workshops)"
INT8_TITLE = "int8"
INT8_INTRO = (
    "An int8 model made from these weights is shipped beside them, for CPUs (docs/speed.md, int8). It is used "
    "only when asked for; the scores above are the weights' own."
)


def refreshed(card_text: str, name: str) -> str:
    """``card_text`` with the front matter of ``name``'s pretrained config and the linked paper."""
    from huggingface_hub import ModelCard

    import edsr_lib
    from edsr_lib._card import against_table, results_table
    from edsr_lib.hub import PAPER_ARXIV_ID, PAPER_URL, model_card_data
    from edsr_lib.weights import int8 as shipped_int8

    cfg = edsr_lib.get_pretrained_cfg(name)
    model = edsr_lib.create_model(cfg.architecture)
    card = ModelCard(card_text)
    card.data = model_card_data(model, cfg)
    linked = f"(Lim et al., CVPR 2017 workshops; [arXiv:{PAPER_ARXIV_ID}]({PAPER_URL}))"
    card.text = card.text.replace(_UNLINKED, linked)
    if cfg.metrics:
        card.text = _with_section(card.text, "Results", results_table(cfg))
    int8 = [
        line
        for m in shipped_int8.shipped_models()
        if m.record.source == name
        for line in shipped_int8.card_lines(m.record)
    ]
    if int8:
        card.text = _with_section(card.text, INT8_TITLE, [INT8_INTRO, "", *int8])
    found = re.search(r"^## Against (\S+)$", card.text, re.MULTILINE)
    if found and cfg.metrics:
        other = edsr_lib.get_pretrained_cfg(found[1])
        card.text = _with_section(card.text, f"Against {other.name}", against_table(cfg.metrics, other))
    return str(card)


def _with_section(text: str, title: str, lines: list[str]) -> str:
    """``text`` with the body of its ``## title`` section (up to the next ``## ``) replaced by ``lines``."""
    heading = f"\n## {title}\n"
    if heading not in text:  # a new section goes before the licence
        at = text.index("\n## License\n")
        text = text[:at] + heading + "\n" + text[at:]
    start = text.index(heading) + len(heading)
    end = text.find("\n## ", start)
    end = len(text) if end < 0 else end + 1
    return text[:start] + "\n" + "\n".join(lines) + "\n\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or, with ``--check``, compare) every shipped card; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report cards that are out of date")
    args = parser.parse_args(argv)
    from edsr_lib.hub import atomic_write

    stale = []
    for path in sorted(WEIGHTS_DIR.glob("*/README.md")):
        text = path.read_text(encoding="utf-8")
        new = refreshed(text, path.parent.name)
        if new != text:
            stale.append(path)
            if not args.check:
                atomic_write(path, new.encode("utf-8"))
    for path in stale:
        print(f"{'out of date' if args.check else 'rewrote'}: {path.relative_to(REPO_ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
