"""MkDocs hook: render Sphinx roles in docstrings (:func:`~edsr_lib.ops.quantize`) as API links.

Some docstrings use Sphinx cross-reference roles, which Google-style rendering would show
literally (":func:" before the name). This turns each into an optional mkdocs-autorefs
reference: a link when the target is documented under that full name, plain code
otherwise. A leading ``~`` shows only the last component, as in Sphinx.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj):<code>([~!]?)([^<]+)</code>")


def _reference(match: re.Match[str]) -> str:
    prefix, target = match.groups()
    title = target.rsplit(".", 1)[-1] if prefix == "~" else target
    if prefix == "!":
        return f"<code>{title}</code>"
    return f'<autoref identifier="{escape(target)}" optional><code>{title}</code></autoref>'


def on_page_content(html: str, **kwargs: Any) -> str:
    """Replace the roles in a page's rendered HTML (before mkdocs-autorefs resolves references)."""
    return _ROLE.sub(_reference, html)
