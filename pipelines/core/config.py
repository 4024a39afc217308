"""Typed configuration: one YAML per use case, validated into frozen objects.

Every stage reads the same `Config`: the feature list, label and slices drive the TFT
`preprocessing_fn`, the trainer, the Great Expectations suite, the drift check and the evaluation.
Relative paths in the YAML are resolved against the YAML file's folder, so a config works from any
working directory (Airflow workers, the CLI, tests).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from pipelines.core.rules import Condition, parse_rule
from pipelines.core.storage import attach, default_cache, is_url

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "adult.yaml"
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
Metric = Literal["accuracy", "precision", "recall", "f1", "roc_auc"]
NumericTransform = Literal["zscore", "minmax", "log", "bucketize"]


def _as_written(value: Any) -> Any:
    """A value of the data as the CSV writes it: a YAML number as its text (``positive: 1`` means "1"). A YAML
    boolean is refused: YAML reads yes, no, on, off, true and false unquoted as booleans, and loses which it was."""
    if isinstance(value, bool):
        raise ValueError(
            f"YAML read this value as the boolean {value} (it reads yes, no, on, off, true and false unquoted so): "
            "quote it as the data writes it, e.g. 'yes' or 'True'"
        )
    return str(value) if isinstance(value, int | float) else value


DataValue = Annotated[str, BeforeValidator(_as_written)]  # a categorical or label value, as the CSV writes it


class ConfigError(ValueError):
    """The config file is missing, not YAML, or does not match the schema (the message names the key)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = path.expanduser()
    return (Path(base) / path).resolve() if base and not path.is_absolute() else path


class Feature(_Strict):
    """One input column. Numeric columns may carry a valid range, categorical ones a value set."""

    name: str
    kind: Literal["numeric", "categorical"]
    min: float | None = None
    max: float | None = None
    values: list[DataValue] | None = Field(
        None,
        description="Categorical only: the values the column takes, as the CSV writes them (a YAML number is read as "
        "its text; quote yes, no, on, off, true and false).",
    )
    max_missing: float = Field(0.0, ge=0.0, le=1.0, description="Largest tolerated fraction of nulls in the window.")
    max_missing_partition: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Largest fraction of nulls in any one partition; default twice max_missing (a day is noisier).",
    )
    slice_bins: list[float] | None = Field(None, description="Bin edges when a numeric feature is sliced.")
    audit_only: bool = Field(
        False,
        description="Carried through ingest, validation, drift and the splits for slicing and fairness audits, "
        "but never fed to the model (e.g. a protected attribute the model may not use).",
    )
    transform: NumericTransform | None = Field(
        None,
        description="Numeric only: zscore (default), minmax (to [0, 1] over the train split), log (log1p of the "
        "value clipped at 0, then z-scored) or bucketize (quantile bucket ids in place of the value).",
    )
    buckets: int | None = Field(
        None,
        ge=2,
        description="Numeric only: quantile buckets of the train split. Required by bucketize; with another "
        "transform the model gets both the scaled value and the bucket ids (``<name>_bucket``).",
    )
    impute: float | str | None = Field(
        None,
        description="What a missing value becomes inside the transform graph, so serving does the same: a number "
        "for a numeric feature (default: its train mean), a token for a categorical one (default __MISSING__).",
    )
    top_k: int | None = Field(
        None, ge=1, description="Categorical only: the vocabulary keeps the k most frequent values."
    )
    frequency_threshold: int | None = Field(
        None, ge=1, description="Categorical only: the vocabulary keeps values seen at least this often in training."
    )
    num_oov_buckets: int | None = Field(
        None, ge=1, description="Categorical only: hash buckets for values outside the vocabulary (default 1)."
    )

    @property
    def bucket_output(self) -> str | None:
        """The transformed feature holding this feature's quantile bucket ids (None without buckets)."""
        if self.buckets is None:
            return None
        return self.name if self.transform == "bucketize" else f"{self.name}_bucket"

    @property
    def partition_missing(self) -> float:
        """The null share tolerated in one partition."""
        return self.max_missing_partition if self.max_missing_partition is not None else min(1.0, 2 * self.max_missing)

    @model_validator(mode="after")
    def _kind_fits(self) -> Feature:
        if self.kind == "categorical" and (self.min is not None or self.max is not None or self.slice_bins):
            raise ValueError(f"feature {self.name!r}: min/max/slice_bins apply to numeric features only")
        if self.kind == "numeric" and self.values is not None:
            raise ValueError(f"feature {self.name!r}: values apply to categorical features only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} > max {self.max}")
        return self

    @model_validator(mode="after")
    def _transform_fits(self) -> Feature:
        numeric_only = {"transform": self.transform, "buckets": self.buckets}
        categorical_only = {
            "top_k": self.top_k,
            "frequency_threshold": self.frequency_threshold,
            "num_oov_buckets": self.num_oov_buckets,
        }
        wrong = numeric_only if self.kind == "categorical" else categorical_only
        misplaced = [key for key, value in wrong.items() if value is not None]
        if misplaced:
            raise ValueError(f"feature {self.name!r}: {'/'.join(misplaced)} do not apply to {self.kind} features")
        if self.transform == "bucketize" and self.buckets is None:
            raise ValueError(f"feature {self.name!r}: transform bucketize needs buckets")
        if self.transform == "log" and self.min is not None and self.min < 0:
            raise ValueError(f"feature {self.name!r}: transform log needs values >= 0, but min is {self.min}")
        if self.impute is not None and isinstance(self.impute, str) != (self.kind == "categorical"):
            expected = "a quoted token" if self.kind == "categorical" else "a number"
            raise ValueError(f"feature {self.name!r}: impute of a {self.kind} feature must be {expected}")
        return self


