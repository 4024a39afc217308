"""docs/configuration.md is generated from the typed config: it matches the models and names every key."""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from typing import Literal

from conftest import REPO
from pydantic import BaseModel, Field

from pipelines.core.config import Config
from pipelines.reporting.config_docs import DOC_PATH, REGENERATE, render

# Each "## heading" of the reference, the model named under it, and its table rows' keys.
HEADING = re.compile(r"^## (.+)$", re.MULTILINE)
MODEL = re.compile(r"^Model `(\w+)`", re.MULTILINE)
ROW_KEY = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def parsed_sections(text: str) -> list[tuple[str, str, list[str]]]:
    """(heading, model class name, keys of the table rows) for each section of the Markdown."""
    parts = HEADING.split(text)[1:]
    found = []
    for heading, body in zip(parts[::2], parts[1::2], strict=True):
        model = MODEL.search(body)
        assert model, f"section {heading!r} does not name its model"
        found.append((heading, model.group(1), ROW_KEY.findall(body)))
    return found


def test_the_committed_reference_is_the_generated_one():
    expected = render()
    committed = DOC_PATH.read_text() if DOC_PATH.exists() else ""
    diff = "".join(
        list(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True), "committed", "generated"))[:60]
    )
    assert committed == expected, (
        f"{DOC_PATH.relative_to(REPO)} is out of date with pipelines/core/config.py; "
        f"regenerate it with `.venv/bin/{REGENERATE}` and commit it.\n{diff}"
    )


def test_every_field_of_every_model_appears_in_its_section():
    """Checked against pydantic's JSON schema of the config, not against the generator's own walk."""
    schema = Config.model_json_schema(by_alias=True)
    expected = {"Config": set(schema["properties"])} | {
        name: set(definition.get("properties", {})) for name, definition in schema["$defs"].items()
    }
    found = parsed_sections(render())
    documented_models = {model for _, model, _ in found}

    assert documented_models >= set(expected), f"models without a section: {set(expected) - documented_models}"
    for heading, model, keys in found:
        missing = expected[model] - set(keys)
        assert not missing, f"section {heading} ({model}) leaves out {sorted(missing)}"
        assert len(keys) == len(set(keys)), f"section {heading} lists a key twice: {keys}"
    headings = [heading for heading, _, _ in found]
    for nested in ("`thresholds.drift.calibration`", "`schema.features[]`", "`thresholds.fairness.attributes.<name>`"):
        assert nested in headings


def test_types_defaults_constraints_and_descriptions_are_rendered():
    class Inner(BaseModel):
        """A nested section."""

        share: float = Field(0.25, gt=0.0, le=1.0, description="A share of rows.")

    class Root(BaseModel):
        """A small config."""

        name: str = Field(min_length=1)
        mode: Literal["fast", "slow"] = "fast"
        limit: int | None = Field(None, ge=1, description="At most this many.")
        inner: Inner = Inner()
        items: list[Inner] = Field(default_factory=list)

    text = render(Root)

    assert "| `name` | `str` (at least 1 character) | *required* |  |" in text
    assert "| `mode` | `fast \\| slow` | `fast` |  |" in text
    assert "| `limit` | `int \\| null` (x ≥ 1) | `null` | At most this many. |" in text
    assert "| `inner` | section [`inner`](#inner) | the section's defaults | A nested section. |" in text
    assert "| `items` | list of [`items[]`](#items) | `[]` | A nested section. |" in text
    assert "| `share` | `float` (0 < x ≤ 1) | `0.25` | A share of rows. |" in text
    assert "## `inner`" in text and "## `items[]`" in text


def test_check_fails_on_a_stale_file_and_write_repairs_it(tmp_path):
    target = tmp_path / "configuration.md"
    target.write_text("# Configuration\n\nedited by hand\n")
    command = [sys.executable, "-m", "pipelines.reporting.config_docs"]

    stale = subprocess.run([*command, "--check", str(target)], capture_output=True, text=True, cwd=REPO)
    assert stale.returncode == 1
    assert "out of date" in stale.stderr and REGENERATE in stale.stderr

    subprocess.run([*command, "--write", str(target)], check=True, capture_output=True, cwd=REPO)
    assert target.read_text() == render()
    assert subprocess.run([*command, "--check", str(target)], capture_output=True, cwd=REPO).returncode == 0
