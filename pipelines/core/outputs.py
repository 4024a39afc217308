"""Typed handles on each stage's output: the only place that spells a stage's file names.

A stage returns the URI of its output folder; the next stage wraps it in the matching handle
(``TransformOutput(uri).test_raw``) and never builds a path itself. ``require`` is what every stage
calls on its inputs before reading them: the input must exist, must have succeeded, and must still
be the output its own inputs were made from. That last check is what stops a stage from mixing two
runs of D, e.g. after a re-run was killed half-way (new ingest beside an old transform).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pandas as pd
import pyarrow.parquet as pq

from pipelines.core.artifacts import METADATA, input_fingerprint, read_json, read_metadata
from pipelines.core.contracts import GateRecord, PipelineError, StageName, Status

# Columns every snapshot row carries besides the schema's: where it came from (date, physical line).
SOURCE_DS = "_source_ds"
SOURCE_ROW = "_source_row"
SNAPSHOT_BATCH_ROWS = 65_536  # rows per batch when a stage streams the snapshot


class StaleInput(PipelineError):
    """An input is missing, failed, or no longer matches what it was made from; the message says what to re-run."""


@dataclass(frozen=True)
class StageOutput:
    """The output folder of one stage (``uri``); subclasses name the files inside it."""

    uri: str | Path
    stage: ClassVar[StageName]

    @property
    def path(self) -> Path:
        """The output folder as a path."""
        return Path(self.uri)

    def metadata(self) -> dict[str, Any]:
        """The output's metadata record."""
        return read_metadata(self.path)


@dataclass(frozen=True)
class IngestOutput(StageOutput):
    """The window's snapshot (Parquet) and its quarantined rows (CSV)."""

    stage = StageName.INGEST

    @property
    def snapshot(self) -> Path:
        """The window's rows that passed parsing, typed by the schema, with their source columns."""
        return self.path / "snapshot.parquet"

    @property
    def quarantine(self) -> Path:
        """Rows that did not parse: date, line, reason, raw text."""
        return self.path / "quarantine.csv"

    def read_snapshot(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The snapshot as a DataFrame (optionally only ``columns``): for small windows; see ``iter_snapshot``."""
        return pd.read_parquet(self.snapshot, columns=columns)

    def iter_snapshot(
        self, columns: list[str] | None = None, batch_rows: int = SNAPSHOT_BATCH_ROWS
    ) -> Iterator[pd.DataFrame]:
        """The snapshot's rows in order, as DataFrames of ``batch_rows`` rows (the last one shorter) with the dtypes
        of ``read_snapshot``, so a reader holds one batch at a time; an empty snapshot gives one empty frame, so a
        reader always sees the columns and their dtypes.
        """
        parquet = pq.ParquetFile(self.snapshot)
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            yield batch.to_pandas()
        if not parquet.metadata.num_rows:
            yield parquet.read(columns=columns).to_pandas()

    def row_group_rows(self) -> list[int]:
        """The rows of each of the snapshot's row groups, in order (ingest writes each partition as its own)."""
        metadata = pq.ParquetFile(self.snapshot).metadata
        return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]

    def read_row_groups(self, groups: list[int], columns: list[str] | None = None) -> pd.DataFrame:
        """The rows of the snapshot's row groups ``groups`` (see ``row_group_rows``), with the dtypes of
        ``read_snapshot``; ``[]`` gives the empty frame of a snapshot without rows."""
        parquet = pq.ParquetFile(self.snapshot)
        table = parquet.read_row_groups(groups, columns=columns) if groups else parquet.read(columns=columns)
        return table.to_pandas()


@dataclass(frozen=True)
class DriftOutput(StageOutput):
    """The drift report: test, statistic, threshold and verdict per feature, overall verdict, reference version."""

    stage = StageName.DRIFT

    @property
    def report_path(self) -> Path:
        """The report as JSON."""
        return self.path / "drift.json"

    @property
    def html_path(self) -> Path:
        """The report as a self-contained HTML page, with each feature's distributions."""
        return self.path / "drift.html"

    def report(self) -> dict[str, Any]:
        """The report, parsed."""
        return read_json(self.report_path)


@dataclass(frozen=True)
class ValidationOutput(StageOutput):
    """The Great Expectations result summary and the Data Docs site."""

    stage = StageName.VALIDATE

    @property
    def result_path(self) -> Path:
        """The validation summary as JSON."""
        return self.path / "validation.json"

    @property
    def data_docs(self) -> Path:
        """The Great Expectations Data Docs site of this validation."""
        return self.path / "data_docs"

    def result(self) -> dict[str, Any]:
        """The validation summary: success, each expectation's outcome, failed ones first-class."""
        return read_json(self.result_path)