class Label(_Strict):
    """The label column: binary (``positive`` names the positive class) or multi-class (more than two ``values``
    and no ``positive``: a softmax over the values, in their order)."""

    name: str
    positive: DataValue | None = Field(
        None,
        description="The label value that counts as the positive class; required for a binary label. With more than "
        "two values it makes the label binary one-vs-rest (the other values form the negative class); leave it out "
        "for a multi-class label.",
    )
    values: list[DataValue] | None = Field(
        None,
        description="The values the label takes. More than two and no positive: a multi-class label, whose class "
        "ids (the model's output columns) follow this order.",
    )
    annotators: list[str] = Field(
        default_factory=list,
        description="Columns holding each labeler's own label, when the data has several; their agreement is checked.",
    )

    @model_validator(mode="after")
    def _positive_is_a_value(self) -> Label:
        if self.values is not None and len(set(self.values)) < len(self.values):
            dupes = sorted({v for v in self.values if self.values.count(v) > 1})
            raise ValueError(f"label {self.name!r}: values lists {dupes} more than once")
        if self.positive is None and (self.values is None or len(self.values) <= 2):
            listed = "no values" if self.values is None else f"values {self.values}"
            raise ValueError(
                f"label {self.name!r}: positive is required for a binary label ({listed}); a multi-class label "
                "lists more than two values and no positive"
            )
        if self.positive is not None and self.values is not None and self.positive not in self.values:
            raise ValueError(f"label {self.name!r}: positive {self.positive!r} is not one of values {self.values}")
        if self.name in self.annotators:
            raise ValueError(f"label {self.name!r}: the label column cannot also be an annotator column")
        return self

    @property
    def is_multiclass(self) -> bool:
        """More than two values and no positive class: a softmax over ``values``."""
        return self.positive is None

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names in class-id order: ``values`` for a multi-class label; (negative, positive) for a
        binary one, the negative named by the other value (or ``not <positive>``)."""
        if self.is_multiclass:
            return tuple(self.values or ())
        others = [v for v in self.values or () if v != self.positive]
        return (others[0] if len(others) == 1 else f"not {self.positive}", str(self.positive))


class Cross(_Strict):
    """Features crossed into one categorical input: their values joined and hashed into buckets."""

    features: list[str] = Field(min_length=2, description="Model features; numeric ones by their bucket ids.")
    hash_buckets: int = Field(100, ge=2, description="Buckets the joined values are hashed into.")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, raw: Any) -> Any:
        """``[a, b]`` is short for ``{features: [a, b]}``."""
        return {"features": raw} if isinstance(raw, list) else raw

    @property
    def name(self) -> str:
        """The transformed feature holding the cross's bucket ids."""
        return "_x_".join(self.features)


TRANSFORM_OPTIONS = ("transform", "buckets", "impute", "top_k", "frequency_threshold", "num_oov_buckets")


class Schema(_Strict):
    """The columns the pipeline reads: features, label, and known columns to ignore; how the model sees them."""

    label: Label
    features: list[Feature] = Field(min_length=1)
    ignore: list[str] = Field(default_factory=list, description="Known source columns that are not used.")
    missing_values: list[DataValue] = Field(
        default_factory=list,
        description="How the data spells a missing value besides an empty cell, in any column, e.g. [NA, '?', "
        "'NULL'] (a cell matches once its surrounding spaces are stripped). A missing label quarantines its row.",
    )
    crosses: list[Cross] = Field(
        default_factory=list,
        description="Feature crosses fed to the model as categorical inputs (``<a>_x_<b>``): each ``[a, b]`` or "
        "``{features: [a, b], hash_buckets: N}``; a numeric member needs buckets.",
    )
    preprocessing_fn: str | None = Field(
        None,
        description="Your own TFT preprocessing_fn instead of the per-feature transforms, as ``package.module:fn`` "
        "(or ``package.module.fn``): it takes the dict of raw inputs (a SparseTensor of zero or one value per row "
        "each) and returns the dict of outputs (the label is encoded as usual unless it returns it). Float "
        "outputs reach the model as numbers, integer ones with a known range (vocabulary, buckets) as embedded ids.",
    )

    @model_validator(mode="after")
    def _unique(self) -> Schema:
        names = [f.name for f in self.features] + [self.label.name] + self.label.annotators
        dupes = sorted({n for n in names if names.count(n) > 1})
        if self.label.name in (f.name for f in self.features):
            raise ValueError(f"{self.label.name!r} is the label: it cannot also be a feature")
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        if not self.model_features:
            raise ValueError("every feature is audit_only: the model needs at least one feature")
        return self

    @model_validator(mode="after")
    def _transforms_fit(self) -> Schema:
        model = {f.name: f for f in self.model_features}
        for cross in self.crosses:
            unknown = [n for n in cross.features if n not in model]
            if unknown:
                raise ValueError(f"crosses: {cross.features} names {unknown}, not features the model reads")
            unbucketed = [n for n in cross.features if model[n].kind == "numeric" and model[n].buckets is None]
            if unbucketed:
                raise ValueError(f"crosses: numeric {unbucketed} in {cross.features} need buckets")
        extra = [f.bucket_output for f in model.values() if f.bucket_output not in (None, f.name)]
        outputs = [*model, *extra, *(c.name for c in self.crosses), self.label.name]
        clashes = sorted({n for n in outputs if outputs.count(n) > 1})
        if clashes:
            raise ValueError(f"transformed feature names clash: {clashes}")
        if self.preprocessing_fn is not None:
            if not re.fullmatch(r"[A-Za-z_][\w.]*[:.][A-Za-z_]\w*", self.preprocessing_fn):
                raise ValueError(f"preprocessing_fn {self.preprocessing_fn!r} is not 'package.module:function'")
            configured = [f.name for f in self.features if any(getattr(f, k) is not None for k in TRANSFORM_OPTIONS)]
            if configured or self.crosses:
                raise ValueError(
                    f"preprocessing_fn replaces the configured transforms: remove crosses and the {TRANSFORM_OPTIONS} "
                    f"of {configured}"
                )
        return self

    @property
    def columns(self) -> list[str]:
        """Feature names, then the label."""
        return [f.name for f in self.features] + [self.label.name]

    @property
    def numeric(self) -> list[str]:
        """Names of the numeric features."""
        return [f.name for f in self.features if f.kind == "numeric"]

    def cell(self, text: str) -> str:
        """A value's text as every stage reads it (ingest from a CSV cell, the model server and monitoring from a
        request): stripped of surrounding spaces, and "" when it spells a missing value."""
        text = text.strip()
        return "" if text in self.missing_values else text

    @property
    def model_features(self) -> list[Feature]:
        """The features the model reads: all but the audit-only ones."""
        return [f for f in self.features if not f.audit_only]

    @property
    def model_numeric(self) -> list[str]:
        """Names of the numeric features the model reads."""
        return [f.name for f in self.model_features if f.kind == "numeric"]

    @property
    def model_categorical(self) -> list[str]:
        """Names of the categorical features the model reads."""
        return [f.name for f in self.model_features if f.kind == "categorical"]

    @property
    def categorical(self) -> list[str]:
        """Names of the categorical features."""
        return [f.name for f in self.features if f.kind == "categorical"]

    def feature(self, name: str) -> Feature:
        """The feature called ``name``."""
        return next(f for f in self.features if f.name == name)


