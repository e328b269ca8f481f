"""OpenModelDB entries for the weights the package ships (:mod:`~edsr_lib.openmodeldb.entries`), and their schema."""

from __future__ import annotations

from .entries import AUTHOR, SCHEMA_PATH, check_entry, entry_id, model_entries, model_entry, schema, write_entries

__all__ = [
    "AUTHOR",
    "SCHEMA_PATH",
    "check_entry",
    "entry_id",
    "model_entries",
    "model_entry",
    "schema",
    "write_entries",
]
