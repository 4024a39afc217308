"""Alarms: an interval's monitoring report judged against ``config.monitoring`` (pure: no I/O).

Each alarm says what was measured, where (feature, slot and version), against which limit, in one sentence
an operator can act on, with a severity:

- ``critical``: clients are getting failed answers, or the model should be retrained: data drift (the
  drift check's verdict "drift") or a performance drop (concept drift of the interval's model against its
  offline figures). These two carry ``retrain``: the monitoring DAG turns them into a training trigger;
- ``warn``: worth a look, no action by itself: slow answers, missing, out-of-range or unseen input values,
  a drift "warn" verdict, a shifted positive rate, a canary or shadow version doing worse than offline;
- ``info``: what could not be judged (no traffic, too few rows or labels, unreadable log lines).

Rates are judged only on intervals with ``monitoring.min_requests`` client requests (a slot and version
with fewer is not judged either), so that one failed answer out of three does not page anyone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pipelines.core.config import Config, Monitoring
from pipelines.core.contracts import ConceptVerdict, DriftVerdict
from pipelines.core.prediction_log import PREDICTIONS


class Severity(StrEnum):
    """How urgent an alarm is (ordered: critical first when sorted by ``rank``)."""

    CRITICAL = "critical"
    WARN = "warn"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for critical, 1 for warn, 2 for info."""
        return list(Severity).index(self)


class AlarmName(StrEnum):
    """What an alarm is about; the report's charts mark the intervals where each was raised."""

    NO_TRAFFIC = "no_traffic"
    UNREADABLE_LOG = "unreadable_log"
    ERROR_RATE = "error_rate"
    LATENCY = "latency_p99"
    EMPTY_ANSWERS = "empty_answers"
    MISSING_VALUES = "missing_rate"
    OUT_OF_RANGE = "out_of_range_rate"
    UNSEEN_CATEGORIES = "unseen_rate"
    DATA_DRIFT = "data_drift"
    POSITIVE_RATE = "positive_rate"
    CLASS_SHARE = "class_share"
    PERFORMANCE = "performance"


@dataclass(frozen=True)
class Alarm:
    """One breached limit (or one thing that could not be judged): what, how much, against what, and whether
    it should start a retraining."""

    name: AlarmName
    severity: Severity
    metric: str
    value: float | str | None
    threshold: float | str | None
    message: str
    retrain: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alarm:
        """Read back what ``to_dict`` wrote."""
        return cls(**{**data, "name": AlarmName(data["name"]), "severity": Severity(data["severity"])})


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def alarms(config: Config, report: dict[str, Any]) -> list[Alarm]:
    """Every alarm the report raises under ``config.monitoring``, critical first.

    Args:
        config: the limits (``monitoring``) and the schema.
        report: what ``pipelines.monitoring.metrics.monitor`` returned for the interval.
    """
    found = [
        *_log_alarms(report),
        *_software_alarms(config, report),
        *_input_alarms(config, report),
        *_output_alarms(config, report),
        *_performance_alarms(config, report),
    ]
    return sorted(found, key=lambda a: (a.severity.rank, a.name, a.metric))


def _log_alarms(report: dict[str, Any]) -> list[Alarm]:
    found = []
    for kind, count in report["logs"]["unreadable_lines"].items():
        if count:
            found.append(
                Alarm(
                    AlarmName.UNREADABLE_LOG,
                    Severity.INFO,
                    f"unreadable_lines.{kind}",
                    count,
                    0,
                    f"{count} line(s) of the {kind} log could not be read and were skipped (a write torn by a crash?); "
                    f"the figures leave them out",
                )
            )
    if report["software"]["clients"]["requests"] == 0:
        found.append(
            Alarm(
                AlarmName.NO_TRAFFIC,
                Severity.INFO,
                "requests",
                0,
                None,
                f"no client request was logged from {report['interval']['start']} to {report['interval']['end']}: "
                f"nothing to judge (is the router running and logging to {PREDICTIONS}/?)",
            )
        )
    return found


def _software_alarms(config: Config, report: dict[str, Any]) -> list[Alarm]:
    limits, found = config.monitoring, []
    for group in report["software"]["groups"]:
        if group["requests"] < limits.min_requests:
            continue
        where = f"slot {group['slot'] or '?'}, version {group['version'] or '?'} ({group['role']})"
        metric = f"{group['slot']}/{group['version']}/{group['role']}"
        if group["error_rate"] is not None and group["error_rate"] > limits.max_error_rate:
            # Failed shadow answers reach no client: worth a look before that version goes live, not a page.
            severity = Severity.WARN if group["role"] == "shadow" else Severity.CRITICAL
            unreachable = f", {group['unreachable']} of them unreachable" if group["unreachable"] else ""
            found.append(
                Alarm(
                    AlarmName.ERROR_RATE,
                    severity,
                    f"error_rate[{metric}]",
                    group["error_rate"],
                    limits.max_error_rate,
                    f"{where}: {group['errors']} of {group['requests']} answers failed (status not 200{unreachable}), "
                    f"{_pct(group['error_rate'])} against the limit {_pct(limits.max_error_rate)} "
                    f"(monitoring.max_error_rate)",
                )
            )
        if group["p99_ms"] is not None and group["p99_ms"] > limits.max_p99_ms:
            found.append(
                Alarm(
                    AlarmName.LATENCY,
                    Severity.WARN,
                    f"p99_ms[{metric}]",
                    group["p99_ms"],
                    limits.max_p99_ms,
                    f"{where}: p99 latency {group['p99_ms']:.0f} ms over {group['requests']} requests, above the "
                    f"limit {limits.max_p99_ms:g} ms (monitoring.max_p99_ms); p50 is {group['p50_ms']:.0f} ms",
                )
            )
    return found


