"""OpenModelDB entries: one per shipped set of weights, valid against the format kept in the package.

The format is ``edsr_lib/openmodeldb/model.schema.json``, transcribed from OpenModelDB's
validator (``src/lib/model-props.ts`` of ``OpenModelDB/open-model-database``; the file names
the commits). Every entry is validated with ``jsonschema`` and with the package's own check.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edsr_lib
from edsr_lib._files import sha256sum
from edsr_lib.openmodeldb import SCHEMA_PATH, check_entry, model_entries, schema, write_entries
from edsr_lib.weights import shipped_size

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with the dev extra")

WEIGHTS = Path(edsr_lib.__file__).parent / "weights"
#: The fields OpenModelDB's MODEL_PROPS (src/lib/model-props.ts) does not mark optional: every entry needs them.
REQUIRED = {
    "name", "author", "tags", "description", "date", "architecture",
    "scale", "inputChannels", "outputChannels", "resources", "images",
}  # fmt: skip


@pytest.fixture(scope="module")
def entries() -> dict[str, dict]:
    return model_entries(date="2026-12-07")


def test_the_schema_is_a_valid_json_schema_that_names_its_source() -> None:
    spec = schema()
    jsonschema.Draft202012Validator.check_schema(spec)
    assert set(spec["required"]) == REQUIRED
    assert "OpenModelDB/open-model-database" in spec["$id"] and "model-props.ts" in spec["description"]
    assert re.search(r"commit [0-9a-f]{40}", spec["description"])


def test_one_entry_per_shipped_set_of_weights(entries: dict[str, dict]) -> None:
    shipped = [c for c in edsr_lib.list_pretrained() if c.package_file]
    assert shipped and len(entries) == len(shipped)
    by_hash = {e["resources"][0]["sha256"]: e for e in entries.values()}
    for cfg in shipped:
        entry = by_hash[cfg.sha256]  # the registry's digest, which the file must also have
        assert sha256sum(WEIGHTS / cfg.package_file) == cfg.sha256
        resource = entry["resources"][0]
        assert resource["size"] == shipped_size(cfg.package_file)
        assert resource["urls"] and all(u.startswith("https://") and cfg.hf_hub_id in u for u in resource["urls"])
        assert entry["trainingIterations"] == cfg.steps
        assert entry["dataset"] == cfg.training_data
        assert entry["license"].lower() == cfg.license.lower()
        model = edsr_lib.create_model(cfg.architecture)
        assert entry["scale"] == max(model.scales)
        assert entry["size"] == [f"{model.config['n_resblocks']}nb", f"{model.config['n_feats']}nf"]


def test_every_entry_is_valid_against_the_format(entries: dict[str, dict]) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    pattern = schema()["x-model-id-pattern"]
    for name, entry in entries.items():
        errors = [e.message for e in validator.iter_errors(entry)]
        assert not errors, f"{name}: {errors}"
        assert check_entry(entry) == []
        assert re.fullmatch(pattern, name) and name.startswith(f"{entry['scale']}x-")
        assert {k for k, v in entry.items() if v is not None} >= REQUIRED


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda e: e.pop("architecture"), "required field 'architecture'"),
        (lambda e: e.update(license=None, date=None), "required field 'date'"),
        (lambda e: e.update(scale=32), "above 16"),
        (lambda e: e["resources"][0].update(type="safetensors"), "one of"),
        (lambda e: e["resources"][0].update(sha256="abc"), "does not match"),
        (lambda e: e.update(tags=[]), "at least 1"),
        (lambda e: e.update(inputChannels=True), "should be integer"),
    ],
)
def test_the_check_catches_what_the_format_refuses(entries: dict[str, dict], change, complaint: str) -> None:
    entry = copy.deepcopy(next(iter(entries.values())))
    change(entry)
    assert any(complaint in problem for problem in check_entry(entry)), check_entry(entry)
    assert list(jsonschema.Draft202012Validator(schema()).iter_errors(entry))  # jsonschema agrees


def test_the_command_writes_the_entries(tmp_path: Path, entries: dict[str, dict]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edsr_lib", "models", "--openmodeldb", str(tmp_path / "omdb"), "--date", "2026-12-07"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "omdb").glob("*.json"))
    assert [f.stem for f in files] == sorted(entries)
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert json.loads(text) == entries[file.stem] and text.endswith("}\n")
    bad = subprocess.run(
        [sys.executable, "-m", "edsr_lib", "models", "--openmodeldb", str(tmp_path / "x"), "--date", "7 Dec"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == [
        "error: --date '7 Dec' is not a date in the form yyyy-mm-dd"
    ]
    assert not (tmp_path / "x").exists()


def test_the_schema_ships_in_the_package() -> None:
    assert SCHEMA_PATH.is_file() and SCHEMA_PATH.parent == Path(edsr_lib.__file__).parent / "openmodeldb"
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"openmodeldb/*.json"' in text


def test_write_entries_is_atomic_and_returns_the_files(tmp_path: Path) -> None:
    written = write_entries(tmp_path, date="2026-12-07")
    assert [p.parent for p in written] == [tmp_path] * len(written)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temporary left
