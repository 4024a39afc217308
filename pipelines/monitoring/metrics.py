"""One interval of live traffic, measured from the router's logs: software, input, output and performance metrics.

``monitor(config, start, end, now)`` reads the prediction records with ``start <= time < end`` and the
feedback (delayed labels) that arrived before ``now``, and returns a JSON-ready report:

- **software**, per slot, version and role (``live``, ``canary``, ``shadow``) and for what clients got
  (``live`` and ``canary`` together): requests, rate, failed answers (status not 200; 0 is an unreachable
  server), latency p50 and p99;
- **inputs**, over the rows clients sent (shadow copies are the same requests, so they are left out): the
  missing share of each feature, the share of a numeric feature's values outside its schema range (or not
  numbers at all), the share of a categorical feature's values outside its schema values, and per-feature
  drift against the training rows of the interval's model, judged by the training pipeline's own check
  (``pipelines.data.drift_compare.compare`` with ``thresholds.drift``; "insufficient_data" below its
  ``min_rows``);
- **outputs**, for clients and per version (shadow answers apart): a histogram of the predicted
  probability, the positive share (a multi-class label: each class's share), failed and empty answers (status
  200 without a usable prediction), beside the positive label rate (each class's share) of the model's training rows;
- **performance** once labels have arrived, per version (shadow answers count for their version: each
  is that version's prediction on a real request): accuracy and ROC AUC with bootstrap intervals, and
  concept drift judged as the training pipeline judges it (``pipelines.evaluation.concept.judge``: the
  MOVER interval of the difference from the version's offline figures, against
  ``monitoring.max_performance_drop``); for the interval's model also per configured slice and per
  protected attribute.

The interval's model is the version that last answered clients as ``live`` in the interval (failing
that, the one the deployment history made live before ``end``), found in a slot or among the kept
versions. A re-run of the same interval with the same ``now`` gives the same report: nothing here
reads the clock, and every bootstrap has a fixed seed.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Config, Feature, GatePolicy, Schema
from pipelines.core.contracts import ConceptVerdict, DriftVerdict, PipelineError
from pipelines.core.deployment_state import DeploymentState, EventKind, SlotRecord, read_state
from pipelines.core.prediction_log import FEEDBACK, PREDICTIONS, prediction_rows, read_records
from pipelines.data.drift_compare import compare
from pipelines.deployment.models import installed_record
from pipelines.evaluation.concept import OfflinePerformance, judge, offline_performance
from pipelines.evaluation.metrics import assess_groups, slice_codes
from pipelines.model.signature import read_threshold

log = logging.getLogger(__name__)

LIVE, CANARY, SHADOW = "live", "canary", "shadow"
CLIENT_ROLES = (LIVE, CANARY)  # the answers clients got; shadow answers were recorded, never returned
JUDGED_METRICS = ("accuracy", "roc_auc")
_TOP_VALUES = 5
_UNJUDGED = (DriftVerdict.INSUFFICIENT_DATA, DriftVerdict.NO_REFERENCE)


def monitor(config: Config, start: datetime, end: datetime, now: datetime | None = None) -> dict[str, Any]:
    """Measure the interval ``[start, end)`` of live traffic.

    Args:
        config: the use case (schema, slices, protected attributes, ``thresholds.drift``, ``monitoring``).
        start: the interval's first instant (timezone-aware).
        end: the instant after its last.
        now: labels that arrived before it are joined to the interval's predictions (labels come after the
            answers, often after the interval); the report records it. None: the current time, which
            makes the report depend on when it ran.

    Returns:
        The JSON-ready report (see the module docstring); ``headline`` holds the figures drawn over time.

    Raises:
        PipelineError: the interval is empty or its bounds carry no timezone.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise PipelineError(f"monitoring interval {start} .. {end}: give timezone-aware times (e.g. UTC)")
    if end <= start:
        raise PipelineError(f"monitoring interval {start.isoformat()} .. {end.isoformat()} is empty: end must be later")
    now = now or datetime.now(UTC)
    records, torn = read_records(config, PREDICTIONS, start, end)
    feedback, torn_feedback = read_records(config, FEEDBACK, start, now) if now > start else ([], 0)
    rows = prediction_rows(records)
    model, model_source = interval_model(config, read_state(config), records, end)
    reference = _reference(model)
    client_records = [r for r in records if r.get("role") in CLIENT_ROLES]
    client_rows = [r for r in rows if r.get("role") in CLIENT_ROLES and r["row"] is not None]
    seconds = (end - start).total_seconds()
    report: dict[str, Any] = {
        "interval": {
            "start": start.astimezone(UTC).isoformat(),
            "end": end.astimezone(UTC).isoformat(),
            "seconds": seconds,
            "label_cutoff": now.astimezone(UTC).isoformat(),
        },
        "model": _model_entry(model, model_source, reference),
        "logs": {
            "prediction_records": len(records),
            "feedback_records": len(feedback),
            "unreadable_lines": {PREDICTIONS: torn, FEEDBACK: torn_feedback},
        },
        "software": software_metrics(records, seconds),
        "inputs": input_metrics(config, client_rows, reference, model),
        "outputs": output_metrics(records, rows, config.monitoring.histogram_bins, _classes(config)),
        "performance": performance(config, rows, _labels(feedback), model),
        "settings": {"monitoring": config.monitoring.model_dump(), "drift": config.thresholds.drift.model_dump()},
    }
    report["outputs"]["reference_positive_rate"] = _positive_rate(config, reference)
    report["outputs"]["reference_class_shares"] = _class_shares(config, reference)
    report["headline"] = headline(report)
    log.info(
        "monitoring %s .. %s: %d client requests, %d labelled rows, drift %s",
        report["interval"]["start"],
        report["interval"]["end"],
        len(client_records),
        report["performance"]["labelled_rows"],
        report["inputs"]["drift"]["verdict"],
    )
    return report


