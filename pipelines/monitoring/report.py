"""The interval's monitoring report on disk: ``report.json`` and a self-contained ``report.html``.

``write_report`` puts them in ``<artifact_root>/monitoring/<YYYY-MM-DDTHHMM>/`` (the hour the interval
starts in), built in a temporary folder and renamed into place, so a re-run of an hour replaces its
report whole and a crash leaves the previous one. The JSON is the metrics report with its alarms. The
page needs no network (inline CSS, inline SVG, no JavaScript): the alarms raised, each headline metric
over the past intervals (read from their ``report.json``, up to ``monitoring.history_intervals`` of them,
none after this one) with the limit it was judged against then, red where it raised an alarm, then the
interval's tables. When drift was judged, ``drift.html`` beside them shows the per-feature distributions
(the training pipeline's drift page). Every string from the logs or the config is escaped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from pipelines.core.artifacts import CorruptArtifact, atomic_dir, read_json, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.contracts import DriftVerdict, PipelineError
from pipelines.data.drift_report import STYLE, fmt_number, fmt_share
from pipelines.data.drift_report import render_html as render_drift_html
from pipelines.monitoring.alarms import Alarm, AlarmName, Severity

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
DRIFT_HTML = "drift.html"
FOLDER_FORMAT = "%Y-%m-%dT%H%M"  # the minute the interval starts: hourly runs and shorter on-demand ones

SEVERITY_COLOURS = {Severity.CRITICAL: "#c62828", Severity.WARN: "#b26a00", Severity.INFO: "#546e7a"}
LINE_COLOUR, BAND_COLOUR, LIMIT_COLOUR, ALARM_COLOUR = "#4c78a8", "#c6d9ee", "#c62828", "#c62828"
_CHART_W, _CHART_H = 500, 200
_PAGE_STYLE = """
.charts { display: grid; grid-template-columns: repeat(2, 1fr); gap: 12px; }
.chart { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
.chart h3 { font-size: 14px; margin: 0 0 2px; } .chart p { margin: 0; color: #555; font-size: 12px; }
tr.critical td { background: #fdecea; } tr.warn td { background: #fff4e0; }
h2 { margin: 28px 0 8px; } .note { color: #555; font-size: 13px; }
"""


def monitoring_dir(config: Config) -> Path:
    """The folder of every interval's monitoring report."""
    return config.artifact_root / "monitoring"


def interval_dir(config: Config, start: datetime) -> Path:
    """The folder of the interval starting at ``start``: ``monitoring/<YYYY-MM-DDTHHMM>`` (UTC)."""
    return monitoring_dir(config) / start.astimezone(UTC).strftime(FOLDER_FORMAT)


def read_reports(config: Config, before: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` latest interval reports whose folder sorts before ``before``, oldest first.

    A report that cannot be read (edited by hand, a disk that filled up) is skipped with a warning.
    """
    root = monitoring_dir(config)
    if not root.exists():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name < before)
    reports = []
    for folder in folders[-limit:]:
        path = folder / REPORT_JSON
        if not path.exists():
            continue
        try:
            reports.append(read_json(path))
        except CorruptArtifact as exc:
            log.warning("monitoring history: %s", exc)
    return reports


def write_report(config: Config, start: datetime, end: datetime, report: dict[str, Any], alarms: list[Alarm]) -> Path:
    """Write the interval's ``report.json`` (the report with its alarms), ``report.html`` and, when drift was
    judged, ``drift.html``, replacing that interval's previous report whole.

    Returns:
        The path of ``report.html``.

    Raises:
        PipelineError: ``report`` was measured on another interval than ``start`` .. ``end``.
    """
    interval = report["interval"]
    expected = (start.astimezone(UTC).isoformat(), end.astimezone(UTC).isoformat())
    if (interval["start"], interval["end"]) != expected:
        raise PipelineError(
            f"the report covers {interval['start']} .. {interval['end']}, not {expected[0]} .. {expected[1]}: "
            f"write it with the interval monitor() measured"
        )
    final = interval_dir(config, start)
    document = {**report, "alarms": [a.to_dict() for a in alarms]}
    history = read_reports(config, final.name, config.monitoring.history_intervals - 1)
    with atomic_dir(final) as tmp:
        write_json_atomic(tmp / REPORT_JSON, document)
        drift = report["inputs"]["drift"]
        judged = drift["verdict"] not in (DriftVerdict.INSUFFICIENT_DATA, DriftVerdict.NO_REFERENCE)
        if judged:
            (tmp / DRIFT_HTML).write_text(render_drift_html(drift), encoding="utf-8")
        (tmp / REPORT_HTML).write_text(render_html(document, history, drift_page=judged), encoding="utf-8")
    log.info("monitoring report: %s (%d alarm(s))", final / REPORT_HTML, len(alarms))
    return final / REPORT_HTML


# ---------------------------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class Series:
    """One headline metric over the intervals: values, the limit each was judged against, an optional interval
    band, and whether it raised an alarm."""

    title: str
    note: str
    values: list[float | None]
    limits: list[float | None]
    alarmed: list[bool]
    fmt: Callable[[float | None], str]
    bands: list[list[float] | None] | None = None
    low_limits: list[float | None] | None = None  # a second limit below (a band of tolerated values)


def _fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _fmt_count(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _alarmed(document: dict[str, Any], *names: AlarmName, metric: str = "") -> bool:
    """Whether the interval raised a warning or critical alarm of one of ``names`` (on a metric starting with
    ``metric``)."""
    return any(
        a["name"] in names and a["severity"] != Severity.INFO and a["metric"].startswith(metric)
        for a in document.get("alarms", [])
    )


def _setting(document: dict[str, Any], key: str) -> Any:
    return document.get("settings", {}).get("monitoring", {}).get(key)


def _shift_limit(document: dict[str, Any], sign: int) -> float | None:
    reference = document["headline"].get("reference_positive_rate")
    shift = _setting(document, "max_positive_rate_shift")
    return None if reference is None or shift is None else reference + sign * shift


def _offline_limit(document: dict[str, Any], metric: str) -> float | None:
    offline = document["headline"].get(f"{metric}_offline")
    drop = _setting(document, "max_performance_drop")
    return None if offline is None or drop is None else offline - drop


def build_series(documents: list[dict[str, Any]]) -> list[Series]:
    """The headline metrics of ``documents`` (oldest first), each with its limits and alarms."""

    def values(key: str) -> list[Any]:
        return [d["headline"].get(key) for d in documents]

    def drift_limit(d: dict[str, Any], key: str) -> float | None:
        return d.get("settings", {}).get("drift", {}).get(key)

    def performance(metric: str, title: str) -> Series:
        return Series(
            title,
            "the interval's model on its labelled rows, with the bootstrap interval; the limit is its offline "
            "figure minus monitoring.max_performance_drop",
            values(metric),
            [_offline_limit(d, metric) for d in documents],
            [_alarmed(d, AlarmName.PERFORMANCE, metric=f"{metric}[{d['headline']['model']}]") for d in documents],
            fmt_number,
            bands=values(f"{metric}_ci"),
        )

    return [
        Series(
            "Client requests",
            "live and canary answers",
            values("requests"),
            [None] * len(documents),
            [_alarmed(d, AlarmName.NO_TRAFFIC) for d in documents],
            _fmt_count,
        ),
        Series(
            "Error rate",
            "share of client answers with a status other than 200 (limit per slot and version)",
            values("error_rate"),
            [_setting(d, "max_error_rate") for d in documents],
            [_alarmed(d, AlarmName.ERROR_RATE, AlarmName.EMPTY_ANSWERS) for d in documents],
            fmt_share,
        ),
        Series(
            "Latency p99",
            "client answers through the router (limit per slot and version)",
            values("p99_ms"),
            [_setting(d, "max_p99_ms") for d in documents],
            [_alarmed(d, AlarmName.LATENCY) for d in documents],
            _fmt_ms,
        ),
        Series(
            "Missing values, worst feature",
            "the feature's own max_missing may allow more",
            values("missing_rate"),
            [_setting(d, "max_missing_rate") for d in documents],
            [_alarmed(d, AlarmName.MISSING_VALUES) for d in documents],
            fmt_share,
        ),
        Series(
            "Out-of-range values, worst numeric feature",
            "values outside the schema's min/max, or not numbers",
            values("out_of_range_rate"),
            [_setting(d, "max_out_of_range_rate") for d in documents],
            [_alarmed(d, AlarmName.OUT_OF_RANGE) for d in documents],
            fmt_share,
        ),
        Series(
            "Unseen categories, worst feature",
            "values outside the schema's value set",
            values("unseen_rate"),
            [_setting(d, "max_unseen_rate") for d in documents],
            [_alarmed(d, AlarmName.UNSEEN_CATEGORIES) for d in documents],
            fmt_share,
        ),
        Series(
            "Drifted share of features",
            "against the model's training rows; upper line: 'drift' (retrain), lower: 'warn'",
            values("drift_share"),
            [drift_limit(d, "drift_share") for d in documents],
            [_alarmed(d, AlarmName.DATA_DRIFT) for d in documents],
            fmt_share,
            low_limits=[drift_limit(d, "warn_share") for d in documents],
        ),
        _class_share_series(documents, values)
        if any(_class_shares(d) is not None for d in documents)
        else Series(
            "Positive prediction rate",
            "tolerated: the training rows' positive label rate +- monitoring.max_positive_rate_shift",
            values("positive_rate"),
            [_shift_limit(d, +1) for d in documents],
            [_alarmed(d, AlarmName.POSITIVE_RATE) for d in documents],
            fmt_share,
            low_limits=[_shift_limit(d, -1) for d in documents],
        ),
        performance("accuracy", "Accuracy (labelled rows)"),
        performance("roc_auc", "ROC AUC (labelled rows)"),
    ]


def _class_shares(document: dict[str, Any]) -> dict[str, float | None] | None:
    """Each class's share of the clients' predictions (a multi-class label), or None (a binary one)."""
    return document["outputs"]["clients"].get("class_shares")


def _class_share_series(documents: list[dict[str, Any]], values: Callable[[str], list[Any]]) -> Series:
    return Series(
        "Largest class share gap",
        "the class whose share of the predictions is furthest from its share of the training labels; limit: "
        "monitoring.max_positive_rate_shift",
        values("class_share_gap"),
        [_setting(d, "max_positive_rate_shift") for d in documents],
        [_alarmed(d, AlarmName.CLASS_SHARE) for d in documents],
        fmt_share,
    )


def _tick_label(start: str) -> str:
    return datetime.fromisoformat(start).strftime("%m-%d %H:%M")


def _polyline(points: list[tuple[float, float] | None], **attributes: str) -> str:
    """Polylines through consecutive known points (a gap where a value is missing)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    attrs = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attributes.items())
    return "".join(
        f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in run)}" fill="none" {attrs}/>'
        for run in runs
        if len(run) > 1
    )


def chart_svg(series: Series, labels: list[str]) -> str:
    """A line chart of one series: its limit(s) dashed in red, its interval band shaded, alarmed points red."""
    left, right, top, bottom = 60, 14, 12, 40
    plot_w, plot_h = _CHART_W - left - right, _CHART_H - top - bottom
    known = [v for v in series.values if v is not None]
    extras = [v for v in [*series.limits, *(series.low_limits or [])] if v is not None]
    extras += [b for band in series.bands or [] if band for b in band if b is not None]
    if not known:
        return f'<p class="note">Not measured in {"this interval" if len(labels) == 1 else "these intervals"}.</p>'
    low, high = min([*known, *extras, 0.0]), max([*known, *extras])
    high = high if high > low else low + 1.0
    high += (high - low) * 0.08

    def x(i: int) -> float:
        return left + (plot_w / 2 if len(labels) == 1 else plot_w * i / (len(labels) - 1))

    def y(v: float) -> float:
        return top + plot_h - plot_h * (v - low) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_CHART_W} {_CHART_H}" width="100%" role="img">']
    for frac in (0.0, 0.5, 1.0):
        value = low + (high - low) * frac
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e3e3e3"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{escape(series.fmt(value))}</text>'
        )
    if series.bands:
        upper = [(x(i), y(b[1])) for i, b in enumerate(series.bands) if b and None not in b]
        lower = [(x(i), y(b[0])) for i, b in enumerate(series.bands) if b and None not in b]
        if upper:
            if len(upper) == 1:  # one interval: a bar, not a polygon
                (ux, uy), (_, ly) = upper[0], lower[0]
                parts.append(
                    f'<rect x="{ux - 6:.1f}" y="{uy:.1f}" width="12" height="{ly - uy:.1f}" fill="{BAND_COLOUR}"/>'
                )
            else:
                outline = " ".join(f"{px:.1f},{py:.1f}" for px, py in [*upper, *reversed(lower)])
                parts.append(f'<polygon points="{outline}" fill="{BAND_COLOUR}"/>')
    for limits in (series.limits, series.low_limits or []):
        points = [None if v is None else (x(i), y(v)) for i, v in enumerate(limits)]
        if len(labels) == 1 and points and points[0]:
            points = [(left, points[0][1]), (left + plot_w, points[0][1])]
        parts.append(_polyline(points, stroke=LIMIT_COLOUR, stroke_width="1.5", stroke_dasharray="5 4"))
    parts.append(
        _polyline(
            [None if v is None else (x(i), y(v)) for i, v in enumerate(series.values)],
            stroke=LINE_COLOUR,
            stroke_width="2",
        )
    )
    for i, (value, alarmed) in enumerate(zip(series.values, series.alarmed, strict=True)):
        if value is None:
            continue
        colour, radius = (ALARM_COLOUR, 5) if alarmed else (LINE_COLOUR, 3.5)
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="{radius}" fill="{colour}">'
            f"<title>{escape(labels[i])}: {escape(series.fmt(value))}{' (alarm)' if alarmed else ''}</title></circle>"
        )
    last = len(labels) - 1
    for i in sorted({0, last // 2, last}):
        anchor = "middle" if last == 0 or 0 < i < last else "start" if i == 0 else "end"
        label = escape(_tick_label(labels[i]))
        parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}">{label}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{_CHART_H - 4}" text-anchor="middle">interval start (UTC); '
        f"red dashes: limit; red points: alarm</text></svg>"
    )
    return "".join(parts)


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    if not rows:
        return '<p class="note">None.</p>'
    heading = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{(classes or [""] * len(rows))[i]}">' + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{heading}</tr></thead><tbody>{body}</tbody></table>"


def _badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{escape(text)}</span>'


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "–"
    return escape(fmt_number(value) + (f" [{fmt_number(ci[0])}, {fmt_number(ci[1])}]" if ci else ""))


def _alarms_html(alarms: list[dict[str, Any]]) -> str:
    rows, classes = [], []
    for alarm in alarms:
        severity = Severity(alarm["severity"])
        value = alarm["value"]
        rows.append(
            [
                _badge(severity, SEVERITY_COLOURS[severity]),
                escape(alarm["name"]),
                escape(alarm["metric"]),
                escape(fmt_number(value) if isinstance(value, float) else str(value)),
                "retrain" if alarm["retrain"] else "",
                escape(alarm["message"]),
            ]
        )
        classes.append(str(severity))
    return _table(["severity", "alarm", "metric", "value", "action", "what happened"], rows, classes)


def _software_html(software: dict[str, Any]) -> str:
    rows = [
        [escape(g["slot"]), escape(g["version"]), escape(g["role"])]
        + [
            escape(v)
            for v in (
                _fmt_count(g["requests"]),
                fmt_number(g["rate_per_s"]),
                fmt_share(g["error_rate"]),
                _fmt_count(g["unreachable"]),
                _fmt_ms(g["p50_ms"]),
                _fmt_ms(g["p99_ms"]),
            )
        ]
        for g in software["groups"]
    ]
    head = ["slot", "version", "role", "requests", "per second", "error rate", "unreachable", "p50", "p99"]
    return _table(head, rows)


def _drift_statistic(entry: dict[str, Any]) -> str:
    """What the drift check compared with its limit: the adjusted p-value of a test, else the distance."""
    if entry.get("p_adjusted") is not None:
        return f"p adj. {fmt_number(entry['p_adjusted'])} (statistic {fmt_number(entry.get('statistic'))})"
    return fmt_number(entry.get("statistic"))


def _inputs_html(inputs: dict[str, Any]) -> str:
    drift = inputs["drift"].get("features", {})
    rows, classes = [], []
    for name, entry in inputs["features"].items():
        judged = drift.get(name, {})
        invalid = entry.get("out_of_range_rate", entry.get("unseen_rate"))
        rows.append(
            [
                escape(name) + ("" if entry["judged"] else " (not sent, audit only)"),
                escape(entry["kind"]),
                escape(fmt_share(entry["missing_rate"])),
                escape(fmt_share(invalid)),
                escape(", ".join(entry.get("examples", []))),
                escape(str(judged.get("test", "–"))),
                escape(_drift_statistic(judged)),
                escape(fmt_number(judged.get("threshold"))),
                escape(str(judged.get("verdict", "–"))),
            ]
        )
        classes.append("critical" if judged.get("drifted") else "")
    head = [
        "feature",
        "kind",
        "missing",
        "out of range / unseen",
        "examples",
        "drift test",
        "measured",
        "limit",
        "drift",
    ]
    return f'<p class="note">{escape(inputs["drift"].get("summary", ""))}</p>' + _table(head, rows, classes)


def _histogram_svg(histogram: dict[str, Any], of: str) -> str:
    counts, edges = histogram["counts"], histogram["edges"]
    if not sum(counts):
        return '<p class="note">No answered rows.</p>'
    left, top, plot_w, plot_h = 56, 10, 440, 140
    peak, step = max(counts), plot_w / len(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="520" height="{top + plot_h + 40}" role="img">']
    for i, count in enumerate(counts):
        height = plot_h * count / peak
        parts.append(
            f'<rect x="{left + i * step + 1:.1f}" y="{top + plot_h - height:.1f}" width="{step - 2:.1f}" '
            f'height="{height:.1f}" fill="{LINE_COLOUR}">'
            f"<title>[{edges[i]:g}, {edges[i + 1]:g}): {count}</title></rect>"
        )
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h - plot_h * frac
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{peak * frac:,.0f}</text>')
    for i in range(0, len(edges), max(1, len(counts) // 5)):
        parts.append(
            f'<text x="{left + i * step:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{edges[i]:g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{top + plot_h + 34}" text-anchor="middle">predicted probability of the '
        f"{of} (rows)</text></svg>"
    )
    return "".join(parts)


def _outputs_html(outputs: dict[str, Any]) -> str:
    """The clients' predictions against the training labels, their histogram, and a row per version and audience:
    the positive share (binary label) or each class's share (multi-class)."""
    clients = outputs["clients"]
    classes = list(clients["class_shares"]) if clients.get("class_shares") is not None else None

    def shares(o: dict[str, Any]) -> list[str]:
        if classes is None:
            return [fmt_share(o["positive_rate"])]
        return [fmt_share(o["class_shares"][c]) for c in classes]

    rows = [
        [escape(version), escape(who)]
        + [
            escape(v)
            for v in (
                _fmt_count(o["requests"]),
                _fmt_count(o["rows"]),
                *shares(o),
                fmt_number(o["mean_probability"]),
                fmt_share(o["failed_share"]),
                fmt_share(o["empty_share"]),
            )
        ]
        for version, audiences in outputs["by_version"].items()
        for who, o in audiences.items()
    ]
    if classes is None:
        note = (
            f"Clients got {fmt_share(clients['positive_rate'])} positive predictions over {clients['rows']:,} rows; "
            f"the model's training rows hold {fmt_share(outputs.get('reference_positive_rate'))} positive labels."
        )
        of, share_head = "positive class", ["positive"]
    else:
        reference = outputs.get("reference_class_shares") or {}
        each = "; ".join(
            f"{c} {fmt_share(clients['class_shares'][c])} (training labels {fmt_share(reference.get(c))})"
            for c in classes
        )
        note = f"Clients' predictions over {clients['rows']:,} rows, by class: {each}."
        of, share_head = "predicted class", classes
    head = ["version", "audience", "requests", "rows", *share_head, "mean probability", "failed", "empty"]
    return f'<p class="note">{escape(note)}</p>' + _histogram_svg(clients["histogram"], of) + _table(head, rows)


def _groups_html(title: str, groups: dict[str, dict[str, Any]]) -> str:
    html = ""
    for name, members in groups.items():
        rows = [
            [
                escape(group),
                _fmt_count(g["rows"]),
                _fmt_count(g["positives"]),
                _with_ci(g["accuracy"], g["ci"]["accuracy"]),
                _with_ci(g["roc_auc"], g["ci"]["roc_auc"]),
                "" if g["sufficient"] else "too few rows for an interval",
            ]
            for group, g in members.items()
        ]
        html += f"<h3>{escape(title)}: {escape(name)}</h3>"
        html += _table(["group", "rows", "positives", "accuracy", "ROC AUC", ""], rows)
    return html


def _performance_html(performance: dict[str, Any]) -> str:
    rows, classes, details = [], [], ""
    for version, entry in performance["by_version"].items():
        metrics, ci = entry.get("metrics", {}), entry.get("ci", {})
        offline = (entry.get("offline") or {}).get("metrics", {})
        rows.append(
            [
                escape(version + (" (the interval's model)" if version == performance["model"] else "")),
                escape(", ".join(entry["roles"])),
                _fmt_count(entry["rows"]),
                _with_ci(metrics.get("accuracy"), ci.get("accuracy")),
                escape(fmt_number(offline.get("accuracy"))),
                _with_ci(metrics.get("roc_auc"), ci.get("roc_auc")),
                escape(fmt_number(offline.get("roc_auc"))),
                escape(str(entry["verdict"]) + (f": {entry['reason']}" if entry.get("reason") else "")),
            ]
        )
        classes.append("critical" if entry["verdict"] == "concept_drift" else "")
        if "slices" in entry:
            # a protected attribute that is also a slice is shown once, under the slices
            protected = {name: groups for name, groups in entry["protected"].items() if name not in entry["slices"]}
            shown = [name for name in entry["protected"] if name in entry["slices"]]
            details += _groups_html("Slice", entry["slices"]) + _groups_html("Protected attribute", protected)
            if shown:
                details += (
                    f'<p class="note">Protected attributes shown as slices above: {escape(", ".join(shown))}.</p>'
                )
    head = ["version", "roles", "labelled rows", "accuracy", "offline", "ROC AUC", "offline", "verdict"]
    note = (
        f"{performance['labelled_rows']:,} answered rows have their label so far "
        f"({performance['labelled_client_rows']:,} of them answers clients got)."
    )
    return f'<p class="note">{escape(note)}</p>' + _table(head, rows, classes) + details


def render_html(document: dict[str, Any], history: list[dict[str, Any]], drift_page: bool = False) -> str:
    """The interval's page: alarms, headline metrics over ``history`` + this interval, then its tables."""
    documents = [*history, document]
    labels = [d["interval"]["start"] for d in documents]
    interval, model = document["interval"], document.get("model") or {}
    alarms = document["alarms"]
    counts = {s: sum(a["severity"] == s for a in alarms) for s in Severity}
    badges = " ".join(_badge(f"{n} {s}", SEVERITY_COLOURS[s]) for s, n in counts.items() if n) or _badge(
        "no alarm", "#2e7d32"
    )
    meta = [
        f"Interval {interval['start']} .. {interval['end']}; labels joined up to {interval['label_cutoff']}.",
        f"Model: {model.get('version', 'none')} ({model.get('source', 'no live model')}).",
        f"{len(history)} earlier interval(s) drawn over time.",
    ]
    charts = "".join(
        f'<div class="chart"><h3>{escape(s.title)}</h3><p>{escape(s.note)}</p>{chart_svg(s, labels)}</div>'
        for s in build_series(documents)
    )
    drift_link = (
        f'<p><a href="{DRIFT_HTML}">Feature distributions against the training rows</a></p>' if drift_page else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Monitoring {escape(interval['start'])}</title><style>{STYLE}{_PAGE_STYLE}</style></head><body>"
        f"<h1>Monitoring report {badges}</h1>"
        + "".join(f'<p class="meta">{escape(line)}</p>' for line in meta)
        + "<h2>Alarms</h2>"
        + _alarms_html(alarms)
        + f'<h2>Over time</h2><div class="charts">{charts}</div>'
        + "<h2>Software</h2>"
        + _software_html(document["software"])
        + "<h2>Inputs</h2>"
        + drift_link
        + _inputs_html(document["inputs"])
        + "<h2>Outputs</h2>"
        + _outputs_html(document["outputs"])
        + "<h2>Performance</h2>"
        + _performance_html(document["performance"])
        + "</body></html>"
    )