class Split(_Strict):
    """How rows are assigned to the test (and validation) split (see ``pipelines.features.splits``)."""

    method: Literal["hash", "stratified"] = Field(
        "hash",
        description="hash: each row by a stable hash of its source (date, line), so a row keeps its side across "
        "windows; stratified: within each group of label x ``stratify_by`` values, the share closest to the "
        "fraction (for small data, where hash shares wander; it holds the whole snapshot in memory, while the hash "
        "split streams it in batches).",
    )
    stratify_by: list[str] = Field(
        default_factory=list,
        description="Feature columns that define the strata besides the label (numeric ones by their slice_bins).",
    )

    @model_validator(mode="after")
    def _stratified_only(self) -> Split:
        if self.stratify_by and self.method != "stratified":
            raise ValueError("stratify_by applies to method 'stratified' only")
        if len(set(self.stratify_by)) < len(self.stratify_by):
            raise ValueError(f"stratify_by names a column twice: {self.stratify_by}")
        return self


class DataSource(_Strict):
    """Where the daily partitions are, the training window and the train/test split."""

    root: Path = Field(description="Folder holding the daily partitions.")
    partition_pattern: str = Field("ds={date}/part-0.csv", description="Path of one day's CSV under root.")
    window_days: int = Field(ge=1, description="Days of partitions, ending at the logical date, to train on.")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of the window's rows held out for testing.")
    split_seed: int = 0
    split: Split = Split()

    @field_validator("root")
    @classmethod
    def _resolve_root(cls, v: Path, info: ValidationInfo) -> Path:
        return _resolve(v, info)

    @field_validator("partition_pattern")
    @classmethod
    def _has_date(cls, v: str) -> str:
        if "{date}" not in v:
            raise ValueError("must contain '{date}'")
        return v

    def partition(self, day: date) -> Path:
        """The path of ``day``'s partition (the one place that spells it)."""
        return self.root / self.partition_pattern.format(date=day.isoformat())

    def first_day(self) -> date | None:
        """The earliest day that has a partition under ``root`` (None when there is none)."""
        prefix, _, suffix = self.partition_pattern.partition("{date}")
        days = []
        for path in self.root.glob(self.partition_pattern.replace("{date}", "*")):
            text = path.relative_to(self.root).as_posix()
            try:
                days.append(date.fromisoformat(text[len(prefix) : len(text) - len(suffix)]))
            except ValueError:
                continue
        return min(days, default=None)


class IngestThresholds(_Strict):
    """What an ingest tolerates, over the window and in each partition."""

    max_quarantine_fraction: float = Field(0.05, ge=0.0, le=1.0, description="Malformed share of the window's rows.")
    max_partition_quarantine_fraction: float = Field(
        0.2, ge=0.0, le=1.0, description="Malformed share of any one partition's rows."
    )
    min_partition_rows: int = Field(
        1, ge=1, description="Usable rows D's own partition must hold (an empty or unusable day blocks the run)."
    )
    max_missing_days: int = Field(
        1,
        ge=0,
        description="Days without a partition tolerated inside the window (days before the source's first "
        "partition are not counted as missing).",
    )


class Tolerance(_Strict):
    """Largest share of rows allowed to break an expectation, over the window and in each partition."""

    window: float = Field(ge=0.0, le=1.0)
    partition: float = Field(ge=0.0, le=1.0)


class ValidationThresholds(_Strict):
    """Validation limits besides the per-column ones in the schema; the expectations file can refine them."""

    min_rows: int = Field(500, ge=1, description="Rows the window must hold.")
    values: Tolerance = Field(
        Tolerance(window=0.001, partition=0.01),
        description="Share of rows allowed outside a feature's value set or range before the check fails.",
    )
    max_label_conflicts: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Largest share of rows in identical-feature groups with conflicting labels (None: report only).",
    )
    min_annotator_agreement: float | None = Field(
        None, ge=-1.0, le=1.0, description="Smallest kappa between the label's annotators (None: report only)."
    )


DriftTest = Literal["ks", "wasserstein", "chi2", "jensen_shannon", "psi"]


class FeatureDrift(_Strict):
    """A per-feature override of the drift test and its threshold."""

    test: DriftTest | None = None
    threshold: float | None = Field(None, gt=0.0, description="p-value (ks, chi2) or distance (the others).")