def interval_model(
    config: Config, state: DeploymentState, records: list[dict[str, Any]], end: datetime
) -> tuple[SlotRecord | str | None, str]:
    """The model the interval is judged against, and how it was found.

    The version that last answered clients as ``live`` in the interval; without live answers, the version the
    deployment history made live last before ``end``. Its record comes from a slot or the kept version
    folders; when neither has it any more, only its name is returned.
    """
    served = [r["version"] for r in records if r.get("role") == LIVE and r.get("version")]
    if served:
        version, source = served[-1], "the version that last answered clients as live in the interval"
    else:
        switches = [
            e
            for e in state.history
            if e.action in (EventKind.PROMOTE, EventKind.ROLLBACK) and datetime.fromisoformat(e.at) < end
        ]
        if not switches:
            return None, "no live answer in the interval and no switch before its end in the deployment history"
        version, source = switches[-1].version, f"live since {switches[-1].at} (deployment history); no live answer"
    record = next((r for r in state.slots.values() if r and r.version == version), None)
    record = record or installed_record(config, version)
    return (record, source) if record else (version, source + "; its version folder is gone")


def _reference(model: SlotRecord | str | None) -> pd.DataFrame | None:
    if not isinstance(model, SlotRecord) or not Path(model.reference_uri).exists():
        return None
    return pd.read_parquet(model.reference_uri)


