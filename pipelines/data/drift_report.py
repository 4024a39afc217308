"""The drift report as one self-contained HTML page: no CDN, no JavaScript, charts as inline SVG.

``render_html`` is a pure function of the JSON report that ``pipelines.data.drift.compare`` writes:
the dataset verdict on top, a table of every feature, then one section per feature with its
reference and current distributions (a histogram on shared bins for numeric features, bars for the
top categories of categorical ones), its statistic, threshold, where the threshold came from, and
its verdict. Every string from the data or the config is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

REFERENCE_COLOUR = "#4c78a8"
CURRENT_COLOUR = "#f58518"
_VERDICT_COLOURS = {"none": "#2e7d32", "warn": "#b26a00", "drift": "#c62828"}
_WIDTH = 1000

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto;
       max-width: 1060px; padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 8px; } h2 { font-size: 18px; margin: 0; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; color: #fff; font-weight: 600;
         background: #666; font-size: 13px; vertical-align: middle; }
.summary { font-size: 15px; margin: 8px 0 16px; }
.meta { color: #555; margin: 2px 0; }
table { border-collapse: collapse; width: 100%; margin: 12px 0 24px; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.flagged { color: #c62828; font-weight: 600; }
tr.drifted td { background: #fdecea; }
section.feature { border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
section.feature.drifted { border-color: #c62828; }
.header { display: flex; gap: 12px; align-items: center; margin-bottom: 6px; }
dl { display: grid; grid-template-columns: 150px 1fr; gap: 2px 12px; margin: 6px 0 10px; }
dt { color: #555; } dd { margin: 0; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def fmt_number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10**-digits:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _badge(verdict: str) -> str:
    colour = _VERDICT_COLOURS.get(verdict, "#666")
    return f'<span class="badge" style="background:{colour}">{escape(str(verdict))}</span>'


def _legend(x: float, y: float) -> str:
    return (
        f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill="{REFERENCE_COLOUR}"/>'
        f'<text x="{x + 16}" y="{y}">reference</text>'
        f'<rect x="{x + 90}" y="{y - 9}" width="12" height="10" fill="{CURRENT_COLOUR}"/>'
        f'<text x="{x + 106}" y="{y}">current</text>'
    )


def histogram_svg(edges: list[float], reference: list[float], current: list[float]) -> str:
    """Side-by-side bars of two shares on shared bins, with share and value axes."""
    if not edges:
        return "<p>No values on either side to plot.</p>"
    left, top, plot_w, plot_h = 56, 24, _WIDTH - 76, 180
    peak = max([*reference, *current, 1e-9])
    bins = len(reference)
    step = plot_w / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{top + plot_h + 44}" role="img">']
    parts.append(_legend(left, 14))
    for i in range(bins):
        for j, (share, colour) in enumerate(((reference[i], REFERENCE_COLOUR), (current[i], CURRENT_COLOUR))):
            height = plot_h * (share or 0) / peak
            x = left + i * step + 1 + j * (step - 2) / 2
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - height:.1f}" width="{max((step - 2) / 2, 0.5):.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(_bin_label(edges, i))}: '
                f"{'reference' if j == 0 else 'current'} {fmt_share(share)}</title></rect>"
            )
    for frac in (0, 0.5, 1):
        y = top + plot_h - plot_h * frac
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt_share(peak * frac))}</text>')
    whole = all(float(e) - 0.5 == round(float(e) - 0.5) for e in edges)  # bins of whole numbers
    if whole and edges[1] - edges[0] == 1:  # one bin per number: label the bars
        ticks = [(i + 0.5, edges[i] + 0.5) for i in range(0, bins, max(1, round(bins / 12)))]
    elif whole:  # label each bin's first number
        ticks = [(i, edges[i] + 0.5) for i in sorted({round(k * bins / 6) for k in range(7)}) if i < bins]
    else:
        ticks = [(i, edges[i]) for i in sorted({round(k * bins / 6) for k in range(7)})]
    for position, value in ticks:
        x = left + position * step
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#333"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{escape(_number(value))}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{top + plot_h + 38}" text-anchor="middle">'
        "value (share of each side's non-missing rows)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(labels: list[str], reference: list[float], current: list[float]) -> str:
    """Horizontal pairs of bars, one pair per category, with the shares written beside them."""
    if not labels:
        return "<p>No rows on either side to plot.</p>"
    label_w, top, row_h, plot_w = 240, 26, 28, _WIDTH - 330
    peak = max([*reference, *current, 1e-9])
    height = top + row_h * len(labels) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" role="img">']
    parts.append(_legend(label_w, 14))
    for i, label in enumerate(labels):
        y = top + i * row_h
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end"><title>{escape(label)}</title>'
            f"{escape(shown)}</text>"
        )
        for j, (share, colour) in enumerate(((reference[i], REFERENCE_COLOUR), (current[i], CURRENT_COLOUR))):
            width = plot_w * (share or 0) / peak
            bar_y = y + 2 + j * 12
            parts.append(
                f'<rect x="{label_w}" y="{bar_y}" width="{width:.1f}" height="11" fill="{colour}"/>'
                f'<text x="{label_w + width + 4:.1f}" y="{bar_y + 10}">{escape(fmt_share(share))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def _bin_label(edges: list[float], i: int) -> str:
    return f"[{_number(edges[i])}, {_number(edges[i + 1])})"


def _plot(distribution: dict[str, Any] | None) -> str:
    if not distribution:
        return ""
    if distribution["kind"] == "histogram":
        return histogram_svg(distribution["edges"], distribution["reference"], distribution["current"])
    return bars_svg(distribution["labels"], distribution["reference"], distribution["current"])


def _statistic(entry: dict[str, Any]) -> str:
    if entry.get("p_value") is not None:
        p, adjusted = fmt_number(entry["p_value"]), fmt_number(entry["p_adjusted"])
        return f"{fmt_number(entry['statistic'])} (p {p}, adjusted {adjusted})"
    return fmt_number(entry.get("statistic"))


def _summary_row(i: int, name: str, entry: dict[str, Any]) -> str:
    missing = entry.get("missing") or {}
    cells = [
        f'<a href="#feature-{i}">{escape(name)}</a>',
        escape(entry.get("kind", "")),
        escape(str(entry.get("test", "–"))),
        f'<td class="num">{escape(_statistic(entry))}</td>',
        f'<td class="num">{escape(fmt_number(entry.get("threshold")))}</td>',
        escape(str(entry.get("threshold_source") or "–")),
        f'<td class="num">{escape(fmt_number(entry.get("psi")))}</td>',
        f'<td class="num{" flagged" if (missing.get("check") or {}).get("drifted") else ""}">'
        f"{escape(fmt_share(missing.get('reference')))} → {escape(fmt_share(missing.get('current')))}</td>",
        _badge(entry["verdict"]),
    ]
    row = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
    return f'<tr class="{"drifted" if entry.get("drifted") else ""}">{row}</tr>'


def _section(i: int, name: str, entry: dict[str, Any]) -> str:
    missing = entry.get("missing") or {}
    check = missing.get("check")
    if check:
        missing_text = (
            f"{fmt_share(missing['reference'])} → {fmt_share(missing['current'])}; {check['test']} "
            f"{_statistic(check)} vs {fmt_number(check['threshold'])} ({check['threshold_reason']})"
            + (" — drifted" if check["drifted"] else "")
        )
    elif missing:
        counted = " (a category of the test)" if entry.get("test") in ("chi2", "jensen_shannon", "psi") else ""
        missing_text = f"{fmt_share(missing.get('reference'))} → {fmt_share(missing.get('current'))}{counted}"
    else:
        missing_text = "–"
    rows = [
        ("test", entry.get("test", "–")),
        ("statistic", _statistic(entry)),
        ("threshold", fmt_number(entry.get("threshold"))),
        ("threshold from", entry.get("threshold_reason") or "–"),
        ("PSI (alongside)", fmt_number(entry.get("psi"))),
        ("missing share", missing_text),
        ("rows", f"{entry.get('reference_rows', '–')} reference, {entry.get('current_rows', '–')} current"),
        ("judged", entry.get("why", "")),
    ]
    details = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in rows)
    drifted = " drifted" if entry.get("drifted") else ""
    return (
        f'<section class="feature{drifted}" id="feature-{i}">'
        f'<div class="header"><h2>{escape(name)}</h2>{_badge(entry["verdict"])}'
        f'<span class="meta">{escape(entry.get("kind", ""))}</span></div>'
        f"<dl>{details}</dl>{_plot(entry.get('distribution'))}</section>"
    )


def render_html(report: dict[str, Any]) -> str:
    """The drift report as a standalone HTML page (see module docstring)."""
    verdict = str(report["verdict"])
    settings = report.get("settings", {})
    calibration = report.get("calibration", {})
    reference = report.get("reference")
    meta = []
    if reference:
        meta.append(f"Reference: live model {reference['version']} ({reference['uri']})")
    if settings:
        rows = f"{settings.get('reference_rows', '–')} reference rows, {settings.get('current_rows', '–')} current rows"
        tests = (
            f"{settings.get('regime', '–')}-sample tests (distances from {settings['large_sample']} rows on both sides)"
        )
        correction = f"p-values corrected by {settings['correction']} at alpha {settings['alpha']}"
        shares = f"warn from {settings['warn_share']:.0%} of features drifted, drift from {settings['drift_share']:.0%}"
        meta.append(f"{rows}; {tests}; {correction}; {shares}")
    if calibration:
        meta.append(
            f"Calibration: {calibration.get('windows', 0)} past windows"
            + (f" of {calibration['window_days']} day(s)" if "window_days" in calibration else "")
            + (f" ({calibration['reason']})" if calibration.get("reason") else "")
        )
    features = report.get("features", {})
    table = ""
    if features:
        head = "".join(
            f"<th>{h}</th>"
            for h in ("feature", "kind", "test", "statistic", "threshold", "source", "PSI", "missing", "verdict")
        )
        body = "".join(_summary_row(i, name, entry) for i, (name, entry) in enumerate(features.items()))
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    sections = "".join(_section(i, name, entry) for i, (name, entry) in enumerate(features.items()))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Drift report: {escape(verdict)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Drift report {_badge(verdict)}</h1>"
        f'<p class="summary">{escape(report.get("summary", ""))}</p>'
        + "".join(f'<p class="meta">{escape(line)}</p>' for line in meta)
        + table
        + sections
        + "</body></html>"
    )