class Calibration(_Strict):
    """Learning each feature's normal variability from past partitions, before the window."""

    history_days: int = Field(30, ge=0, description="Past days read for calibration (0 turns it off).")
    min_windows: int = Field(5, ge=2, description="Fewer past windows than this: the default threshold is used.")
    k: float = Field(3.0, gt=0.0, description="Threshold = mean + k standard deviations of the past distances.")


class DriftThresholds(_Strict):
    """Which test judges each feature, when it counts as drifted, and when the dataset does."""

    min_rows: int = Field(200, ge=1, description="Fewer rows on either side gives 'insufficient data'.")
    large_sample: int = Field(
        1000, ge=1, description="From this many rows on both sides, distances replace the p-value tests."
    )
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Family-wise (holm) or false-discovery (bh) rate.")
    correction: Literal["holm", "bh", "none"] = "holm"
    wasserstein: float = Field(0.1, gt=0.0, description="Wasserstein distance / reference std above which drifted.")
    jensen_shannon: float = Field(0.1, gt=0.0, description="Jensen-Shannon distance above which drifted.")
    psi: float = Field(0.2, gt=0.0, description="Population stability index threshold (reported alongside).")
    bins: int = Field(10, ge=2, description="Quantile bins of the reference for PSI on numeric features.")
    warn_share: float = Field(0.05, gt=0.0, le=1.0, description="Share of drifted features that makes a warning.")
    drift_share: float = Field(0.3, gt=0.0, le=1.0, description="Share of drifted features that makes 'drift'.")
    calibration: Calibration = Calibration()
    features: dict[str, FeatureDrift] = Field(default_factory=dict, description="Per-feature overrides.")

    @model_validator(mode="after")
    def _consistent(self) -> DriftThresholds:
        if self.warn_share > self.drift_share:
            raise ValueError(f"warn_share {self.warn_share} is above drift_share {self.drift_share}")
        for name, override in self.features.items():
            # The default test changes with the sample size, and with it what a threshold means.
            if override.threshold is not None and override.test is None:
                raise ValueError(f"features.{name}: a threshold needs its test (p-value for ks/chi2, else a distance)")
            if override.test in ("ks", "chi2") and (override.threshold or 0) >= 1:
                raise ValueError(f"features.{name}: {override.test} compares a p-value, the threshold must be below 1")
        return self


class GatePolicy(_Strict):
    """What a candidate must show to be promoted (see ``pipelines.decision.gate``)."""

    floors: dict[Metric, float] = Field(
        default_factory=dict,
        description="Absolute minimum of each metric for the candidate. For a multi-class label precision, recall "
        "and f1 are macro averages over the classes and roc_auc is the macro one-vs-rest AUC.",
    )
    primary_metric: Metric = Field(
        "roc_auc",
        description="The metric of the comparison with the live model, overall and per slice (macro for a "
        "multi-class label, as in floors).",
    )
    max_regression: float = Field(0.01, ge=0.0, description="Non-inferiority margin against the live model.")
    max_slice_regression: float = Field(0.05, ge=0.0, description="Tolerated regression against live on each slice.")
    slice_rule: Literal["no_significant_regression", "non_inferiority"] = Field(
        "no_significant_regression",
        description="A slice fails when its regression beyond the tolerance is significant (default), or unless "
        "its non-inferiority is shown (stricter: small slices then fail for lack of evidence).",
    )
    slice_correction: Literal["holm", "bh", "none"] = Field(
        "holm", description="Correction for testing many slices (Holm: family-wise; bh: false discovery rate)."
    )
    min_slice_size: int = Field(
        100, ge=1, description="Slices with fewer test rows are reported as insufficient evidence, not judged."
    )
    min_test_rows: int = Field(
        100,
        ge=1,
        description="Fewer test rows: the gate answers insufficient evidence (100 is the test split of the least "
        "window validation.min_rows lets through, at the default test_fraction).",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Level of every bootstrap interval the gate reads.")
    bootstrap_samples: int = Field(300, ge=50, description="Bootstrap resamples of the test split.")
    max_retrains: int = Field(1, ge=0, description="Automatic retrains after a failed candidate.")
    warn_only: list[Literal["floors", "baseline", "non_inferiority", "slices", "fairness"]] = Field(
        default_factory=list,
        description="Check families that only warn when they fail (recorded as notes); the others block.",
    )


Severity = Literal["block", "warn"]
FAIRNESS_CHECKS = (
    "equalized_odds_difference",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_worsening_vs_live",
)
FairnessCheck = Literal[
    "equalized_odds_difference",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_worsening_vs_live",
]


class FairnessLimits(_Strict):
    """Limits on one attribute's between-group figures, each checked at its confidence bound (None: report only)."""

    max_equalized_odds_difference: float | None = Field(
        None, ge=0.0, le=1.0, description="Largest TPR or FPR gap between groups, at the upper bound."
    )
    max_demographic_parity_difference: float | None = Field(
        None, ge=0.0, le=1.0, description="Largest selection-rate gap between groups, at the upper bound."
    )
    min_demographic_parity_ratio: float | None = Field(
        None, ge=0.0, le=1.0, description="Smallest lowest-to-highest selection-rate ratio, at the lower bound."
    )
    max_worsening_vs_live: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Largest rise of the equalized odds difference over the live model's, at the upper bound "
        "of the paired interval.",
    )