@dataclass(frozen=True)
class TransformOutput(StageOutput):
    """Raw train/validation/test splits, their report, transformed train examples and the TFT output."""

    stage = StageName.TRANSFORM

    @property
    def train_raw(self) -> Path:
        """Raw rows of the train split (also the drift reference once the model is promoted)."""
        return self.path / "train_raw.parquet"

    @property
    def test_raw(self) -> Path:
        """Raw rows of the test split (what evaluation scores both models on)."""
        return self.path / "test_raw.parquet"

    @property
    def validation_raw(self) -> Path:
        """Raw rows held out of the train split to choose the decision threshold on (when one is chosen)."""
        return self.path / "validation_raw.parquet"

    @property
    def split_report_path(self) -> Path:
        """The split report as JSON: rows, label shares and slice-column shares per split, and their gaps."""
        return self.path / "split.json"

    def split_report(self) -> dict[str, Any]:
        """The split report, parsed."""
        return read_json(self.split_report_path)

    @property
    def tft_dir(self) -> Path:
        """TFT's output: the transform graph, vocabularies and schemas."""
        return self.path / "tft"

    @property
    def transformed_dir(self) -> Path:
        """Transformed train examples as TFRecord files."""
        return self.path / "transformed"

    @property
    def beam_temp(self) -> Path:
        """Beam/TFT scratch space, removed when the transform finishes."""
        return self.path / ".beam-tmp"


@dataclass(frozen=True)
class TrainOutput(StageOutput):
    """The exported candidate model."""

    stage = StageName.TRAIN

    @property
    def model_dir(self) -> Path:
        """The exported SavedModel (raw serialized tf.Examples in)."""
        return self.path / "model"


@dataclass(frozen=True)
class EvaluationOutput(StageOutput):
    """The evaluation report: candidate, live and baseline metrics, overall and per slice."""

    stage = StageName.EVALUATE

    @property
    def report_path(self) -> Path:
        """The report as JSON."""
        return self.path / "evaluation.json"

    def report(self) -> dict[str, Any]:
        """The report, parsed."""
        return read_json(self.report_path)

    @property
    def scores_path(self) -> Path:
        """The candidate's score per test row (column ``candidate``, in the order of the transform's test rows)."""
        return self.path / "scores.parquet"


@dataclass(frozen=True)
class GateOutput(StageOutput):
    """The gate's record: decision, attempt, and the live version it compared with."""

    stage = StageName.GATE

    @property
    def decision_path(self) -> Path:
        """The gate record as JSON."""
        return self.path / "decision.json"

    def record(self) -> GateRecord:
        """The gate record, typed."""
        return GateRecord.from_dict(read_json(self.decision_path))


Output = TypeVar("Output", bound=StageOutput)


def require(output: Output) -> Output:
    """Check that ``output`` may be read, and return it.

    Raises:
        StaleInput: it was never written, it failed, or something it was made from (directly or further
            up the chain) has changed since: a later, possibly killed, re-run replaced it. The message
            names the stage to re-run.
    """
    stage = output.stage
    if not (output.path / METADATA).exists():
        raise StaleInput(f"no {stage} output at {output.path}: run `{stage}` first")
    status = output.metadata().get("status")
    if status is None:
        raise StaleInput(
            f"the {stage} output at {output.path} has no status (an older version wrote it): re-run `{stage}`"
        )
    if status != Status.SUCCEEDED:
        raise StaleInput(
            f"the {stage} output at {output.path} is marked {status}: fix what it reports, re-run `{stage}`"
        )
    problem = inconsistency(output.path)
    if problem:
        raise StaleInput(f"the {stage} output at {output.path} {problem}: re-run from `{stage}`")
    return output


def inconsistency(uri: str | Path, _seen: set[Path] | None = None) -> str | None:
    """Why the output at ``uri`` no longer matches what it was made from, or None if it does.

    Walks the recorded inputs up the chain: each must still exist with the fingerprint recorded.
    """
    seen = set() if _seen is None else _seen
    for name, recorded in read_metadata(uri).get("inputs", {}).items():
        upstream = Path(recorded["uri"])
        if upstream in seen:
            continue
        seen.add(upstream)
        if input_fingerprint(upstream) != recorded["fingerprint"]:
            return (
                f"was made from a {name} ({upstream}) that has since been replaced or removed (an interrupted re-run?)"
            )
        if inconsistency(upstream, seen):
            return f"depends on a {name} ({upstream}) that is itself out of date"
    return None