def _input_alarms(config: Config, report: dict[str, Any]) -> list[Alarm]:
    limits, inputs, found = config.monitoring, report["inputs"], []
    if inputs["rows"] >= limits.min_requests:
        for name, entry in inputs["features"].items():
            if not entry["judged"]:
                continue
            found.extend(_feature_alarms(config, name, entry))
    found.extend(_drift_alarms(report))
    return found


def _feature_alarms(config: Config, name: str, entry: dict[str, Any]) -> list[Alarm]:
    limits, found = config.monitoring, []
    allowed = max(entry["max_missing"], limits.max_missing_rate)
    if entry["missing_rate"] is not None and entry["missing_rate"] > allowed:
        source = (
            f"the feature's max_missing {entry['max_missing']:g}"
            if entry["max_missing"] > limits.max_missing_rate
            else "monitoring.max_missing_rate"
        )
        found.append(
            Alarm(
                AlarmName.MISSING_VALUES,
                Severity.WARN,
                f"missing_rate.{name}",
                entry["missing_rate"],
                allowed,
                f"feature {name}: {entry['missing']} of {entry['rows']} rows sent no value "
                f"({_pct(entry['missing_rate'])}), above the limit {_pct(allowed)} ({source})",
            )
        )
    rate = entry.get("out_of_range_rate")
    if rate is not None and rate > limits.max_out_of_range_rate:
        low, high = entry["range"]
        bounds = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        not_numbers = f", {entry['not_numbers']} not numbers" if entry["not_numbers"] else ""
        found.append(
            Alarm(
                AlarmName.OUT_OF_RANGE,
                Severity.WARN,
                f"out_of_range_rate.{name}",
                rate,
                limits.max_out_of_range_rate,
                f"feature {name}: {entry['out_of_range']} values outside the schema range {bounds}{not_numbers} "
                f"({_pct(rate)} of those sent), above the limit {_pct(limits.max_out_of_range_rate)} "
                f"(monitoring.max_out_of_range_rate); e.g. {', '.join(entry['examples'])}",
            )
        )
    rate = entry.get("unseen_rate")
    if rate is not None and rate > limits.max_unseen_rate:
        found.append(
            Alarm(
                AlarmName.UNSEEN_CATEGORIES,
                Severity.WARN,
                f"unseen_rate.{name}",
                rate,
                limits.max_unseen_rate,
                f"feature {name}: {entry['unseen']} values not among the schema's values ({_pct(rate)} of those "
                f"sent), above the limit {_pct(limits.max_unseen_rate)} (monitoring.max_unseen_rate); "
                f"most frequent: {', '.join(entry['examples'])}",
            )
        )
    return found


def _drift_alarms(report: dict[str, Any]) -> list[Alarm]:
    drift = report["inputs"]["drift"]
    verdict = drift["verdict"]
    if verdict in (DriftVerdict.INSUFFICIENT_DATA, DriftVerdict.NO_REFERENCE):
        return [
            Alarm(
                AlarmName.DATA_DRIFT,
                Severity.INFO,
                "drift",
                verdict,
                None,
                f"data drift not judged: {drift.get('reason', '')}",
            )
        ]
    if verdict not in (DriftVerdict.WARN, DriftVerdict.DRIFT):
        return []
    settings = drift["settings"]
    drifting = verdict == DriftVerdict.DRIFT
    version = drift.get("reference", {}).get("version", "?")
    return [
        Alarm(
            AlarmName.DATA_DRIFT,
            Severity.CRITICAL if drifting else Severity.WARN,
            "drift.share",
            drift["share"],
            settings["drift_share"] if drifting else settings["warn_share"],
            f"the clients' inputs drifted from the training rows of live model {version}: {drift['summary']}"
            + ("; retrain on recent data" if drifting else ""),
            retrain=drifting,
        )
    ]


