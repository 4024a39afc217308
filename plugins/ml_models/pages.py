"""The plugin's HTML pages: the Models page, a gate decision, an MLflow run, and errors.

Each page is one self-contained document (inline CSS, no CDN, no JavaScript), built from what
``pipelines.reporting.models_view`` read; every string from the artifacts is escaped. ``base`` is the
URL the plugin's app is mounted at (behind Airflow's own base URL), so links hold wherever Airflow runs.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from pipelines.core.deployment_state import DeploymentState
from pipelines.data.drift_report import STYLE as BASE_STYLE
from pipelines.data.drift_report import fmt_number
from pipelines.reporting.models_view import KEY_METRICS, Overview, RunRow

ACTION_COLOURS = {
    "PROMOTE": "#2e7d32",
    "HOLD": "#b26a00",
    "RETRAIN": "#1565c0",
    "INSUFFICIENT_EVIDENCE": "#6d6d6d",
}
SLOT_COLOURS = {"blue": "#1f5fbf", "green": "#2e7d32"}
METRIC_TITLES = {"accuracy": "Accuracy", "f1": "F1", "roc_auc": "ROC AUC"}

STYLE = """
body { max-width: 1180px; }
a { color: #1f5fbf; text-decoration: none; } a:hover { text-decoration: underline; }
.top { display: flex; justify-content: space-between; align-items: baseline; gap: 16px; flex-wrap: wrap; }
.cases a { margin-left: 10px; padding: 2px 8px; border-radius: 10px; }
.cases a.current { background: #e8eefb; font-weight: 600; }
.slots { display: grid; grid-template-columns: 1fr 1fr 1.1fr; gap: 14px; margin: 14px 0 22px; }
.slot, .box { border: 1px solid #d6d6d6; border-radius: 8px; padding: 12px 14px; background: #fff; }
.slot.live { border: 2px solid #2e7d32; box-shadow: 0 1px 4px rgba(46,125,50,.25); }
.slot h3, .box h3 { margin: 0 0 6px; font-size: 15px; display: flex; gap: 8px; align-items: center; }
.slot .version { font: 600 14px ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
.slot.empty { color: #777; background: #fafafa; }
.kv { display: grid; grid-template-columns: 110px 1fr; gap: 2px 10px; font-size: 13px; margin-top: 6px; }
.kv > div:nth-child(odd) { color: #666; }
.links a { margin-right: 10px; white-space: nowrap; }
.muted { color: #777; } .small { font-size: 12px; }
td.num .live { color: #888; font-size: 11px; display: block; }
td.reasons { max-width: 330px; font-size: 12px; color: #444; }
tr.is-live td { background: #eef7ee; }
form.rollback { display: flex; flex-direction: column; gap: 8px; margin-top: 6px; }
form.rollback input[type=text] { padding: 5px 8px; border: 1px solid #bbb; border-radius: 5px; font: inherit; }
form.rollback button { align-self: flex-start; padding: 6px 14px; border: 0; border-radius: 5px; background: #c62828;
                       color: #fff; font-weight: 600; cursor: pointer; }
.message { padding: 10px 14px; border-radius: 6px; margin: 10px 0; background: #e8f5e9; border: 1px solid #a5d6a7; }
.message.error { background: #fdecea; border-color: #ef9a9a; }
h2 { margin: 22px 0 4px; }
code { font-size: 12px; }
td.nowrap, .nowrap { white-space: nowrap; }
"""


def _badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{escape(str(text))}</span>'


def action_badge(action: str | None, forced: bool = False) -> str:
    """The gate action as a coloured badge (and a FORCED one beside it)."""
    if not action:
        return '<span class="muted">no decision</span>'
    badge = _badge(action, ACTION_COLOURS.get(action, "#666"))
    return badge + (" " + _badge("FORCED", "#8e24aa") if forced else "")


def page(title: str, body: str) -> str:
    """A standalone HTML document."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{BASE_STYLE}{STYLE}</style></head><body>{body}</body></html>"
    )


def error_page(title: str, message: str, base: str) -> str:
    """A page that says what is wrong and links back to the Models page."""
    return page(
        title,
        f"<h1>{escape(title)}</h1><p class='message error'>{escape(message)}</p>"
        f"<p><a href='{base}/models'>Back to the Models page</a></p>",
    )


def _artifact(base: str, use_case: str, relative: str) -> str:
    return f"{base}/artifacts/{quote(use_case)}/{quote(relative)}"


def run_links(base: str, use_case: str, row: RunRow) -> str:
    """Links to one run's pages that exist: card, decision, drift report, Data Docs, MLflow run."""
    links = []
    if "card" in row.pages:
        links.append(f'<a href="{_artifact(base, use_case, row.pages["card"])}">run card</a>')
    if "decision" in row.pages:
        links.append(f'<a href="{base}/decision/{quote(use_case)}/{quote(row.ds)}">decision</a>')
    if "drift" in row.pages:
        links.append(f'<a href="{_artifact(base, use_case, row.pages["drift"])}">drift</a>')
    if "data_docs" in row.pages:
        links.append(f'<a href="{_artifact(base, use_case, row.pages["data_docs"])}">Data Docs</a>')
    if "train" in row.pages:
        links.append(f'<a href="{base}/mlflow/{quote(use_case)}/{quote(row.ds)}">MLflow</a>')
    return '<span class="links">' + "".join(links) + "</span>"


def _slot_html(view: Overview, slot: str, base: str) -> str:
    state = view.state
    record = state.slots.get(slot) if state else None  # type: ignore[call-overload]
    live = bool(state and state.live == slot)
    head = f"<h3>{_badge(slot, SLOT_COLOURS[slot])} slot{' ' + _badge('LIVE', '#2e7d32') if live else ''}</h3>"
    if record is None:
        return f'<div class="slot empty">{head}<p>empty</p></div>'
    row = next((r for r in view.runs if r.ds == record.ds), None)
    decision = (record.decision or {}).get("action")
    pairs = [
        ("data date D", escape(record.ds)),
        ("gate", action_badge(decision, bool((record.decision or {}).get("forced")))),
        ("Airflow run", f"<code>{escape(record.run_id)}</code>"),
        ("registry", escape(f"version {record.registry_version}" if record.registry_version else "–")),
        ("traffic", escape(_traffic(state, live))),
    ]
    kv = "".join(f"<div>{k}</div><div>{v}</div>" for k, v in pairs)
    links = run_links(base, view.use_case, row) if row else ""
    return (
        f'<div class="slot{" live" if live else ""}">{head}<div class="version">{escape(record.version)}</div>'
        f'<div class="kv">{kv}</div><p class="small">{links}</p></div>'
    )


def _traffic(state: DeploymentState, live: bool) -> str:
    """The slot's share of the router's requests now (a canary's lease that has lapsed counts as none)."""
    routing = state.routing.effective()
    share = 1.0 - routing.canary_weight if live else routing.canary_weight
    text = f"{share:.0%} of requests" + (" (canary)" if routing.canary_weight and not live else "")
    if routing.shadow and not live:
        text += "; every request mirrored (shadow)"
    if routing.lease_until:
        text += f"; held by a delivery until {routing.lease_until[:19]}Z"
    return text


def _rollback_html(view: Overview, base: str) -> str:
    possible, target = view.can_roll_back()
    pending = view.state.pending if view.state else None
    if pending:
        return (
            '<div class="box"><h3>Rollback</h3><p>A delivery is in progress '
            f"({escape(pending.version)} in {escape(str(pending.slot))}, phase {escape(pending.phase)}): "
            "a rollback waits until it ends or is aborted.</p></div>"
        )
    if not possible:
        return f'<div class="box"><h3>Rollback</h3><p class="muted">Not possible: {escape(target)}.</p></div>'
    action = f"{base}/rollback?{urlencode({'use_case': view.use_case})}"
    return (
        '<div class="box"><h3>Rollback</h3>'
        f"<p class='small'>Make <b>{escape(target)}</b> live again (one step back through the history). "
        "You need permission to trigger the training DAG.</p>"
        f'<form class="rollback" method="post" action="{action}">'
        '<input type="text" name="reason" placeholder="Why (recorded in the history)" maxlength="300" required>'
        f'<button type="submit">Roll back to {escape(target)}</button></form></div>'
    )


def _metric_cell(row: RunRow, metric: str) -> str:
    value = row.candidate.get(metric)
    live = row.live.get(metric)
    live_html = f'<span class="live">live {escape(fmt_number(live, 4))}</span>' if live is not None else ""
    return f'<td class="num">{escape(fmt_number(value, 4))}{live_html}</td>'


def _versions_html(view: Overview, row: RunRow) -> str:
    parts = []
    for version in row.versions:
        slot = view.slot_of(version)
        tags = ""
        if slot:
            tags += " " + _badge(slot, SLOT_COLOURS.get(slot, "#666"))
        if version == view.live_version:
            tags += " " + _badge("LIVE", "#2e7d32")
        parts.append(f"<code>{escape(version)}</code>{tags}")
    return "<br>".join(parts) or '<span class="muted">not deployed</span>'


def _runs_html(view: Overview, base: str) -> str:
    if not view.runs:
        return f"<p class='muted'>No runs under {escape(view.artifact_root)} yet.</p>"
    head = "".join(f"<th>{escape(METRIC_TITLES[m])}</th>" for m in KEY_METRICS)
    rows = []
    for row in view.runs:
        reasons = "; ".join(row.reasons[:2]) + (" …" if len(row.reasons) > 2 else "")
        if row.forced_by:
            reasons = f"forced by {row.forced_by}. " + reasons
        if row.problems:
            reasons = (reasons + " " if reasons else "") + " ".join(row.problems)
        live = view.live_version in row.versions
        rows.append(
            f'<tr class="{"is-live" if live else ""}"><td class="nowrap"><b>{escape(row.ds)}</b></td>'
            f"<td>{action_badge(row.action, row.forced)}</td>"
            + "".join(_metric_cell(row, m) for m in KEY_METRICS)
            + f"<td>{_versions_html(view, row)}</td><td class='reasons'>{escape(reasons)}</td>"
            f"<td class='small'>{run_links(base, view.use_case, row)}</td></tr>"
        )
    return (
        f"<table><thead><tr><th>Data date D</th><th>Gate</th>{head}<th>Model version</th><th>Why</th>"
        f"<th>Pages</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<p class='small muted'>Metrics are the candidate's on the run's test rows; grey: the live model's on the "
        "same rows when the gate compared them.</p>"
    )


def _history_html(view: Overview) -> str:
    history = list(view.state.history) if view.state else []
    if not history:
        return "<p class='muted'>Nothing has been deployed yet.</p>"
    rows = []
    for event in reversed(history):
        source = str(event.source) if event.source else "–"
        target = _badge(str(event.target), SLOT_COLOURS.get(str(event.target), "#666"))
        by = getattr(event, "by", None) or "–"
        reason = getattr(event, "reason", None) or ""
        rows.append(
            f"<tr><td class='small nowrap'>{escape(event.at[:19].replace('T', ' '))} UTC</td>"
            f"<td>{escape(str(event.action))}</td><td class='nowrap'><code>{escape(event.version)}</code></td>"
            f"<td class='nowrap'>{escape(source)} → {target}</td>"
            f"<td>{escape(by)}</td><td class='reasons'>{escape(reason)}</td>"
            f"<td class='small'><code>{escape(event.run_id)}</code></td></tr>"
        )
    return (
        "<table><thead><tr><th>When</th><th>Action</th><th>Version</th><th>Slot</th><th>Who</th><th>Why</th>"
        f"<th>Run</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def models_page(view: Overview, cases: list[str], base: str, message: str = "", error: bool = False) -> str:
    """The Models page: the slots and which is live, rollback, every run's decision and metrics, the history."""
    case_links = "".join(
        f'<a class="{"current" if c == view.use_case else ""}" href="{base}/models?{urlencode({"use_case": c})}">'
        f"{escape(c)}</a>"
        for c in cases
    )
    live = view.live_version
    summary = (
        f"Live: <b>{escape(str(view.state.live))}</b> = <code>{escape(live)}</code>"
        if live and view.state
        else "Nothing is live yet."
    )
    problems = "".join(f"<p class='message error'>{escape(p)}</p>" for p in view.problems)
    note = f"<p class='message{' error' if error else ''}'>{escape(message)}</p>" if message else ""
    body = (
        f'<div class="top"><h1>Models: {escape(view.use_case)}</h1><div class="cases">Use case:{case_links}</div></div>'
        f'<p class="meta">{summary} · artifacts <code>{escape(view.artifact_root)}</code></p>{note}{problems}'
        f'<div class="slots">{_slot_html(view, "blue", base)}{_slot_html(view, "green", base)}'
        f"{_rollback_html(view, base)}</div>"
        f"<h2>Runs and their gate decisions</h2>{_runs_html(view, base)}"
        f"<h2>Deployment history</h2>{_history_html(view)}"
    )
    return page(f"Models: {view.use_case}", body)


def decision_page(use_case: str, ds: str, record: dict[str, Any], base: str, card: str | None) -> str:
    """One gate decision: action, reasons, every check with what was measured, notes, override."""
    checks = "".join(
        f"<tr><td>{'✔' if c.get('passed') else '✘'}</td><td>{escape(str(c.get('name')))}</td>"
        f"<td>{escape(str(c.get('kind', '')))}</td><td>{escape(str(c.get('detail', '')))}</td></tr>"
        for c in record.get("checks", [])
    )
    failed = sum(not c.get("passed") for c in record.get("checks", []))
    notes = "".join(
        f"<li><b>{escape(str(n.get('kind')))}</b>: {escape(str(n.get('detail')))}</li>" for n in record.get("notes", [])
    )
    reasons = "".join(f"<li>{escape(str(r))}</li>" for r in record.get("reasons", []))
    forced = ""
    if record.get("forced"):
        forced = (
            f"<p class='message'>Forced by <b>{escape(str(record.get('forced_by') or 'unknown'))}</b>: "
            f"{escape(str(record.get('force_reason') or 'no reason given'))}</p>"
        )
    card_link = f' · <a href="{card}">run card</a>' if card else ""
    body = (
        f"<h1>Gate decision: {escape(use_case)}, D = {escape(ds)} {action_badge(record.get('action'))}</h1>"
        f"<p class='meta'>attempt {escape(str(record.get('attempt')))} · compared with live version "
        f"<code>{escape(str(record.get('live_version') or 'none'))}</code> · "
        f"<a href='{base}/models?{urlencode({'use_case': use_case})}'>Models</a>{card_link}</p>{forced}"
        f"<h2>Reasons</h2><ul>{reasons}</ul>"
        f"<h2>Checks ({len(record.get('checks', [])) - failed} passed, {failed} failed)</h2>"
        f"<table><thead><tr><th></th><th>Check</th><th>Kind</th><th>Measured against required</th></tr></thead>"
        f"<tbody>{checks}</tbody></table>" + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
    )
    return page(f"Decision {use_case} {ds}", body)


def mlflow_page(use_case: str, ds: str, run: dict[str, Any], base: str, server: str | None) -> str:
    """An MLflow run's status, parameters and final metrics (read from the tracking store)."""

    def table(title: str, values: dict[str, Any]) -> str:
        rows = "".join(
            f"<tr><td>{escape(str(k))}</td><td class='num'>{escape(fmt_number(v, 4))}</td></tr>"
            for k, v in sorted(values.items())
        )
        return f"<h2>{escape(title)}</h2><table><tbody>{rows}</tbody></table>" if rows else ""

    link = f' · <a href="{escape(server)}" target="_blank" rel="noopener">open in the MLflow UI</a>' if server else ""
    hint = "" if server else "<p class='small muted'>The full MLflow UI: <code>make mlflow-ui</code>.</p>"
    body = (
        f"<h1>MLflow run: {escape(use_case)}, D = {escape(ds)}</h1>"
        f"<p class='meta'>run <code>{escape(run['run_id'])}</code> · {escape(run['status'])} · experiment "
        f"{escape(run['experiment'])} · <a href='{base}/models?{urlencode({'use_case': use_case})}'>Models</a>"
        f"{link}</p>{hint}<p class='small muted'>tracking <code>{escape(run['tracking_uri'])}</code></p>"
        + table("Metrics (last value)", run["metrics"])
        + table("Parameters", run["params"])
        + table("Tags", run["tags"])
    )
    return page(f"MLflow run {use_case} {ds}", body)