class Fairness(FairnessLimits):
    """The audit of the protected attributes and the gate's limits on it (see ``pipelines.evaluation.fairness``).

    The limits here apply to every protected attribute and intersection; ``attributes`` overrides them for one
    (a limit the override leaves out keeps the default, an explicit null turns that check off there). Bounds
    are those of the bootstrap interval at ``gate.confidence``.
    """

    min_group_size: int = Field(
        50, ge=1, description="Groups with fewer test rows are reported as too small and left out of the gaps."
    )
    intersections: list[list[str]] = Field(
        default_factory=list, description="Combinations of protected attributes audited as one, e.g. [sex, race]."
    )
    attributes: dict[str, FairnessLimits] = Field(
        default_factory=dict, description="Per-attribute limits; an intersection is spelled 'sex x race'."
    )
    severity: Severity = Field("block", description="What a failed fairness check does: block promotion or warn.")
    severities: dict[FairnessCheck, Severity] = Field(default_factory=dict, description="Per-check severity.")

    @field_validator("intersections")
    @classmethod
    def _two_or_more(cls, v: list[list[str]]) -> list[list[str]]:
        for spec in v:
            if len(set(spec)) < 2 or len(set(spec)) < len(spec):
                raise ValueError(f"{spec}: an intersection names two or more distinct attributes")
        return v

    def limits(self, attribute: str) -> FairnessLimits:
        """The limits for ``attribute``: the defaults, with the fields its override sets."""
        defaults = {name: getattr(self, name) for name in FairnessLimits.model_fields}
        override = self.attributes.get(attribute)
        if override is not None:
            defaults.update(override.model_dump(include=override.model_fields_set))
        return FairnessLimits(**defaults)


class Thresholds(_Strict):
    """Every threshold of every check, in one place."""

    ingest: IngestThresholds = IngestThresholds()
    validation: ValidationThresholds = ValidationThresholds()
    drift: DriftThresholds = DriftThresholds()
    gate: GatePolicy = GatePolicy()
    fairness: Fairness = Fairness()


class DecisionThreshold(_Strict):
    """Where a score becomes a positive prediction: fixed, or chosen on a validation split held out of the
    train split; the chosen value travels with the model (``decision_threshold.json`` in it)."""

    strategy: Literal["fixed", "max_f1", "min_precision"] = Field(
        "fixed",
        description="fixed: ``value``; max_f1: the F1-best cut; min_precision: the lowest cut reaching "
        "precision ``value`` (most recall).",
    )
    value: float = Field(0.5, gt=0.0, lt=1.0, description="The threshold (fixed) or the precision to reach.")
    validation_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="Share of the train split held out to choose the threshold on (strategies other than fixed) "
        "and to stop training early on (training.early_stopping).",
    )


class EarlyStopping(_Strict):
    """Stop once the metric on the validation split has not improved for ``patience`` epochs, and keep the
    weights of its best epoch; ``training.epochs`` is then the most epochs trained."""

    monitor: Literal["val_auc", "val_loss", "val_accuracy"] = Field(
        "val_auc",
        description="The validation metric watched: val_loss is minimised, the others maximised (for a multi-class "
        "label val_auc is the macro one-vs-rest AUC).",
    )
    patience: int = Field(2, ge=1, description="Epochs without an improvement before training stops.")
    min_delta: float = Field(0.0, ge=0.0, description="The smallest change of the metric that is an improvement.")


class Training(_Strict):
    """The Keras model and how it is trained: layers, optimiser, early stopping, class weights, seed, a sanity
    check before the fit, and an optional warm start from the live model."""

    epochs: int = Field(10, ge=1, description="Epochs to train (the most, with early_stopping).")
    batch_size: int = Field(128, ge=1, description="Training rows per gradient step.")
    learning_rate: float = Field(0.001, gt=0.0, description="Adam's learning rate.")
    hidden_units: list[int] = Field([64, 32], min_length=1, description="Units of each hidden ReLU layer, in order.")
    embedding_dim: int = Field(8, ge=1, description="Size of the embedding of each integer-id input.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout rate after each hidden layer; 0: none.")
    early_stopping: EarlyStopping | None = Field(
        None,
        description="Early stopping on the validation split (``threshold.validation_fraction`` of the train split "
        "held out); null: train every epoch. ``{}`` takes the defaults (val_auc, patience 2).",
    )
    class_weight: Literal["none", "balanced"] | dict[str, Annotated[float, Field(gt=0.0)]] = Field(
        "none",
        description="Loss weight per class: none; balanced (rows / (classes x rows of the class), counted on the "
        "train split); or {label value: weight}, a value not named weighing 1.",
    )
    seed: int = Field(
        0,
        description="Seeds initial weights, shuffling and dropout: the same data, config and seed give the same "
        "model and metrics (on CPU). Retrain attempt n uses seed + n - 1.",
    )
    sanity_check: bool = Field(
        True,
        description="Before the fit, train a fresh probe model (one layer of 32 units, whatever the configured "
        "architecture) on one batch of training rows for a few steps; unless its loss falls well below that of "
        "always predicting the batch's label shares, stop with the reason (the features cannot explain the labels: "
        "a broken transform or label encoding).",
    )
    warm_start: bool = Field(
        False,
        description="Start from the live model's weights when its architecture matches (embedding rows follow "
        "their vocabulary tokens); the train metadata says whether it was used, or why not.",
    )
    threshold: DecisionThreshold = DecisionThreshold()


class Beam(_Strict):
    """The Beam runner for the transform and its pipeline options."""

    runner: str = Field(
        "FnApiRunner",
        description="In-process by default; FlinkRunner, SparkRunner, DataflowRunner, any runner Beam knows, or "
        "the dotted path of a PipelineRunner subclass (an unknown name fails before the pipeline starts).",
    )
    options: list[str] = Field(
        default_factory=list,
        description="Beam pipeline flags, passed to Beam unchanged (e.g. [--flink_master=<host>:8081]; "
        "docs/operations.md has the flags of each runner).",
    )