def _output_alarms(config: Config, report: dict[str, Any]) -> list[Alarm]:
    limits, outputs, found = config.monitoring, report["outputs"], []
    clients = outputs["clients"]
    if clients["requests"] < limits.min_requests:
        return []
    if clients["empty_share"] is not None and clients["empty_share"] > limits.max_error_rate:
        found.append(
            Alarm(
                AlarmName.EMPTY_ANSWERS,
                Severity.CRITICAL,
                "outputs.empty_share",
                clients["empty_share"],
                limits.max_error_rate,
                f"{clients['empty']} of {clients['requests']} client requests got status 200 without a usable "
                f"prediction ({_pct(clients['empty_share'])}), above the limit {_pct(limits.max_error_rate)} "
                f"(monitoring.max_error_rate)",
            )
        )
    found += _class_share_alarms(limits, report)
    rate = clients["positive_rate"]
    if rate is None:
        return found
    if limits.min_positive_rate is not None and rate < limits.min_positive_rate:
        found.append(
            Alarm(
                AlarmName.POSITIVE_RATE,
                Severity.WARN,
                "outputs.positive_rate",
                rate,
                limits.min_positive_rate,
                f"clients got {_pct(rate)} positive predictions over {clients['rows']} rows, below the limit "
                f"{_pct(limits.min_positive_rate)} (monitoring.min_positive_rate)",
            )
        )
    reference = outputs.get("reference_positive_rate")
    shift = limits.max_positive_rate_shift
    if shift is not None and reference is not None and abs(rate - reference) > shift:
        version = (report.get("model") or {}).get("version", "?")
        found.append(
            Alarm(
                AlarmName.POSITIVE_RATE,
                Severity.WARN,
                "outputs.positive_rate_shift",
                round(rate - reference, 6),
                shift,
                f"clients got {_pct(rate)} positive predictions over {clients['rows']} rows against "
                f"{_pct(reference)} positive labels in the training rows of live model {version}: a gap of "
                f"{abs(rate - reference) * 100:.1f} points, above {shift * 100:g} (monitoring.max_positive_rate_shift)",
            )
        )
    return found


def _class_share_alarms(limits: Monitoring, report: dict[str, Any]) -> list[Alarm]:
    """A multi-class label's output check: the class whose share of the predictions is furthest from its share of
    the training labels, against ``monitoring.max_positive_rate_shift``."""
    shift, size, name = (
        limits.max_positive_rate_shift,
        report["headline"].get("class_share_gap"),
        report["headline"].get("class_share_gap_class"),
    )
    if shift is None or size is None or size <= shift:
        return []
    clients, reference = report["outputs"]["clients"], report["outputs"]["reference_class_shares"]
    share = clients["class_shares"][name]
    version = (report.get("model") or {}).get("version", "?")
    return [
        Alarm(
            AlarmName.CLASS_SHARE,
            Severity.WARN,
            f"outputs.class_share_shift.{name}",
            round(share - reference[name], 6),
            shift,
            f"clients got class {name!r} in {_pct(share)} of the predictions over {clients['rows']} rows against "
            f"{_pct(reference[name])} of the training labels of live model {version}: a gap of {size * 100:.1f} "
            f"points, above {shift * 100:g} (monitoring.max_positive_rate_shift)",
        )
    ]


def _performance_alarms(config: Config, report: dict[str, Any]) -> list[Alarm]:
    limits, found = config.monitoring, []
    performance = report["performance"]
    model = performance["model"]
    for version, entry in performance["by_version"].items():
        is_model = version == model
        who = f"live model {version}" if is_model else f"version {version} ({', '.join(entry['roles'])})"
        if entry["verdict"] == ConceptVerdict.INSUFFICIENT_DATA:
            if is_model:
                found.append(
                    Alarm(
                        AlarmName.PERFORMANCE,
                        Severity.INFO,
                        f"performance[{version}]",
                        entry["rows"],
                        limits.min_labelled_rows,
                        f"{who}: performance not judged: {entry['reason']}",
                    )
                )
            continue
        if entry["verdict"] == ConceptVerdict.UNKNOWN and is_model:
            found.append(
                Alarm(
                    AlarmName.PERFORMANCE,
                    Severity.INFO,
                    f"performance[{version}]",
                    None,
                    None,
                    f"{who}: its offline figures are not on record (no MLflow run with test metrics): accuracy "
                    f"{entry['metrics']['accuracy']:.3f}, ROC AUC {_fmt(entry['metrics']['roc_auc'])} on "
                    f"{entry['rows']} labelled rows, not compared",
                )
            )
        for metric, judged in entry.get("concept", {}).items():
            if judged["verdict"] != ConceptVerdict.DRIFT:
                continue
            low, high = judged["interval"]
            diff = judged["difference"]
            found.append(
                Alarm(
                    AlarmName.PERFORMANCE,
                    Severity.CRITICAL if is_model else Severity.WARN,
                    f"{metric}[{version}]",
                    judged["value"],
                    round(judged["offline"] - limits.max_performance_drop, 6),
                    f"{who}: {metric} {judged['value']:.3f} [{low:.3f}, {high:.3f}] on {entry['rows']} labelled rows "
                    f"against {judged['offline']:.3f} offline; the difference {diff['point']:+.3f} "
                    f"[{diff['ci'][0]:+.3f}, {diff['ci'][1]:+.3f}] lies wholly below "
                    f"-{limits.max_performance_drop:g} (monitoring.max_performance_drop): concept drift"
                    + ("; retrain on recent labelled data" if is_model else ""),
                    retrain=is_model,
                )
            )
    return found


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