def _model_entry(model: SlotRecord | str | None, source: str, reference: pd.DataFrame | None) -> dict[str, Any] | None:
    if model is None:
        return None
    if isinstance(model, str):
        return {"version": model, "source": source, "model_uri": None, "reference_uri": None, "reference_rows": None}
    return {
        "version": model.version,
        "source": source,
        "ds": model.ds,
        "model_uri": model.model_uri,
        "reference_uri": model.reference_uri,
        "mlflow_run_id": model.mlflow_run_id,
        "reference_rows": None if reference is None else len(reference),
    }


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _share(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def _percentile(values: list[float], q: float) -> float | None:
    return _round(float(np.percentile(values, q)), 6) if values else None


def _software(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    latencies = [float(r["latency_ms"]) for r in records if isinstance(r.get("latency_ms"), int | float)]
    errors = sum(r.get("status") != 200 for r in records)
    return {
        "requests": len(records),
        "rate_per_s": _round(len(records) / seconds),
        "errors": errors,
        "error_rate": _share(errors, len(records)),
        "unreachable": sum(r.get("status") == 0 for r in records),
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
    }


def software_metrics(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Requests, rate, failed answers and latency per (slot, version, role), and over what clients got."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        key = (str(record.get("slot") or ""), str(record.get("version") or ""), str(record.get("role") or ""))
        groups.setdefault(key, []).append(record)
    return {
        "clients": _software([r for r in records if r.get("role") in CLIENT_ROLES], seconds),
        "groups": [
            {"slot": slot, "version": version, "role": role, **_software(members, seconds)}
            for (slot, version, role), members in sorted(groups.items())
        ],
    }


def _is_missing(value: Any, schema: Schema) -> bool:
    """None, NaN, or a string that is empty or spells a missing value once read as ingest reads it (``Schema.cell``)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not schema.cell(value)


def _number(value: Any) -> float | None:
    """The value as a number, or None if it is not one (a bool is not a number here)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _feature_quality(feature: Feature, values: list[Any], schema: Schema) -> dict[str, Any]:
    """Missing share over the rows; out-of-range or unseen share over the present values, with examples."""
    present = [v for v in values if not _is_missing(v, schema)]
    entry: dict[str, Any] = {
        "kind": feature.kind,
        "rows": len(values),
        "missing": len(values) - len(present),
        "missing_rate": _share(len(values) - len(present), len(values)),
        "max_missing": feature.max_missing,
        "sent": any(v is not None for v in values),
    }
    if feature.kind == "numeric":
        numbers = [_number(v) for v in present]
        low = -math.inf if feature.min is None else feature.min
        high = math.inf if feature.max is None else feature.max
        outside = [v for v, n in zip(present, numbers, strict=True) if n is None or not low <= n <= high]
        entry.update(
            out_of_range=len(outside),
            out_of_range_rate=_share(len(outside), len(present)),
            not_numbers=sum(n is None for n in numbers),
            range=[feature.min, feature.max],
            examples=[str(v) for v, _ in Counter(map(str, outside)).most_common(_TOP_VALUES)],
        )
    else:
        known = set(feature.values or [])
        tokens = [schema.cell(str(v)) for v in present]  # as ingest and the model server read them
        unseen = Counter(t for t in tokens if known and t not in known)
        entry.update(
            unseen=sum(unseen.values()),
            unseen_rate=_share(sum(unseen.values()), len(present)) if known else None,
            examples=[value for value, _ in unseen.most_common(_TOP_VALUES)],
        )
    return entry


def feature_frame(rows: list[dict[str, Any]], schema: Schema) -> pd.DataFrame:
    """The rows' raw features as the training data holds them: numbers as floats (NaN if missing or not a
    number), categories as strings (None if missing)."""
    columns: dict[str, list[Any]] = {}
    for feature in schema.features:
        values = [(row.get("features") or {}).get(feature.name) for row in rows]
        if feature.kind == "numeric":
            numbers = [None if _is_missing(v, schema) else _number(v) for v in values]
            columns[feature.name] = [np.nan if n is None else n for n in numbers]
        else:
            columns[feature.name] = [None if _is_missing(v, schema) else schema.cell(str(v)) for v in values]
    frame = pd.DataFrame(columns, index=range(len(rows)))
    for name in schema.numeric:
        frame[name] = frame[name].astype(float)
    return frame


def input_metrics(
    config: Config, client_rows: list[dict[str, Any]], reference: pd.DataFrame | None, model: SlotRecord | str | None
) -> dict[str, Any]:
    """Data quality per feature and drift against the model's training rows, over the rows clients sent.

    An audit-only feature that no request carries is not judged: clients need not send what the model does
    not read.
    """
    schema = config.data_schema
    features = {
        f.name: _feature_quality(f, [(row.get("features") or {}).get(f.name) for row in client_rows], schema)
        for f in schema.features
    }
    judged = [f for f in schema.features if not (f.audit_only and not features[f.name]["sent"])]
    for f in schema.features:
        features[f.name]["judged"] = f in judged
    return {
        "rows": len(client_rows),
        "features": features,
        "drift": _drift(config, client_rows, judged, reference, model),
    }


def _drift(
    config: Config,
    client_rows: list[dict[str, Any]],
    judged: list[Feature],
    reference: pd.DataFrame | None,
    model: SlotRecord | str | None,
) -> dict[str, Any]:
    if reference is None:
        why = (
            "no live model in the interval"
            if model is None
            else f"the training rows of model {model if isinstance(model, str) else model.version} are not on disk"
        )
        return {
            "verdict": DriftVerdict.NO_REFERENCE,
            "reason": why,
            "drifted_features": [],
            "features": {},
            "summary": f"{DriftVerdict.NO_REFERENCE}: {why}",
        }
    schema = config.data_schema.model_copy(update={"features": judged})
    report = compare(reference, feature_frame(client_rows, schema), schema, config.thresholds.drift)
    report["reference"] = {"version": model.version, "uri": model.reference_uri}  # type: ignore[union-attr]
    return report


def _histogram(probabilities: list[float], bins: int) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.histogram(np.clip(probabilities, 0.0, 1.0), edges)[0] if probabilities else np.zeros(bins, int)
    return {"edges": [_round(e) for e in edges], "counts": [int(c) for c in counts]}


def _outputs(
    records: list[dict[str, Any]], rows: list[dict[str, Any]], bins: int, classes: list[str] | None
) -> dict[str, Any]:
    answered = [r for r in rows if r["row"] is not None]
    probabilities = [float(r["probability"]) for r in answered if _number(r.get("probability")) is not None]
    failed = sum(r.get("status") != 200 for r in records)
    empty = sum(1 for r in rows if r["row"] is None and r.get("status") == 200)
    if classes is None:
        positives: int | None = sum(r.get("class") == 1 for r in answered)
        class_shares = None
    else:  # ``class`` is a class id: each class's share of the predictions, and no positive class
        positives, counts = None, Counter(r.get("class") for r in answered)
        class_shares = {name: _share(counts[i], len(answered)) for i, name in enumerate(classes)}
    return {
        "requests": len(records),
        "rows": len(answered),
        "failed": failed,
        "failed_share": _share(failed, len(records)),
        "empty": empty,
        "empty_share": _share(empty, len(records)),
        "positives": positives,
        "positive_rate": None if positives is None else _share(positives, len(answered)),
        "class_shares": class_shares,
        "mean_probability": _round(float(np.mean(probabilities))) if probabilities else None,
        "histogram": _histogram(probabilities, bins),
    }


def output_metrics(
    records: list[dict[str, Any]], rows: list[dict[str, Any]], bins: int, classes: list[str] | None = None
) -> dict[str, Any]:
    """Prediction distribution, positive share (or, for a multi-class label, each of ``classes``' share), failed and
    empty answers: for clients, and per version and audience (``clients`` or ``shadow``)."""

    def audience(item: dict[str, Any]) -> str:
        return "shadow" if item.get("role") == SHADOW else "clients"

    by_version: dict[str, dict[str, Any]] = {}
    keys = sorted({(str(r.get("version") or ""), audience(r)) for r in records})
    for version, who in keys:
        mine = [r for r in records if str(r.get("version") or "") == version and audience(r) == who]
        my_rows = [r for r in rows if str(r.get("version") or "") == version and audience(r) == who]
        by_version.setdefault(version, {})[who] = _outputs(mine, my_rows, bins, classes)
    return {
        "clients": _outputs(
            [r for r in records if r.get("role") in CLIENT_ROLES],
            [r for r in rows if r.get("role") in CLIENT_ROLES],
            bins,
            classes,
        ),
        "by_version": by_version,
    }


def _positive_rate(config: Config, reference: pd.DataFrame | None) -> float | None:
    label = config.data_schema.label
    if reference is None or label.name not in reference or not len(reference) or label.is_multiclass:
        return None  # a multi-class label has no positive class to compare a positive prediction rate with
    return _round(float((reference[label.name].astype(object) == label.positive).mean()))


def _classes(config: Config) -> list[str] | None:
    """A multi-class label's class values in class-id order (what ``class`` in an answer indexes); None if binary."""
    label = config.data_schema.label
    return list(label.classes) if label.is_multiclass else None


def _class_shares(config: Config, reference: pd.DataFrame | None) -> dict[str, float | None] | None:
    """Each class's share of a multi-class label in the live model's training rows; None for a binary label."""
    classes, label = _classes(config), config.data_schema.label.name
    if classes is None or reference is None or label not in reference or not len(reference):
        return None
    values = reference[label].astype(object)
    return {name: _round(float((values == name).mean())) for name in classes}


def _class_share_gap(
    shares: dict[str, float | None] | None, reference: dict[str, float] | None
) -> tuple[float, str] | None:
    """The largest gap between a class's share of the predictions and of the training labels, and its class."""
    if not shares or not reference or any(v is None for v in shares.values()):
        return None
    return max((round(abs(shares[c] - reference[c]), 6), c) for c in shares if c in reference)


def _labels(feedback: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """(request id, row) -> label; a later label for the same row replaces an earlier one (a correction)."""
    labels = {}
    for record in feedback:  # oldest first
        row = record.get("row", 0)
        if isinstance(record.get("request_id"), str) and isinstance(row, int) and record.get("label") is not None:
            labels[(record["request_id"], row)] = str(record["label"])
    return labels


def _record_of(config: Config, version: str, model: SlotRecord | str | None) -> SlotRecord | None:
    if isinstance(model, SlotRecord) and model.version == version:
        return model
    state = read_state(config)
    return next((r for r in state.slots.values() if r and r.version == version), None) or installed_record(
        config, version
    )


def performance(
    config: Config, rows: list[dict[str, Any]], labels: dict[tuple[str, int], str], model: SlotRecord | str | None
) -> dict[str, Any]:
    """Accuracy and ROC AUC with intervals per version on the rows whose labels have arrived, each against its
    version's offline figures; the interval's model also per slice and per protected attribute."""
    labelled = [
        {**r, "label": labels[(r["request_id"], r["row"])]}
        for r in rows
        if r["row"] is not None and (r["request_id"], r["row"]) in labels and _number(r.get("probability")) is not None
    ]
    model_version = model if isinstance(model, str) else model.version if model else None
    by_version = {}
    offline_cache: dict[str | None, OfflinePerformance | None] = {}
    for version in sorted({str(r.get("version") or "") for r in labelled}):
        mine = [r for r in labelled if str(r.get("version") or "") == version]
        record = _record_of(config, version, model)
        run_id = record.mlflow_run_id if record else None
        if run_id not in offline_cache:
            offline_cache[run_id] = offline_performance(config, run_id)
        by_version[version] = version_performance(
            config, mine, record, offline_cache[run_id], with_groups=version == model_version
        )
    return {
        "labelled_rows": len(labelled),
        "labelled_client_rows": sum(r.get("role") in CLIENT_ROLES for r in labelled),
        "model": model_version,
        "by_version": by_version,
    }


def _policy(config: Config, metric: str) -> GatePolicy:
    """The gate's bootstrap settings, judging ``metric`` with monitoring's tolerated drop."""
    return config.thresholds.gate.model_copy(
        update={"primary_metric": metric, "max_regression": config.monitoring.max_performance_drop}
    )


def version_performance(
    config: Config,
    rows: list[dict[str, Any]],
    record: SlotRecord | None,
    offline: OfflinePerformance | None,
    with_groups: bool = False,
) -> dict[str, Any]:
    """One version on its labelled rows: metrics with intervals, the concept verdict per judged metric, and
    (``with_groups``) the same per slice and protected attribute."""
    label = config.data_schema.label
    if label.is_multiclass:
        return _multiclass_performance(config, rows, record, offline)
    y = np.array([r["label"] == label.positive for r in rows], dtype=int)
    p = np.array([float(r["probability"]) for r in rows])
    threshold = read_threshold(record.model_uri) if record else 0.5
    entry: dict[str, Any] = {
        "rows": len(rows),
        "positives": int(y.sum()),
        "roles": sorted({str(r.get("role")) for r in rows}),
        "decision_threshold": threshold,
        "offline": asdict(offline) if offline else None,
    }
    need = config.monitoring.min_labelled_rows
    if len(rows) < need or int(y.sum()) in (0, len(rows)):
        why = (
            f"{len(rows):,} labelled rows, need {need:,} (monitoring.min_labelled_rows)"
            if len(rows) < need
            else f"the {len(rows):,} labelled rows hold one class only ({int(y.sum())} positive)"
        )
        return {**entry, "verdict": ConceptVerdict.INSUFFICIENT_DATA, "reason": why}
    judged = {m: judge(y, p, offline, _policy(config, m), threshold) for m in JUDGED_METRICS}
    current = judged[JUDGED_METRICS[0]]["current"]
    verdicts = [j["verdict"] for j in judged.values()]
    verdict = (
        ConceptVerdict.DRIFT
        if ConceptVerdict.DRIFT in verdicts
        else ConceptVerdict.UNKNOWN
        if ConceptVerdict.UNKNOWN in verdicts
        else ConceptVerdict.STABLE
    )
    entry.update(
        verdict=verdict,
        metrics={m: current[m] for m in JUDGED_METRICS},
        ci={m: current["ci"][m] for m in JUDGED_METRICS},
        confusion_matrix=current["confusion_matrix"],
        concept={
            m: {k: j.get(k) for k in ("verdict", "value", "interval", "offline_interval", "difference")}
            | {"offline": offline.metrics.get(m) if offline else None}
            for m, j in judged.items()
        },
    )
    if with_groups:
        frame = feature_frame(rows, config.data_schema)
        groups = {" x ".join(spec): _groups(config, frame, spec, y, p, threshold) for spec in config.slices}
        entry["slices"] = groups
        entry["protected"] = {
            name: groups.get(name) or _groups(config, frame, [name], y, p, threshold)
            for name in config.protected_attributes
        }
    return entry


def _multiclass_performance(
    config: Config, rows: list[dict[str, Any]], record: SlotRecord | None, offline: OfflinePerformance | None
) -> dict[str, Any]:
    """A multi-class version on its labelled rows: the log holds each row's predicted class and its probability,
    not every class's, so its accuracy is measured but the concept verdict (macro metrics) is not judged."""
    classes = config.data_schema.label.classes
    hits = [r.get("class") == classes.index(r["label"]) if r["label"] in classes else False for r in rows]
    accuracy = _round(sum(hits) / len(hits)) if hits else None
    return {
        "rows": len(rows),
        "positives": None,
        "roles": sorted({str(r.get("role")) for r in rows}),
        "decision_threshold": None,
        "offline": asdict(offline) if offline else None,
        "metrics": {"accuracy": accuracy},
        "verdict": ConceptVerdict.INSUFFICIENT_DATA,
        "reason": f"multi-class label: accuracy {accuracy} on {len(rows):,} labelled rows; the prediction log holds "
        "each row's predicted class and its probability, not every class's, so the macro metrics are not judged",
    }


def _groups(
    config: Config, frame: pd.DataFrame, features: list[str], y: np.ndarray, p: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Accuracy and ROC AUC per group of one slice; groups below the gate's ``min_slice_size`` get points only."""
    policy = config.thresholds.gate
    codes, names = slice_codes(frame, features, config.data_schema)
    results = assess_groups(
        y,
        p,
        None,
        codes,
        len(names),
        policy,
        range(1, len(names) + 1),
        policy.min_slice_size,
        thresholds=(threshold, threshold),
    )
    out = {}
    for name, result in zip(names, results, strict=True):
        metrics = result["candidate"]
        out[name] = {
            "rows": metrics["n"],
            "positives": metrics["positives"],
            "sufficient": result["sufficient"],
            **{m: metrics[m] for m in JUDGED_METRICS},
            "ci": {m: (metrics.get("ci") or {}).get(m) for m in JUDGED_METRICS},
        }
    return out


def _max_feature(features: dict[str, Any], key: str) -> tuple[float | None, str | None]:
    judged = [(e[key], name) for name, e in features.items() if e.get("judged") and e.get(key) is not None]
    return max(judged) if judged else (None, None)


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the report draws over time, one value each (None when not measured)."""
    clients = report["software"]["clients"]
    features = report["inputs"]["features"]
    drift = report["inputs"]["drift"]
    outputs = report["outputs"]["clients"]
    model = report["performance"]["model"]
    judged = report["performance"]["by_version"].get(model) or {}
    line: dict[str, Any] = {
        "requests": clients["requests"],
        "error_rate": clients["error_rate"],
        "p99_ms": clients["p99_ms"],
        "drift_share": drift.get("share") if drift["verdict"] not in _UNJUDGED else None,
        "drift_verdict": drift["verdict"],
        "positive_rate": outputs["positive_rate"],
        "reference_positive_rate": report["outputs"].get("reference_positive_rate"),
        "class_share_gap": None,
        "class_share_gap_class": None,
        "labelled_rows": judged.get("rows", 0),
        "model": model,
    }
    gap = _class_share_gap(outputs.get("class_shares"), report["outputs"].get("reference_class_shares"))
    if gap is not None:
        line["class_share_gap"], line["class_share_gap_class"] = gap
    for key in ("missing_rate", "out_of_range_rate", "unseen_rate"):
        line[key], line[f"{key}_feature"] = _max_feature(features, key)
    for metric in JUDGED_METRICS:
        line[metric] = (judged.get("metrics") or {}).get(metric)
        line[f"{metric}_ci"] = (judged.get("ci") or {}).get(metric)
        line[f"{metric}_offline"] = ((judged.get("offline") or {}).get("metrics") or {}).get(metric)
    return line