class Tracking(_Strict):
    """MLflow: tracking URI, experiment and registered model name."""

    tracking_uri: str | None = Field(None, description="Defaults to SQLite under the artifact root.")
    experiment: str | None = Field(None, description="Experiment name; defaults to the config's name.")
    registered_model: str | None = Field(None, description="Model registry name; defaults to the config's name.")


class Deployment(_Strict):
    """How a promoted version goes live when model servers run, and how many past versions stay for rollback.

    With a serving stack up, the controller puts the candidate into the standby slot, waits until its server
    is ready, checks skew and latency on the run's test rows, optionally shadows and ramps a canary, then
    switches. Without one, the switch is recorded in the state and servers pick it up when they start.
    """

    keep_versions: int = Field(
        3, ge=2, description="Model versions kept for rollback (besides the two slots); older copies are deleted."
    )
    ready_timeout_seconds: float = Field(
        180.0, gt=0.0, description="How long the standby slot's server may take to load and warm up the candidate."
    )
    skew_rows: int = Field(
        100, ge=0, description="Test rows sent one by one to the standby server; 0 skips the skew check."
    )
    skew_tolerance: float = Field(
        1e-4, ge=0.0, description="Largest difference allowed between a served and the offline probability."
    )
    latency_budget_ms: float = Field(
        250.0, gt=0.0, description="p99 latency the candidate's server must stay under (skew check and canary)."
    )
    shadow_seconds: float = Field(
        0.0, ge=0.0, description="Shadow period before the switch (requests mirrored to the candidate); 0: none."
    )
    shadow_min_requests: int = Field(50, ge=1, description="Mirrored requests needed to judge the shadow period.")
    min_agreement: float = Field(
        0.95, ge=0.0, le=1.0, description="Share of mirrored requests whose class the candidate must agree on."
    )
    canary_steps: list[float] = Field(
        default_factory=list,
        description="Canary ramp: shares of traffic sent to the candidate in turn, e.g. [0.05, 0.25, 0.5]; "
        "empty: switch at once. Each step must see canary_min_requests within canary_step_seconds.",
    )
    canary_step_seconds: float = Field(60.0, gt=0.0, description="Longest wait for one canary step's requests.")
    canary_min_requests: int = Field(20, ge=1, description="Requests the candidate must answer in each canary step.")
    max_error_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Largest share of failed candidate answers in a canary step."
    )
    lease_seconds: float = Field(
        30.0,
        gt=0.0,
        description="A delivery's shadow or canary lapses this long after its controller stops renewing it.",
    )

    @field_validator("canary_steps")
    @classmethod
    def _ramp(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < w < 1.0 for w in v) or v != sorted(v):
            raise ValueError(f"canary_steps must be increasing shares between 0 and 1 (exclusive), got {v}")
        return v


class Serving(_Strict):
    """Limits of the model servers' REST API."""

    max_batch: int = Field(1024, ge=1, description="Most rows one predict request may carry.")
    max_body_bytes: int = Field(4_000_000, ge=1024, description="Largest request body accepted.")
    reload_seconds: float = Field(2.0, gt=0.0, description="How often a model server checks the state for a new model.")
    host: str = Field("127.0.0.1", description="Where `stack up` binds the router and the two slot servers.")
    router_port: int = Field(8501, ge=1, le=65535, description="The router: the one address clients use.")
    blue_port: int = Field(8511, ge=1, le=65535, description="The blue slot's model server.")
    green_port: int = Field(8512, ge=1, le=65535, description="The green slot's model server.")
    urls: dict[Literal["router", "blue", "green"], str] = Field(
        default_factory=dict,
        description="Where the servers are when something other than `stack up` runs them (compose, "
        "Kubernetes), e.g. {blue: 'http://blue:8501'}; overrides host and ports.",
    )
    admin_token_env: str = Field(
        "CT_ADMIN_TOKEN", description="Environment variable holding the bearer token of the router's admin endpoints."
    )
    log_flush_seconds: float = Field(
        1.0, gt=0.0, description="The router writes its prediction log at least this often (and every log_batch)."
    )
    log_batch: int = Field(256, ge=1, description="Records the router buffers before writing them.")


