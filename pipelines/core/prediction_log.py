"""The router's prediction and feedback logs: append-only JSON lines, one folder per hour.

Layout under ``<artifact_root>/serving/``::

    predictions/date=2026-01-28/hour=14/<host>-<pid>-<start>.jsonl
    feedback/date=2026-01-28/hour=15/<host>-<pid>-<start>.jsonl

A **prediction record** is one predict request as the router handled it::

    {"request_id": "9f0c...", "time": "2026-01-28T14:03:07.123456+00:00", "role": "live",
     "slot": "blue", "version": "2026-01-14-3fa2...", "status": 200, "latency_ms": 4.1,
     "request": {"instances": [{"age": 39, ...}]}, "response": {"predictions": [{"probability": 0.12, "class": 0}]}}

``role`` is ``live`` (the answer the client got), ``canary`` (the client's answer came from the standby
slot) or ``shadow`` (a mirrored copy; the client never saw it). ``request`` and ``response`` are the
bodies as sent (TF Serving's row or columnar format); a body that was not JSON is kept as a string.
``status`` 0 means the server could not be reached. A **feedback record** is a delayed true label::

    {"request_id": "9f0c...", "row": 0, "label": ">50K", "time": "2026-01-29T09:00:00+00:00"}

Each process writes its own file, in batches, each batch one ``write`` of whole lines. A crash can tear
at most the last line of that file: readers skip a line that does not parse and count it, and a writer
that opens an existing file first ends a torn line, so earlier records are never damaged.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.core.config import Config

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"


def log_dir(config: Config, kind: str) -> Path:
    """The folder of one log (``predictions`` or ``feedback``)."""
    return config.artifact_root / "serving" / kind


def hour_dir(config: Config, kind: str, at: datetime) -> Path:
    """The partition of the hour ``at`` falls in (UTC)."""
    at = at.astimezone(UTC)
    return log_dir(config, kind) / f"date={at.date().isoformat()}" / f"hour={at.hour:02d}"


class LogWriter:
    """Appends records to this process's file of each hour's partition; not thread-safe (one writer thread)."""

    def __init__(self, config: Config, kind: str) -> None:
        self.config, self.kind = config, kind
        self.name = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}.jsonl"

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append ``records`` (each with an ISO ``time``), one write per hour partition, then flush."""
        by_hour: dict[Path, list[str]] = {}
        for record in records:
            folder = hour_dir(self.config, self.kind, datetime.fromisoformat(record["time"]))
            by_hour.setdefault(folder, []).append(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        for folder, lines in by_hour.items():
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / self.name
            with path.open("a", encoding="utf-8") as handle:
                if handle.tell() and not _ends_with_newline(path):
                    handle.write("\n")  # end a line torn by a crash, so it stays one bad line
                handle.write("".join(lines))
                handle.flush()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def read_records(config: Config, kind: str, start: datetime, end: datetime) -> tuple[list[dict[str, Any]], int]:
    """Records of one log with ``start <= time < end``, oldest first, and how many lines were unreadable."""
    records, torn = [], 0
    for path in _files(config, kind, start, end):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                at = datetime.fromisoformat(record["time"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                torn += 1
                continue
            if start <= at < end:
                records.append(record)
    if torn:
        log.warning("%s log: skipped %d unreadable line(s) (torn by a crash?)", kind, torn)
    records.sort(key=lambda r: r["time"])
    return records, torn


def _files(config: Config, kind: str, start: datetime, end: datetime) -> Iterator[Path]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        folder = hour_dir(config, kind, hour)
        if folder.exists():
            yield from sorted(folder.glob("*.jsonl"))
        hour += timedelta(hours=1)


def prediction_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per predicted row: the record's fields, the row's index, raw features, probability and class.

    Requests that got no answer (or a refusal) give one row with ``status`` and no features.
    """
    rows = []
    for record in records:
        base = {k: record.get(k) for k in ("request_id", "time", "role", "slot", "version", "status", "latency_ms")}
        features, outputs = _instances(record.get("request")), _outputs(record.get("response"))
        if record.get("status") != 200 or not features or len(features) != len(outputs):
            rows.append({**base, "row": None})
            continue
        for i, (row, (probability, klass)) in enumerate(zip(features, outputs, strict=True)):
            rows.append({**base, "row": i, "features": row, "probability": probability, "class": klass})
    return rows


def _instances(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("instances"), list):
        return [r for r in body["instances"] if isinstance(r, dict)]
    columns = body.get("inputs")
    if isinstance(columns, dict) and columns:
        names = list(columns)
        return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=False)]
    return []


def _outputs(body: Any) -> list[tuple[float, int]]:
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("predictions"), list):
        return [(p.get("probability"), p.get("class")) for p in body["predictions"] if isinstance(p, dict)]
    outputs = body.get("outputs")
    if isinstance(outputs, dict):
        return list(zip(outputs.get("probability", []), outputs.get("class", []), strict=False))
    return []
