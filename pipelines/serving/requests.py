"""Predict requests in TensorFlow Serving's REST formats, checked against the config's schema.

Row format ``{"instances": [{"age": 39, "sex": "Male", ...}, ...]}`` and columnar format
``{"inputs": {"age": [39, ...], "sex": ["Male", ...]}}`` both carry RAW feature values, exactly as the
training data has them; ``null`` is a missing value (the model handles it as in training), and so are an
empty string and the schema's ``missing_values``, as ingest reads them in a CSV. Every
feature must be named; a misspelt, unknown or mistyped one is refused with a message that names it,
so a client never gets a prediction computed from a silently dropped field.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import pandas as pd

from pipelines.core.config import Schema


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status, the message names the field."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_value(where: str, value: Any, kind: str, schema: Schema) -> Any:
    """The value as ingest reads a CSV cell (``Schema.cell``): a string stripped of surrounding spaces, None when it
    is null, empty or spelled as the schema's ``missing_values``; a number for a numeric feature."""
    if isinstance(value, str):
        value = schema.cell(value) or None
    if value is None:
        return None
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"{where}: expected a number or null, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise RequestError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise RequestError(f"{where}: expected a string or null, got {type(value).__name__} {value!r}")
    return value


def _check_names(where: str, names: Any, schema: Schema) -> None:
    features = [f.name for f in schema.model_features]
    for name in names:
        if name not in features:
            extra = " (the label is not an input)" if name == schema.label.name else _hint(str(name), features)
            raise RequestError(f"{where}: unknown feature {name!r}{extra}")
    missing = [name for name in features if name not in names]
    if missing:
        raise RequestError(f"{where}: missing feature(s) {missing} (send null for a missing value)")


def parse_predict(body: Any, schema: Schema, max_batch: int) -> tuple[pd.DataFrame, str]:
    """The rows of a predict request as a DataFrame typed like the training data, and its format.

    Returns:
        (rows, "instances" | "inputs").

    Raises:
        RequestError: 400 naming the offending field, or 413 for a batch above ``max_batch``.
    """
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object with 'instances' (rows) or 'inputs' (columns)")
    formats = [key for key in ("instances", "inputs") if key in body]
    if len(formats) != 1:
        raise RequestError("the body must have exactly one of 'instances' (rows) or 'inputs' (columns)")
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise RequestError(f"unknown request key(s) {unknown}")
    kinds = {f.name: f.kind for f in schema.model_features}
    if formats[0] == "instances":
        rows = body["instances"]
        if not isinstance(rows, list):
            raise RequestError("instances: expected a list of objects, one per row")
        _check_size(len(rows), max_batch)
        records = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise RequestError(f"instances[{i}]: expected an object of feature values")
            _check_names(f"instances[{i}]", row, schema)
            records.append({k: _check_value(f"instances[{i}].{k}", row[k], kinds[k], schema) for k in kinds})
        frame = pd.DataFrame.from_records(records, columns=list(kinds))
    else:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            raise RequestError("inputs: expected an object of feature -> list of values")
        _check_names("inputs", columns, schema)
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if -1 in lengths:
            bad = next(k for k, v in columns.items() if not isinstance(v, list))
            raise RequestError(f"inputs.{bad}: expected a list of values")
        if len(lengths) != 1:
            raise RequestError(f"inputs: every feature needs the same number of values, got lengths {sorted(lengths)}")
        _check_size(lengths.pop(), max_batch)
        frame = pd.DataFrame(
            {
                k: [_check_value(f"inputs.{k}[{i}]", v, kinds[k], schema) for i, v in enumerate(columns[k])]
                for k in kinds
            }
        )
    for name in schema.model_numeric:
        frame[name] = frame[name].astype("float64")
    return frame, formats[0]


def _check_size(n: int, max_batch: int) -> None:
    if n == 0:
        raise RequestError("the batch is empty: send at least one row")
    if n > max_batch:
        raise RequestError(f"the batch has {n} rows, more than serving.max_batch {max_batch}", status=413)