class Storage(_Strict):
    """Where a process keeps its mirror of an object-store artifact root (``artifact_root: s3://bucket/prefix``).

    The store is the system of record; stages read and write the local mirror, which is published to the store
    folder by folder (manifest last) and pulled at the start of every task (``pipelines.core.storage``).
    """

    cache: Path | None = Field(
        None,
        description="The local mirror; it must be the same path on every worker (stage outputs are passed "
        "between tasks by path). Default: /var/tmp/continuous-training/<hash of the URL>.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the fsspec filesystem, e.g. {client_kwargs: {endpoint_url: "
        "'http://minio:9000'}} for s3fs. Credentials come from the environment (AWS_ACCESS_KEY_ID, ...).",
    )
    lock_seconds: float = Field(
        600.0, gt=0.0, description="A lease on shared state (deployment, retraining ledger) older than this is stale."
    )

    @field_validator("cache")
    @classmethod
    def _resolve_cache(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve(v, info)


class Monitoring(_Strict):
    """What the hourly monitoring report measures against (``pipelines.monitoring``): each limit raises an alarm.

    Software, input and output limits are judged only on intervals with at least ``min_requests`` client requests, the
    live model's performance only once ``min_labelled_rows`` answered rows have their delayed labels. Data drift
    reuses ``thresholds.drift`` (the training pipeline's check) against the live model's training rows.
    """

    min_requests: int = Field(
        20,
        ge=1,
        description="Client requests an interval needs before its error, latency, input and output rates are judged.",
    )
    max_error_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Largest share of failed answers (status not 200) per slot and version."
    )
    max_p99_ms: float = Field(250.0, gt=0.0, description="Largest p99 latency (ms) per slot and version.")
    max_missing_rate: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Largest share of missing values per feature, on top of the feature's own max_missing.",
    )
    max_out_of_range_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Largest share of a numeric feature's values outside its schema min/max."
    )
    max_unseen_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Largest share of a categorical feature's values not among its schema values."
    )
    min_positive_rate: float | None = Field(
        None, ge=0.0, le=1.0, description="Smallest share of positive predictions (None: not checked)."
    )
    max_positive_rate_shift: float | None = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="Largest gap between the share of positive predictions and the positive label rate of the "
        "live model's training rows; for a multi-class label, between any class's share of the predictions and "
        "its share of the training labels (None: not checked).",
    )
    min_labelled_rows: int = Field(
        200, ge=1, description="Labelled answered rows needed before accuracy and AUC are judged against offline."
    )
    max_performance_drop: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="Concept drift when the whole interval of (live metric - offline metric) lies below minus this.",
    )
    histogram_bins: int = Field(10, ge=2, le=100, description="Bins of the predicted-probability histogram.")
    history_intervals: int = Field(
        48, ge=1, description="Past interval reports drawn in the report's time series (the latest ones)."
    )
    label_wait_hours: float = Field(
        24.0,
        ge=0.0,
        description="Delayed labels count for an interval until this long after its end; a re-run after that "
        "gives the same report.",
    )
    retrain_cooldown_hours: float = Field(
        6.0, ge=0.0, description="No second retraining request within this long of the last one."
    )
    max_retrains_per_day: int = Field(2, ge=0, description="Most retraining requests in any 24 hours.")
    watch_hours: float = Field(
        24.0,
        ge=0.0,
        description="After a promotion, the new live version is compared with the previous one this long "
        "(and rolled back on a breach); 0: no watch.",
    )
    watch_min_labelled_rows: int = Field(
        100, ge=1, description="Labelled rows each version needs before the watch compares their accuracy."
    )


class Tag(_Strict):
    """A named rule for error analysis (``pipelines.evaluation.tags``); every slice value is a tag as well."""

    name: str = Field(min_length=1)
    rule: str = Field(
        description="e.g. `age < 25 and hours_per_week > 60`; a column name with spaces or signs goes in backticks, "
        "as in pandas.query. The grammar is in pipelines.core.rules."
    )
    hlp_error_rate: float | None = Field(
        None, ge=0.0, le=1.0, description="Human-level or legacy error rate on the tagged rows, where one is known."
    )

    @model_validator(mode="after")
    def _parses(self) -> Tag:
        try:
            parse_rule(self.rule)
        except ValueError as exc:
            raise ValueError(f"tag {self.name!r}: rule {self.rule!r}: {exc}") from None
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """The parsed rule: a row carries the tag when it meets every condition."""
        return parse_rule(self.rule)


def _rule_problems(conditions: tuple[Condition, ...], schema: Schema) -> list[str]:
    """What in a parsed rule does not fit the schema (a typo in a value would silently tag no row)."""
    features = {f.name: f for f in schema.features}
    unknown = sorted({c.column for c in conditions if c.column not in features})
    if unknown:
        return [f"unknown columns {unknown}"]
    problems = []
    for c in conditions:
        feature, values = features[c.column], c.value if isinstance(c.value, tuple) else (c.value,)
        if feature.kind == "numeric" and not all(isinstance(v, float) for v in values):
            problems.append(f"numeric {c.column!r} is compared with a string")
        elif feature.kind == "categorical" and c.op in ("<", "<=", ">", ">="):
            problems.append(f"categorical {c.column!r} has no order for {c.op!r}")
        elif feature.kind == "categorical" and not all(isinstance(v, str) for v in values):
            problems.append(f"categorical {c.column!r} takes quoted strings")
        elif feature.kind == "categorical" and feature.values is not None:
            strangers = [v for v in values if v not in feature.values]
            if strangers:
                problems.append(f"{strangers} not among the values of {c.column!r}")
    return problems


class Baselines(_Strict):
    """What the candidate is shown beside, besides the live model and the trivial baseline."""

    hlp: dict[Metric, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict, description="Human-level or legacy figure per metric, where one is known."
    )
    simple_model: bool = Field(True, description="Train a logistic regression on the same features in the same run.")


