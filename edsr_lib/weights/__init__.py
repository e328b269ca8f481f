"""Pretrained weights shipped inside the package, one folder per ``arch.tag``, and their provenance.

The folders are data; :mod:`~edsr_lib.weights.provenance` reads their ``pretrained.json``
(:func:`shipped`) and :mod:`~edsr_lib.weights.int8` the int8 models shipped beside them.
"""

from __future__ import annotations

from .provenance import PROVENANCE_FIELDS, PROVENANCE_NAME, shipped, shipped_size

__all__ = ["PROVENANCE_FIELDS", "PROVENANCE_NAME", "shipped", "shipped_size"]
