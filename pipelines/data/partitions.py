"""Reading one day's partition: its structure, its typed rows and its quarantined rows.

Shared by the ingest (which judges the window) and the drift check (which reads past days to learn
their normal variability), so both read a partition the same way. A structural problem (a path
that is not a file, a duplicate header column, a declared column missing from the header) is
named as what it is, with a "renamed?" hint, and quarantines every row of the partition with that
reason; a UTF-8 byte-order mark is stripped and noted. Malformed rows (wrong field count, a
non-number in a numeric column, no label, bytes that are not UTF-8) are quarantined with their
line and reason, so rows in = kept + quarantined.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.core.config import Schema
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW

QUARANTINE_COLUMNS = ["ds", "line", "reason", "raw"]
_UNDECODABLE = "\ufffd"  # what bytes that are not UTF-8 decode to
_BOM = "\ufeff"


def window_dates(ds: date, days: int) -> list[date]:
    """The ``days`` dates ending at ``ds`` (inclusive), oldest first."""
    return [ds - timedelta(days=k) for k in reversed(range(days))]


@dataclass
class Partition:
    """One day's parse: its rows, its quarantined rows, structural problems and warnings."""

    rows: pd.DataFrame
    quarantined: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)


def _header_problems(header: list[str], schema: Schema) -> tuple[list[str], list[str], list[str]]:
    """(problems, missing columns, unexpected columns) of a partition's header."""
    known = set(schema.columns) | set(schema.ignore) | set(schema.label.annotators)
    missing = [c for c in [*schema.columns, *schema.label.annotators] if c not in header]
    unexpected = [h for h in header if h not in known]
    problems = []
    for name in sorted({h for h in header if header.count(h) > 1}):
        places = [i + 1 for i, h in enumerate(header) if h == name]
        problems.append(f"duplicate header column {name!r} (positions {places})")
    for name in missing:
        guess = _close_match(name, unexpected)
        problems.append(
            f"column {name!r} is missing from the header" + (f" (renamed? the header has {guess!r})" if guess else "")
        )
    return problems, missing, unexpected


def _close_match(name: str, candidates: list[str]) -> str | None:
    """The header column most likely to be ``name`` renamed: same letters, containing it, or spelled alike."""
    key = name.lower()
    for same in (
        [c for c in candidates if c.lower() == key],
        [c for c in candidates if len(c) > 2 and (key in c.lower() or c.lower() in key)],
        difflib.get_close_matches(name, candidates, n=1, cutoff=0.6),
    ):
        if same:
            return same[0]
    return None


def parse_partition(text: str, schema: Schema, ds: date) -> Partition:
    """Parse one CSV partition (with a header row) into typed rows, quarantined rows and problems.

    A UTF-8 byte-order mark is stripped (and noted). With a structural problem in the header, every
    row is quarantined with that problem as its reason.
    """
    warnings = []
    if text.startswith(_BOM):
        text = text[1:]
        warnings.append("UTF-8 byte-order mark at the start of the file (stripped)")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    problems, missing, unexpected = _header_problems(header, schema) if header else ([], [], [])
    position = {c: header.index(c) for c in [*schema.columns, *schema.label.annotators] if c in header}
    label = schema.label.name
    rows: list[dict[str, Any]] = []
    bad: list[list[Any]] = []
    for fields in reader:
        line = reader.line_num  # physical line: a quoted field may span several
        if not fields:
            continue
        if problems:
            reason: str | None = problems[0]
        else:
            reason, record = _parse_row(fields, len(header), position, schema)
            if reason is None and not record[label]:
                reason = f"{label}: label is missing"
        if reason:
            bad.append([ds.isoformat(), line, reason, ",".join(fields)])
            continue
        record[SOURCE_DS], record[SOURCE_ROW] = ds.isoformat(), line
        rows.append(record)
    frame = pd.DataFrame(rows, columns=[*schema.columns, *schema.label.annotators, SOURCE_DS, SOURCE_ROW])
    return Partition(
        _typed(frame, schema),
        pd.DataFrame(bad, columns=QUARANTINE_COLUMNS),
        problems,
        warnings,
        missing,
        unexpected,
    )


def _parse_row(
    fields: list[str], width: int, position: dict[str, int], schema: Schema
) -> tuple[str | None, dict[str, Any]]:
    if len(fields) != width:
        return f"expected {width} fields, got {len(fields)}", {}
    if any(_UNDECODABLE in f for f in fields):
        return "not valid UTF-8", {}
    record: dict[str, Any] = {}
    for feature in schema.features:
        raw = schema.cell(fields[position[feature.name]])
        if feature.kind == "numeric" and raw:
            try:
                record[feature.name] = float(raw)
            except ValueError:
                return f"{feature.name}: not a number: {raw!r}", {}
        else:
            record[feature.name] = raw or None
    for name in [schema.label.name, *schema.label.annotators]:
        record[name] = schema.cell(fields[position[name]])
    return None, record


def _typed(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    for name in schema.numeric:
        frame[name] = frame[name].astype("float64")
    for name in [*schema.categorical, schema.label.name, *schema.label.annotators, SOURCE_DS]:
        frame[name] = frame[name].astype("str")
    frame[SOURCE_ROW] = frame[SOURCE_ROW].astype("int64")
    return frame


def snapshot_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of a partition's rows, from the config alone (the types ``_typed`` gives them), so every
    partition is written with the same types: a column that is empty on one day stays a string or a float."""
    numeric = set(schema.numeric)
    columns = [*schema.columns, *schema.label.annotators]
    typed = [(c, pa.float64() if c in numeric else pa.large_string()) for c in columns]
    return pa.schema([*typed, (SOURCE_DS, pa.large_string()), (SOURCE_ROW, pa.int64())])


def read_partition(path: Path, schema: Schema, day: date) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read and parse one day's file; returns its rows, its quarantined rows and its metadata entry.

    The entry's ``status`` is ``read``, ``empty`` (no data rows), ``unreadable`` (not a file, or an
    OS error) or ``broken`` (a structural problem; see ``problems``).
    """
    entry: dict[str, Any] = {"ds": day.isoformat(), "path": str(path)}
    try:
        if not path.is_file():
            raise IsADirectoryError(f"{path} is a directory, not a file" if path.is_dir() else f"{path} is not a file")
        content = path.read_bytes()
    except OSError as exc:
        reason = str(exc) if isinstance(exc, IsADirectoryError) else f"cannot read {path}: {exc.strerror or exc}"
        entry.update(status="unreadable", rows=0, quarantined=0, problems=[reason], warnings=[])
        empty = pd.DataFrame(columns=[*schema.columns, *schema.label.annotators, SOURCE_DS, SOURCE_ROW])
        return _typed(empty, schema), pd.DataFrame(columns=QUARANTINE_COLUMNS), entry
    part = parse_partition(content.decode("utf-8", errors="replace"), schema, day)
    total = len(part.rows) + len(part.quarantined)
    status = "broken" if part.problems else ("read" if total else "empty")
    entry.update(
        status=status,
        sha256=hashlib.sha256(content).hexdigest(),
        rows=len(part.rows),
        quarantined=len(part.quarantined),
        problems=part.problems,
        warnings=part.warnings,
        missing_columns=part.missing_columns,
        unexpected_columns=part.unexpected_columns,
    )
    return part.rows, part.quarantined, entry