class Config(_Strict):
    """One use case: data, schema, slices, thresholds, training, Beam, artifacts, tracking, deployment."""

    name: str
    data: DataSource
    data_schema: Schema = Field(alias="schema")
    slices: list[list[str]] = Field(default_factory=list)
    protected_attributes: list[str] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list, description="Error-analysis rules besides the slice values.")
    baselines: Baselines = Baselines()
    thresholds: Thresholds = Thresholds()
    training: Training = Training()
    beam: Beam = Beam()
    artifact_root: Path = Field(
        description="Where every artifact lives: a folder, or an object-store URL (s3://bucket/prefix, gs://, "
        "az://) mirrored into storage.cache. After loading, this is always the local folder; the URL is "
        "artifact_store."
    )
    artifact_store: str | None = Field(
        None, description="Set from a URL artifact_root: the object store the local folder mirrors (not set by hand)."
    )
    storage: Storage = Storage()
    mlflow: Tracking = Tracking()
    deployment: Deployment = Deployment()
    serving: Serving = Serving()
    monitoring: Monitoring = Monitoring()
    expectations: Path | None = Field(
        None, description="YAML file that adds, tightens or relaxes expectations (next to the config)."
    )

    @model_validator(mode="before")
    @classmethod
    def _object_store_root(cls, raw: Any) -> Any:
        """A URL artifact root becomes ``artifact_store``; the root the stages use is its local mirror."""
        if not isinstance(raw, dict) or not is_url(raw.get("artifact_root", "")):
            return raw
        if raw.get("artifact_store"):
            raise ValueError("artifact_store is set from a URL artifact_root; do not set it by hand")
        url = str(raw["artifact_root"]).rstrip("/")
        cache = (raw.get("storage") or {}).get("cache") or default_cache(url)
        return {**raw, "artifact_root": cache, "artifact_store": url}

    @field_validator("artifact_root", "expectations")
    @classmethod
    def _resolve_paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve(v, info)

    @model_validator(mode="after")
    def _known_columns(self) -> Config:
        names = {f.name for f in self.data_schema.features}
        for spec in self.slices:
            unknown = [n for n in spec if n not in names]
            if unknown or not spec:
                raise ValueError(f"slices: {spec} names no feature or unknown features {unknown}")
            for n in spec:
                f = self.data_schema.feature(n)
                if f.kind == "numeric" and not f.slice_bins:
                    raise ValueError(f"slices: numeric feature {n!r} needs slice_bins")
        unknown = [n for n in self.protected_attributes if n not in names]
        if unknown:
            raise ValueError(f"protected_attributes: unknown features {unknown}")
        for n in self.protected_attributes:
            f = self.data_schema.feature(n)
            if f.kind == "numeric" and not f.slice_bins:
                raise ValueError(f"protected_attributes: numeric feature {n!r} needs slice_bins (its groups)")
        for spec in self.thresholds.fairness.intersections:
            unknown = [n for n in spec if n not in self.protected_attributes]
            if unknown:
                raise ValueError(f"thresholds.fairness.intersections: {spec} names non-protected attributes {unknown}")
        audited = [*self.protected_attributes, *(" x ".join(s) for s in self.thresholds.fairness.intersections)]
        unknown = [n for n in self.thresholds.fairness.attributes if n not in audited]
        if unknown:
            raise ValueError(f"thresholds.fairness.attributes: {unknown} are not among the audited {audited}")
        unknown = [n for n in self.thresholds.drift.features if n not in names]
        if unknown:
            raise ValueError(f"thresholds.drift.features: unknown features {unknown}")
        return self

    @model_validator(mode="after")
    def _multiclass_fits(self) -> Config:
        """Settings that only mean something for a binary label are refused for a multi-class one."""
        if not self.data_schema.label.is_multiclass:
            return self
        fairness = self.thresholds.fairness
        binary_only = ("max_demographic_parity_difference", "min_demographic_parity_ratio")
        keys = [f"thresholds.fairness.{f}" for f in binary_only if getattr(fairness, f) is not None]
        for attribute, limits in fairness.attributes.items():
            keys += [f"thresholds.fairness.attributes.{attribute}.{f}" for f in binary_only if getattr(limits, f)]
        if keys:
            raise ValueError(
                f"{', '.join(keys)}: demographic parity compares the share of positive predictions, which a "
                f"multi-class label ({self.data_schema.label.name!r}) does not have; limit "
                "max_equalized_odds_difference (the largest per-class recall gap between groups) instead"
            )
        if self.monitoring.min_positive_rate is not None:
            raise ValueError(
                "monitoring.min_positive_rate: a multi-class label has no positive predictions; leave it out"
            )
        return self

    @model_validator(mode="after")
    def _tags_fit_the_schema(self) -> Config:
        names = [t.name for t in self.tags]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tags: duplicate names {dupes}")
        for tag in self.tags:
            problems = _rule_problems(tag.conditions, self.data_schema)
            if problems:
                raise ValueError(f"tags: tag {tag.name!r}, rule {tag.rule!r}: {'; '.join(problems)}")
        return self

    @computed_field
    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: the configured one, or SQLite under the artifact root."""
        return self.mlflow.tracking_uri or f"sqlite:///{self.artifact_root / 'mlflow.db'}"

    @property
    def fingerprint(self) -> str:
        """A hash of the validated config, recorded in every artifact's metadata."""
        return hashlib.sha256(self.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


def _message(error: Any) -> str:
    """Pydantic's message, with the keys the config knows at that place for a key it does not."""
    if error["type"] != "extra_forbidden":
        return error["msg"]
    known = _keys_at(error["loc"][:-1])
    close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (known here: {', '.join(known)})" if known else "unknown key"


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the config accepts in the mapping at ``loc`` (empty where that cannot be told)."""
    kind: Any = Config
    keys = list(loc)
    while True:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if not keys:
                return [f.alias or n for n, f in kind.model_fields.items()]
            key = keys.pop(0)
            field = next((f for n, f in kind.model_fields.items() if key in (n, f.alias)), None)
            if field is None:
                return []
            kind = field.annotation
            continue
        models = [a for a in get_args(kind) if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) != 1:
            return []
        if get_origin(kind) in (list, dict):  # a list or dict of models: the next key is an index or a dict key
            if not keys:
                return []
            keys.pop(0)
        kind = models[0]  # ... or an optional model


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a YAML config (``DEFAULT_CONFIG`` when ``path`` is None or empty).

    With an object-store ``artifact_root`` the local mirror is attached and brought up to date here, so every
    task starts from what the other workers have published.

    Raises:
        ConfigError: naming the file and each offending key (e.g. ``thresholds.gate.floors``).
        StorageError: the artifact store cannot be reached.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = Config.model_validate(raw, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {_message(e)}" for e in exc.errors()]
        raise ConfigError(f"{path}: invalid config\n  " + "\n  ".join(lines)) from None
    if config.artifact_store:
        attach(config.artifact_store, config.artifact_root, config.storage.options, config.storage.lock_seconds)
        if not config.mlflow.tracking_uri:
            log.warning(
                "%s: artifact_root is the object store %s, but MLflow runs go to %s on this machine only; set "
                "mlflow.tracking_uri to a shared tracking server",
                path,
                config.artifact_store,
                config.tracking_uri,
            )
    return config
