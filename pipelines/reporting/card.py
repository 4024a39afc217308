"""The run card: one self-contained page, and the same content as JSON, that explains one run for D.

``build_card`` reads D's artifacts back through ``summary.collect`` (so only a consistent set of outputs
counts as the run; outputs a later, interrupted re-run left behind are listed as out of date) and the
deployment state, and returns a JSON-ready dict: the outcome in one sentence, the data and its lineage,
validation, drift per feature, split shares, the training curve, metrics with intervals beside each
baseline, slices, fairness, error analysis, the gate's decision with every check, and the deployment
outcome. A section the run never reached says why ("validation blocked the run: ...; no model was
trained"). ``render_html`` is a pure function of that dict: no CDN, no JavaScript, plots as inline SVG,
every string escaped. ``write_card`` writes both into ``runs/<D>/card/`` in one atomic step.

The card is not a stage: it gates nothing and nothing reads it. It depends only on the artifacts and the
deployment state, so rebuilding it (``python -m pipelines card --date D``) gives the same bytes.
"""

from __future__ import annotations

import json
import os
from datetime import date
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.artifacts import atomic_dir, run_dir
from pipelines.core.config import METRICS, Config
from pipelines.core.contracts import Action, NoteKind, StageName, Status
from pipelines.core.deployment_state import EventKind, read_state
from pipelines.core.outputs import DriftOutput, IngestOutput, TransformOutput, ValidationOutput
from pipelines.data.drift_report import STYLE as BASE_STYLE
from pipelines.data.drift_report import fmt_number, fmt_share
from pipelines.reporting.summary import collect

CARD_DIR = "card"
CARD_HTML = "run_card.html"
CARD_JSON = "run_card.json"
# The stages a model depends on, in order: the first one missing or failed is where the run stopped.
CHAIN = (
    StageName.INGEST,
    StageName.DRIFT,
    StageName.VALIDATE,
    StageName.TRANSFORM,
    StageName.TRAIN,
    StageName.EVALUATE,
    StageName.GATE,
)
# What is missing when the run stopped before a stage.
CONSEQUENCE = {
    StageName.INGEST: "no data was read and no model was trained",
    StageName.VALIDATE: "no model was trained",
    StageName.DRIFT: "no model was trained",
    StageName.TRANSFORM: "no model was trained",
    StageName.TRAIN: "no model was trained",
    StageName.EVALUATE: "the candidate was not evaluated",
    StageName.GATE: "no decision was made",
}
SECTIONS = (
    ("outcome", "Outcome"),
    ("data", "Data and lineage"),
    ("validation", "Validation"),
    ("drift", "Drift"),
    ("splits", "Splits"),
    ("training", "Training"),
    ("metrics", "Metrics beside the baselines"),
    ("slices", "Slices"),
    ("fairness", "Fairness"),
    ("error_analysis", "Error analysis"),
    ("gate", "Gate decision"),
    ("deployment", "Deployment"),
)
CANDIDATE_COLOUR, LIVE_COLOUR = "#1f77b4", "#ff7f0e"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
OUTCOME_COLOURS = {
    "promoted": "#2e7d32",
    "already_live": "#2e7d32",
    "held": "#b26a00",
    "not_switched": "#b26a00",
    "retrain": "#1565c0",
    "blocked": "#c62828",
    "stopped": "#c62828",
}
_WIDTH = 1000
TOP_TAGS = 12  # error-analysis rows shown open; the rest are folded


def card_dir(config: Config, ds: date) -> Path:
    """Where D's run card lives: ``<artifact_root>/runs/<D>/card``."""
    return run_dir(config.artifact_root, ds) / CARD_DIR


def card_path(config: Config, ds: date) -> Path:
    """D's run card as an HTML page (``run_card.json`` beside it holds the same content)."""
    return card_dir(config, ds) / CARD_HTML


# ---------------------------------------------------------------------------------------------- the content


def build_card(config: Config, ds: date) -> dict[str, Any]:
    """The card's content for D, read from D's artifacts and the deployment state (JSON-ready)."""
    run = collect(config, ds)
    root = Path(run["run_dir"])
    stages, stale = run["stages"], run["stale"]
    stop = stopped_at(stages, stale)
    gate = run["gate"].to_dict() if "gate" in run else None
    evaluation = run.get("evaluation")
    card = {
        "ds": ds.isoformat(),
        "config": config.name,
        "run_dir": str(root),
        "stopped": stop,
        "data": _data(config, root, stages, stop),
        "validation": _validation(root, stages, stop),
        "drift": _drift(root, run.get("drift"), evaluation, stop),
        "splits": _splits(config, root, stages, stop),
        "training": _training(stages, stop),
        "metrics": _metrics(config, evaluation, stop),
        "slices": _slices(config, evaluation, stop),
        "fairness": _fairness(config, evaluation, stop),
        "error_analysis": _error_analysis(evaluation, stop),
        "gate": _gate(gate, stop),
        "deployment": _deployment(config, ds, stages, gate, stop),
        "stale": [{"stage": stage, "problem": problem} for stage, problem in stale.items()],
    }
    card["outcome"] = _outcome(card, evaluation, config)
    return card


def stopped_at(stages: dict[str, Any], stale: dict[str, str]) -> dict[str, Any] | None:
    """Where and why the run stopped short of a decision, or None if the gate decided."""
    for step in CHAIN:
        stage, consequence = step, CONSEQUENCE[step]
        if stage is StageName.DRIFT and StageName.VALIDATE in stages:
            continue  # the DAG checks drift beside validation and training: only the gate waits for it
        if stage is StageName.GATE and StageName.DRIFT not in stages:
            stage = StageName.DRIFT
        meta = stages.get(stage)
        if meta is None:
            if stage in stale:
                why = f"the {stage} output is out of date ({stale[stage]}); re-run from `{stage}`"
            else:
                why = f"the run stopped before {stage} wrote its output (see the run's log)"
            return {"stage": stage, "blocked": False, "reason": why, "consequence": consequence}
        if meta.get("status") != Status.SUCCEEDED:
            if stage == StageName.INGEST:
                why = "ingest blocked the run: " + "; ".join(meta.get("problems") or ["marked failed"])
            elif stage == StageName.VALIDATE:
                why = "validation blocked the run"
            else:
                why = f"{stage} is marked {meta.get('status')}"
            return {"stage": stage, "blocked": True, "reason": why, "consequence": consequence}
    return None


def _missing(stop: dict[str, Any] | None, what: str) -> dict[str, Any]:
    reason = f"{stop['reason']}; {stop['consequence']}" if stop else "not in the run's artifacts"
    return {"available": False, "message": f"{what}: {reason}"}


def _lineage(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": meta.get("status"),
        "fingerprint": meta.get("fingerprint"),
        "inputs": {name: i.get("fingerprint") for name, i in (meta.get("inputs") or {}).items()},
        "run_id": meta.get("run_id"),
        "attempt": meta.get("attempt"),
        "created_at": meta.get("created_at"),
    }


def _label_share(path: Path, config: Config) -> float | None:
    """The positive label's share of the rows in a Parquet file the pipeline wrote (only the label is read);
    None for a multi-class label, which has no positive class."""
    label = config.data_schema.label
    if not path.exists() or label.is_multiclass:
        return None
    values = pd.read_parquet(path, columns=[label.name])[label.name]
    return round(float((values == label.positive).mean()), 6) if len(values) else None


def _label_text(config: Config) -> str:
    label = config.data_schema.label
    if label.is_multiclass:
        return f"{label.name}: {len(label.classes)} classes ({', '.join(label.classes)})"
    return f"{label.name} = {label.positive}"


def _data(config: Config, root: Path, stages: dict[str, Any], stop: dict[str, Any] | None) -> dict[str, Any]:
    recorded = list(stages.values())
    data: dict[str, Any] = {
        "config_name": config.name,
        "config_hash": sorted({m["config_hash"] for m in recorded if m.get("config_hash")}),
        "config_hash_now": config.fingerprint,
        "code_version": sorted({m["code_version"] for m in recorded if m.get("code_version")}),
        "run_id": sorted({m["run_id"] for m in recorded if m.get("run_id")}),
        "trigger": next((m["trigger"] for m in recorded if m.get("trigger")), None),
        "stages": {stage: _lineage(meta) for stage, meta in stages.items()},
    }
    ingest = stages.get(StageName.INGEST)
    if ingest is None:
        return {**data, **_missing(stop, "no data summary")}
    data.update(
        available=True,
        rows=ingest.get("rows"),
        quarantined=ingest.get("quarantined"),
        quarantined_fraction=ingest.get("quarantined_fraction"),
        window_days=ingest.get("window_days"),
        days_read=ingest.get("days_read"),
        problems=ingest.get("problems") or [],
        warnings=ingest.get("warnings") or [],
        positive_share=_label_share(IngestOutput(root / StageName.INGEST).snapshot, config),
        label=_label_text(config),
        partitions=[
            {k: p.get(k) for k in ("ds", "status", "rows", "quarantined", "sha256")}
            for p in ingest.get("partitions") or []
        ],
    )
    return data


def _validation(root: Path, stages: dict[str, Any], stop: dict[str, Any] | None) -> dict[str, Any]:
    if StageName.VALIDATE not in stages:
        return _missing(stop, "not validated")
    result = ValidationOutput(root / StageName.VALIDATE).result()
    failed = [e for e in result.get("expectations", []) if not e.get("success")]
    return {
        "available": True,
        "success": result.get("success"),
        "evaluated": result.get("evaluated"),
        "failed": len(failed),
        "blocked": result.get("blocked", []),
        "warnings": result.get("warnings", []),
        "failed_expectations": [
            {
                "column": e.get("column"),
                "expectation": e.get("expectation"),
                "severity": e.get("severity"),
                "observed": (e.get("window") or {}).get("observed"),
            }
            for e in failed
        ],
        "partitions": result.get("partitions", {}),
        "label_checks": (result.get("labels") or {}).get("checks", []),
        "data_docs": result.get("data_docs"),
    }


def _drift(
    root: Path, report: dict[str, Any] | None, evaluation: dict[str, Any] | None, stop: dict[str, Any] | None
) -> dict[str, Any]:
    concept = (evaluation or {}).get("concept_drift")
    concept_part = {"verdict": concept.get("verdict"), "message": concept.get("message")} if concept else None
    if report is None:
        return {**_missing(stop, "drift not checked"), "concept": concept_part}
    keys = ("kind", "test", "statistic", "threshold", "threshold_source", "psi", "verdict", "drifted")
    return {
        "available": True,
        "verdict": report.get("verdict"),
        "summary": report.get("summary"),
        "reference": (report.get("reference") or {}).get("version"),
        "report": str(DriftOutput(root / StageName.DRIFT).html_path),
        "features": {name: {k: entry.get(k) for k in keys} for name, entry in (report.get("features") or {}).items()},
        "concept": concept_part,
    }


def _splits(config: Config, root: Path, stages: dict[str, Any], stop: dict[str, Any] | None) -> dict[str, Any]:
    meta = stages.get(StageName.TRANSFORM)
    if meta is None:
        return _missing(stop, "no splits")
    out = TransformOutput(root / StageName.TRANSFORM)
    counts = {name: meta.get(f"{name}_rows") or 0 for name in ("train", "validation", "test")}
    paths = {"train": out.train_raw, "validation": out.validation_raw, "test": out.test_raw}
    total = sum(counts.values())
    fingerprints = meta.get("split_fingerprints") or {}
    report = out.split_report() if out.split_report_path.exists() else {}  # runs from before the split report
    return {
        "available": True,
        "test_fraction": config.data.test_fraction,
        "method": report.get("method"),
        "stratify_by": report.get("stratify_by") or [],
        "splits": {
            name: {
                "rows": rows,
                "share": round(rows / total, 6) if total else None,
                "positive_share": _label_share(paths[name], config),
                "fingerprint": fingerprints.get(name),
            }
            for name, rows in counts.items()
            if rows or name != "validation"
        },
        "gaps": _split_gaps(report),
    }


def _split_gaps(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per column of the split report, the value whose train and test shares differ most; largest gap first."""
    parts = report.get("splits") or {}
    rows = [
        {
            "column": column,
            "value": gap["value"],
            "train": parts["train"]["columns"][column].get(gap["value"], 0.0),
            "test": parts["test"]["columns"][column].get(gap["value"], 0.0),
            "gap": gap["gap"],
        }
        for column, gap in (report.get("gaps") or {}).items()
    ]
    return sorted(rows, key=lambda row: -row["gap"])


def _training(stages: dict[str, Any], stop: dict[str, Any] | None) -> dict[str, Any]:
    meta = stages.get(StageName.TRAIN)
    if meta is None:
        return _missing(stop, "no model was trained")
    history = meta.get("history") or {}
    return {
        "available": True,
        "epochs": max((len(v) for v in history.values()), default=0),
        "history": history,
        "seed": meta.get("seed"),
        "attempt": meta.get("attempt"),
        "mlflow_run_id": meta.get("mlflow_run_id"),
        "model_fingerprint": meta.get("fingerprint"),
        "epochs_trained": meta.get("epochs_trained"),
        "best_epoch": meta.get("best_epoch"),
        "stopped_epoch": meta.get("stopped_epoch"),
        "sanity_check": meta.get("sanity_check"),
        "warm_start": meta.get("warm_start"),
        "class_weights": meta.get("class_weights"),
    }


def _metrics(config: Config, evaluation: dict[str, Any] | None, stop: dict[str, Any] | None) -> dict[str, Any]:
    if evaluation is None:
        return _missing(stop, "not evaluated")
    overall = evaluation.get("overall", {})
    models: dict[str, Any] = {}
    for who in ("candidate", "live"):
        if who in overall:
            entry = overall[who]
            models[who] = {
                "values": {m: entry.get(m) for m in METRICS},
                "ci": {m: (entry.get("ci") or {}).get(m) for m in METRICS},
                "n": entry.get("n"),
                "positives": entry.get("positives"),
                "confusion_matrix": entry.get("confusion_matrix"),
                "log_loss": entry.get("log_loss"),
                "per_class": entry.get("per_class"),
            }
    difference = {m: {k: d.get(k) for k in ("point", "ci")} for m, d in (overall.get("difference") or {}).items()}
    baselines = evaluation.get("baselines") or {}
    return {
        "available": True,
        "primary_metric": config.thresholds.gate.primary_metric,
        "confidence": config.thresholds.gate.confidence,
        "test_rows": evaluation.get("test_rows"),
        "classes": evaluation.get("classes"),
        "averaging": evaluation.get("averaging"),
        "live_version": evaluation.get("live_version"),
        "models": models,
        "candidate_minus_live": difference or None,
        "baselines": {
            name: {k: row.get(k) for k in ("available", "source", "metrics", "candidate_minus")}
            for name, row in (baselines.get("rows") or {}).items()
            if name != "candidate"
        },
    }


def _slices(config: Config, evaluation: dict[str, Any] | None, stop: dict[str, Any] | None) -> dict[str, Any]:
    if evaluation is None:
        return _missing(stop, "not evaluated")
    metric = config.thresholds.gate.primary_metric
    slices: dict[str, list[dict[str, Any]]] = {}
    for name, groups in (evaluation.get("slices") or {}).items():
        rows = []
        for group, entry in groups.items():
            candidate, live = entry.get("candidate", {}), entry.get("live")
            difference = (entry.get("difference") or {}).get(metric)
            rows.append(
                {
                    "group": group,
                    "n": candidate.get("n"),
                    "positives": candidate.get("positives"),
                    "sufficient": bool(entry.get("sufficient")),
                    "candidate": candidate.get(metric),
                    "candidate_ci": (candidate.get("ci") or {}).get(metric),
                    "live": None if live is None else live.get(metric),
                    "live_ci": None if live is None else (live.get("ci") or {}).get(metric),
                    "difference": None if difference is None else {k: difference.get(k) for k in ("point", "ci")},
                    "per_class_f1": {c: e.get("f1") for c, e in (candidate.get("per_class") or {}).items()} or None,
                }
            )
        slices[name] = rows
    overall = evaluation.get("overall", {})
    return {
        "available": True,
        "metric": metric,
        "min_slice_size": config.thresholds.gate.min_slice_size,
        "classes": evaluation.get("classes"),
        "overall": {who: overall[who].get(metric) for who in ("candidate", "live") if who in overall},
        "slices": slices,
    }


def _fairness(config: Config, evaluation: dict[str, Any] | None, stop: dict[str, Any] | None) -> dict[str, Any]:
    if evaluation is None:
        return {**_missing(stop, "fairness not audited"), "protected_attributes": config.protected_attributes}
    audit = evaluation.get("fairness")
    if not audit:
        return {
            "available": False,
            "message": "not computed: the evaluation report holds no fairness audit",
            "protected_attributes": config.protected_attributes,
        }
    return {"available": True, "protected_attributes": config.protected_attributes, **audit}


def _error_analysis(evaluation: dict[str, Any] | None, stop: dict[str, Any] | None) -> dict[str, Any]:
    if evaluation is None:
        return _missing(stop, "no error analysis")
    analysis = evaluation.get("error_analysis")
    if not analysis:
        return {"available": False, "message": "not computed: the evaluation report holds no error analysis"}
    return {"available": True, **analysis}


def _gate(record: dict[str, Any] | None, stop: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return _missing(stop, "no decision")
    checks = record.get("checks", [])
    return {
        "available": True,
        **record,
        "passed": sum(bool(c.get("passed")) for c in checks),
        "failed": sum(not c.get("passed") for c in checks),
    }


def _deployment(
    config: Config, ds: date, stages: dict[str, Any], gate: dict[str, Any] | None, stop: dict[str, Any] | None
) -> dict[str, Any]:
    """What became of the candidate: switched live, kept out, or never made; and D's events in the history."""
    state = read_state(config)
    events = [e.to_dict() for e in state.history if e.ds == ds.isoformat()]
    mlflow_run = (stages.get(StageName.TRAIN) or {}).get("mlflow_run_id")
    slot = next((s for s, r in state.slots.items() if r and mlflow_run and r.mlflow_run_id == mlflow_run), None)
    record = state.slots[slot] if slot else None
    live = state.live_record
    result: dict[str, Any] = {
        "available": gate is not None,
        "events": events,
        "slot": slot,
        "version": record.version if record else None,
        "live_now": {"slot": state.live, "version": live.version} if live else None,
    }
    if gate is None:
        reason = f"{stop['reason']}; {stop['consequence']}" if stop else "no decision"
        return {**result, "outcome": "not_deployed", "message": f"nothing deployed: {reason}"}
    action = gate["action"]
    promoted = [e for e in events if e["action"] == EventKind.PROMOTE]
    if action == Action.PROMOTE and slot is not None:
        if slot == state.live:
            how = f"promoted to the {slot} slot" if promoted else f"already live in the {slot} slot (no switch needed)"
            outcome = "promoted" if promoted else "already_live"
            message = f"{how} as {record.version}"
            if promoted and promoted[-1].get("from"):
                message += f"; the previous live slot {promoted[-1]['from']} is kept for an instant rollback"
        else:
            outcome = "promoted"
            message = f"promoted to the {slot} slot as {record.version}; the {state.live} slot has been live since"
        return {**result, "outcome": outcome, "message": message}
    if action == Action.PROMOTE:
        if live and date.fromisoformat(live.ds) > ds:
            why = f"the candidate's data ends {ds}, before the live model's ({live.ds}); force the run to override"
        else:
            why = "no promotion of it is recorded (a backfill run without promote_in_backfill, or a failed promotion)"
        return {**result, "outcome": "not_switched", "message": f"the gate passed the candidate, not switched: {why}"}
    if action == Action.RETRAIN:
        message = f"not deployed: the gate asked for a retrain (attempt {gate.get('attempt', 1) + 1} trains next)"
        return {**result, "outcome": "retrain", "message": message}
    kept = gate.get("live_version") or "none"
    return {**result, "outcome": "held", "message": f"held ({action}): the live model ({kept}) was kept"}


def _outcome(card: dict[str, Any], evaluation: dict[str, Any] | None, config: Config) -> dict[str, Any]:
    """The card's first line: what happened to this run, and why, in one sentence."""
    stop, gate, deployment = card["stopped"], card["gate"], card["deployment"]
    if stop:
        kind = "blocked" if stop["blocked"] else "stopped"
        text = f"{stop['reason']}; {stop['consequence']}"
        if stop["stage"] == StageName.VALIDATE and card["validation"].get("blocked"):
            text = f"validation blocked the run: {'; '.join(card['validation']['blocked'])}; {stop['consequence']}"
        return {"kind": kind, "action": None, "text": text, "reasons": []}
    kind = deployment["outcome"]
    metric = config.thresholds.gate.primary_metric
    overall = (evaluation or {}).get("overall", {})
    parts = [deployment["message"]]
    if "candidate" in overall and overall["candidate"].get(metric) is not None:
        figure = f"candidate {metric} {_num(overall['candidate'][metric])}"
        if "live" in overall and overall["live"].get(metric) is not None:
            figure += f" vs live {_num(overall['live'][metric])}"
        parts.append(figure)
    return {"kind": kind, "action": gate["action"], "text": "; ".join(parts), "reasons": gate.get("reasons", [])}


# ------------------------------------------------------------------------------------------------- the page

_CARD_STYLE = """
body { max-width: 1180px; }
nav { margin: 8px 0 16px; font-size: 13px; } nav a { margin-right: 12px; color: #1565c0; text-decoration: none; }
section.part { border-top: 2px solid #eee; padding-top: 8px; margin-top: 20px; }
section.part h2 { font-size: 19px; margin: 4px 0 8px; } h3 { font-size: 15px; margin: 14px 0 4px; }
.outcome { border-left: 6px solid #666; background: #fafafa; padding: 10px 14px; margin: 8px 0 16px; }
.outcome p { margin: 4px 0; font-size: 15px; }
.na { color: #8a1c1c; background: #fff4f4; border: 1px dashed #e0a0a0; padding: 8px 12px; border-radius: 4px; }
td.pass { color: #2e7d32; font-weight: 600; } td.fail { color: #c62828; font-weight: 600; }
.muted { color: #888; } .ci { color: #666; font-size: 12px; }
tr.small td { color: #888; } code { font-size: 12px; background: #f4f4f4; padding: 0 3px; }
ul { margin: 4px 0 10px; padding-left: 22px; } details { margin: 6px 0; } summary { cursor: pointer; color: #444; }
.kv { display: grid; grid-template-columns: 210px 1fr; gap: 2px 12px; margin: 6px 0 12px; }
.kv div:nth-child(odd) { color: #555; }
"""


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _signed(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def _span(ci: list[float] | None, digits: int = 3) -> str:
    return "" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _with_ci(value: float | None, ci: list[float] | None, digits: int = 4) -> str:
    """A value and its interval as HTML (escaped)."""
    span = _span(ci)
    return escape(_num(value, digits)) + (f' <span class="ci">{escape(span)}</span>' if span else "")


def _badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{escape(str(text))}</span>'


def _table(head: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """A table from already-escaped cells; a cell starting with ``<td`` is taken as it is."""
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
        css = row_classes[i] if row_classes and row_classes[i] else ""
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _num_cell(html: str) -> str:
    return f'<td class="num">{html}</td>'


def _kv(pairs: list[tuple[str, str]]) -> str:
    """A two-column list; values are already escaped HTML."""
    return '<div class="kv">' + "".join(f"<div>{escape(k)}</div><div>{v}</div>" for k, v in pairs) + "</div>"


def _list(items: list[str], css: str = "") -> str:
    if not items:
        return ""
    return f'<ul class="{css}">' + "".join(f"<li>{escape(str(i))}</li>" for i in items) + "</ul>"


def _unavailable(part: dict[str, Any]) -> str:
    return f'<p class="na">{escape(part.get("message", "not available"))}</p>'


def _short(fingerprint: str | None) -> str:
    if not fingerprint:
        return "–"
    return f'<code title="{escape(fingerprint)}">{escape(fingerprint[:12])}</code>'


def _link(target: str | None, base: Path, text: str) -> str:
    """A relative link (the card opens offline, wherever the artifact folder is moved)."""
    if not target:
        return escape(text)
    return f'<a href="{escape(Path(os.path.relpath(target, base)).as_posix())}">{escape(text)}</a>'


def line_chart_svg(series: dict[str, list[float]], y_label: str) -> str:
    """Lines per epoch, one per series, with a legend, epoch ticks and a value axis from the data's range."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return "<p>No values to plot.</p>"
    left, top, plot_w, plot_h = 60, 30, _WIDTH - 260, 200
    values = [v for vs in series.values() for v in vs]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or 0.05
    low, high = low - pad, high + pad
    epochs = max(len(v) for v in series.values())

    def x(i: int) -> float:
        return left + (plot_w * i / (epochs - 1) if epochs > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (high - v) / (high - low)

    parts = [f'<svg width="{_WIDTH}" height="{top + plot_h + 46}" role="img" aria-label="{escape(y_label)}">']
    for k in range(5):
        v = low + (high - low) * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    for i in range(epochs):
        parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{i + 1}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 38}" text-anchor="middle">epoch</text>')
    parts.append(f'<text x="{left}" y="{top - 12}">{escape(y_label)}</text>')
    for n, (name, vs) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if name.startswith("val_") else ""
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for i, v in enumerate(vs):
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(name)} epoch {i + 1}: {v:.4f}</title></circle>"
            )
        legend_y = top + 14 + 20 * n
        parts.append(
            f'<line x1="{left + plot_w + 20}" x2="{left + plot_w + 44}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{left + plot_w + 50}" y="{legend_y}">{escape(name)} ({vs[-1]:.4f})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def interval_chart_svg(rows: list[dict[str, Any]], metric: str, overall: dict[str, float | None]) -> str:
    """One line per group: the candidate's (and live's) metric as a dot with its interval as a bar.

    Groups below the minimum slice size are drawn hollow: the gate does not judge them, and the axis is
    fitted to the gated ones, so a tiny group's extreme value sits at the edge (its number is written beside).
    """
    if not rows:
        return "<p>No groups.</p>"
    label_w, top, row_h, plot_w = 300, 34, 34, _WIDTH - 300 - 150
    gated = [r for r in rows if r["sufficient"]] or rows
    ends = [v for r in gated for key in ("candidate_ci", "live_ci") for v in (r.get(key) or [])]
    ends += [r[key] for r in gated for key in ("candidate", "live") if r.get(key) is not None]
    ends += [v for v in overall.values() if v is not None]
    if not ends:
        return "<p>The metric is undefined on every group.</p>"
    low, high = max(0.0, min(ends) - 0.02), min(1.0, max(ends) + 0.02)
    if high - low < 0.05:
        low, high = max(0.0, low - 0.025), min(1.0, high + 0.025)

    def x(v: float) -> float:
        return label_w + plot_w * (min(max(v, low), high) - low) / (high - low)

    height = top + row_h * len(rows) + 30
    parts = [f'<svg width="{_WIDTH}" height="{height}" role="img" aria-label="{escape(metric)} per group">']
    for k in range(6):
        v = low + (high - low) * k / 5
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top - 6}" y2="{height - 24}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{x(v):.1f}" y="{height - 8}" text-anchor="middle">{v:.2f}</text>')
    legend = [("candidate", CANDIDATE_COLOUR)] + ([("live", LIVE_COLOUR)] if "live" in overall else [])
    for n, (who, colour) in enumerate(legend):
        lx = label_w + n * 110
        parts.append(f'<circle cx="{lx + 6}" cy="12" r="5" fill="{colour}"/><text x="{lx + 16}" y="16">{who}</text>')
        value = overall.get(who)
        if value is not None:
            parts.append(
                f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{top - 6}" y2="{height - 24}" '
                f'stroke="{colour}" stroke-dasharray="4 3" opacity="0.6">'
                f"<title>overall {who} {value:.4f}</title></line>"
            )
    parts.append(f'<text x="{label_w + 240}" y="16" fill="#666">dashed: overall · hollow: too small to gate</text>')
    for i, r in enumerate(rows):
        y0 = top + i * row_h
        if i % 2 == 0:
            parts.append(f'<rect x="0" y="{y0}" width="{_WIDTH}" height="{row_h}" fill="#f8f8f8"/>')
        label = r["group"] if len(r["group"]) <= 40 else r["group"][:39] + "…"
        parts.append(
            f'<text x="{label_w - 10}" y="{y0 + 21}" text-anchor="end"><title>{escape(r["group"])}</title>'
            f"{escape(label)} (n={r['n']})</text>"
        )
        shown = []
        for j, (who, colour) in enumerate(legend):
            value, ci = r.get(who), r.get(f"{who}_ci")
            cy = y0 + 11 + j * 12 if len(legend) > 1 else y0 + row_h / 2
            if value is None:
                continue
            if ci:
                parts.append(
                    f'<line x1="{x(ci[0]):.1f}" x2="{x(ci[1]):.1f}" y1="{cy}" y2="{cy}" stroke="{colour}" '
                    f'stroke-width="2"/>'
                )
            fill = colour if r["sufficient"] else "#fff"
            parts.append(
                f'<circle cx="{x(value):.1f}" cy="{cy}" r="5" fill="{fill}" stroke="{colour}" stroke-width="1.5">'
                f"<title>{escape(r['group'])}: {who} {value:.4f} {escape(_span(ci))}</title></circle>"
            )
            shown.append(f"{value:.3f}")
        text = " vs ".join(shown) if shown else "undefined"
        parts.append(f'<text x="{label_w + plot_w + 12}" y="{y0 + 21}">{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _outcome_html(card: dict[str, Any]) -> str:
    outcome = card["outcome"]
    colour = OUTCOME_COLOURS.get(outcome["kind"], "#666")
    action = f"{_badge(outcome['action'], colour)} " if outcome["action"] else ""
    reasons = _list(outcome.get("reasons") or [])
    stale = ""
    if card["stale"]:
        stale = "<p><b>Out of date</b> (left by an interrupted re-run, not part of this card):</p>" + _list(
            [f"{s['stage']}: {s['problem']}" for s in card["stale"]]
        )
    return (
        f'<div class="outcome" style="border-color:{colour}"><p>{action}'
        f"{_badge(outcome['kind'].replace('_', ' '), colour)}</p><p>{escape(outcome['text'])}</p>"
        f"{reasons}{stale}</div>"
    )


def _data_html(data: dict[str, Any]) -> str:
    hashes = ", ".join(data["config_hash"]) or "–"
    changed = (
        ""
        if not data["config_hash"] or data["config_hash"] == [data["config_hash_now"]]
        else f" (the config given now hashes to {data['config_hash_now']}: it has changed since)"
    )
    pairs = [
        ("config", escape(f"{data['config_name']}, hash {hashes}{changed}")),
        ("code version", escape(", ".join(data["code_version"]) or "–")),
        ("run id", escape(", ".join(data["run_id"]) or "–")),
        ("started by", escape(data.get("trigger") or "–")),
    ]
    if data.get("available"):
        share = data.get("positive_share")
        pairs += [
            ("rows", escape(f"{data['rows']:,} from {data['days_read']} of {data['window_days']} days")),
            ("quarantined", escape(f"{data['quarantined']:,} rows ({fmt_share(data['quarantined_fraction'])})")),
            ("label", escape(data["label"] if share is None else f"{data['label']}: {fmt_share(share)} of the rows")),
        ]
    html = _kv(pairs)
    if not data.get("available"):
        return html + _unavailable(data)
    html += _list([f"blocked: {p}" for p in data["problems"]]) + _list([f"warning: {w}" for w in data["warnings"]])
    rows = [
        [
            escape(str(p["ds"])),
            escape(str(p["status"])),
            _num_cell(escape(_num(p["rows"]))),
            _num_cell(escape(_num(p["quarantined"]))),
            _short(p.get("sha256")),
        ]
        for p in data["partitions"]
    ]
    html += "<h3>Partitions</h3>" + _table(["day", "status", "rows", "quarantined", "sha256"], rows)
    stage_rows = []
    for stage, meta in data["stages"].items():
        inputs = ", ".join(f"{escape(name)} {_short(fp)}" for name, fp in meta["inputs"].items()) or "–"
        css = "pass" if meta["status"] == Status.SUCCEEDED else "fail"
        stage_rows.append(
            [
                escape(stage),
                f'<td class="{css}">{escape(str(meta["status"]))}</td>',
                _short(meta["fingerprint"]),
                inputs,
                escape(str(meta.get("attempt") or "–")),
            ]
        )
    return (
        html
        + "<h3>Outputs and what each was made from</h3>"
        + _table(["stage", "status", "fingerprint", "made from", "attempt"], stage_rows)
    )


def _validation_html(part: dict[str, Any], base: Path) -> str:
    if not part.get("available"):
        return _unavailable(part)
    verdict = _badge("passed", "#2e7d32") if part["success"] else _badge("FAILED: blocked the run", "#c62828")
    html = (
        f"<p>{verdict} {escape(str(part['evaluated']))} expectations, {escape(str(part['failed']))} failed; "
        f"{_link(part.get('data_docs'), base, 'Great Expectations Data Docs')}</p>"
    )
    html += _list([f"blocked: {b}" for b in part["blocked"]]) + _list([f"warning: {w}" for w in part["warnings"]])
    if part["failed_expectations"]:
        rows = [
            [
                escape(str(e["column"] or "(table)")),
                escape(str(e["expectation"])),
                f'<td class="{"fail" if e["severity"] == "block" else ""}">{escape(str(e["severity"]))}</td>',
                escape(str(e["observed"] if e["observed"] is not None else "–")),
            ]
            for e in part["failed_expectations"]
        ]
        html += "<h3>Failed expectations</h3>" + _table(["column", "expectation", "severity", "observed"], rows)
    if part["partitions"]:
        rows = [
            [escape(ds), *(_num_cell(escape(_num(p.get(k)))) for k in ("rows", "failed", "warnings"))]
            for ds, p in part["partitions"].items()
        ]
        html += "<h3>Per partition</h3>" + _table(["day", "rows", "failed", "warnings"], rows)
    if part["label_checks"]:
        html += "<h3>Labels</h3>" + _list(
            [
                f"{'passed' if c.get('success') else 'FAILED'} ({c.get('severity')}): {c.get('message')}"
                for c in part["label_checks"]
            ]
        )
    return html


def _drift_html(part: dict[str, Any], base: Path) -> str:
    concept = part.get("concept")
    concept_html = f"<p><b>Concept drift</b>: {escape(concept['message'] or '')}</p>" if concept else ""
    if not part.get("available"):
        return _unavailable(part) + concept_html
    colours = {"none": "#2e7d32", "warn": "#b26a00", "drift": "#c62828"}
    html = (
        f"<p>{_badge(part['verdict'], colours.get(part['verdict'], '#666'))} {escape(part.get('summary') or '')}</p>"
        f"<p>Reference: {escape(part['reference'] or 'none (no live model)')}; each feature's distributions: "
        f"{_link(part['report'], base, 'drift report')}</p>"
    )
    rows, classes = [], []
    for name, f in part["features"].items():
        rows.append(
            [
                escape(name),
                escape(str(f.get("kind") or "–")),
                escape(str(f.get("test") or "–")),
                _num_cell(escape(fmt_number(f.get("statistic")))),
                _num_cell(escape(fmt_number(f.get("threshold")))),
                escape(str(f.get("threshold_source") or "–")),
                _num_cell(escape(fmt_number(f.get("psi")))),
                escape(str(f.get("verdict"))),
            ]
        )
        classes.append("drifted" if f.get("drifted") else "")
    if rows:
        html += _table(["feature", "kind", "test", "statistic", "threshold", "from", "PSI", "verdict"], rows, classes)
    return html + concept_html


def _splits_html(part: dict[str, Any]) -> str:
    if not part.get("available"):
        return _unavailable(part)
    rows = [
        [
            escape(name),
            _num_cell(escape(f"{s['rows']:,}")),
            _num_cell(escape(fmt_share(s["share"]))),
            _num_cell(escape(fmt_share(s["positive_share"]))),
            _short(s["fingerprint"]),
        ]
        for name, s in part["splits"].items()
    ]
    method = {"hash": "hashed by row source", "stratified": "stratified by label"}.get(part["method"])
    if method and part["stratify_by"]:
        method += " x " + " x ".join(part["stratify_by"])
    html = f"<p>Test fraction configured: {escape(fmt_share(part['test_fraction']))}"
    html += f", {escape(method)}.</p>" if method else "</p>"
    html += _table(["split", "rows", "share", "positive label", "fingerprint"], rows)
    if not part["gaps"]:
        return html
    gaps = [
        [
            escape(g["column"]),
            escape(g["value"]),
            _num_cell(escape(fmt_share(g["train"]))),
            _num_cell(escape(fmt_share(g["test"]))),
            _num_cell(escape(f"{g['gap'] * 100:.1f} pp")),
        ]
        for g in part["gaps"]
    ]
    gap_table = _table(["column", "value", "train", "test", "gap"], gaps)
    return f"{html}<h3>Largest train/test share gap per column</h3>{gap_table}"


def _training_html(part: dict[str, Any]) -> str:
    if not part.get("available"):
        return _unavailable(part)
    history = part["history"]
    losses = {k: v for k, v in history.items() if "loss" in k}
    others = {k: v for k, v in history.items() if "loss" not in k}
    html = _kv(
        [
            ("epochs, seed, attempt", escape(f"{part['epochs']}, {part['seed']}, {part['attempt']}")),
            *_fit_rows(part),
            ("MLflow run", escape(str(part["mlflow_run_id"]))),
            ("model fingerprint", _short(part["model_fingerprint"])),
        ]
    )
    if not history:
        return html + "<p>No per-epoch history was recorded.</p>"
    html += "<h3>Loss per epoch</h3>" + line_chart_svg(losses, "loss (training split)")
    if others:
        html += "<h3>Metrics per epoch</h3>" + line_chart_svg(others, "metric (training split)")
    if not any(k.startswith("val_") for k in history):
        html += '<p class="muted">No validation split during training: the curves are on the training rows.</p>'
    return html


def _fit_rows(part: dict[str, Any]) -> list[tuple[str, str]]:
    """How the fit went: the kept epoch, the sanity check, the warm start and the class weights (when recorded)."""
    rows = []
    if part.get("best_epoch") is not None:
        stopped = part.get("stopped_epoch")
        kept = f"epoch {part['best_epoch'] + 1} of {part['epochs_trained']} trained"
        rows.append(("kept weights", escape(kept + (f"; stopped early after epoch {stopped + 1}" if stopped else ""))))
    sanity = part.get("sanity_check")
    if sanity:
        text = sanity.get("result", "")
        if "loss_after" in sanity:
            text += (
                f": loss {sanity['loss_before']:.3f} → {sanity['loss_after']:.3f} on one batch of {sanity['rows']} "
                f"rows (constant guess {sanity['constant_loss']:.3f})"
            )
        rows.append(("sanity check", escape(text)))
    warm = part.get("warm_start")
    if warm:
        rows.append(("warm start", escape(f"from {warm.get('live_version')}" if warm.get("used") else warm["reason"])))
    if part.get("class_weights"):
        rows.append(("class weights", escape(", ".join(f"{k}: {v:.3g}" for k, v in part["class_weights"].items()))))
    return rows


_BASELINE_NAMES = {
    "live": "live model",
    "trivial": "trivial (majority class)",
    "simple_model": "logistic regression (same split)",
    "hlp": "human-level / legacy (config)",
}


def _metrics_html(part: dict[str, Any]) -> str:
    if not part.get("available"):
        return _unavailable(part)
    primary, models = part["primary_metric"], part["models"]
    head = ["model", *(f"{m}{' (gated)' if m == primary else ''}" for m in METRICS)]
    rows = []
    candidate = models.get("candidate")
    if candidate:
        rows.append(
            ["<b>candidate</b>", *(_num_cell(_with_ci(candidate["values"][m], candidate["ci"][m])) for m in METRICS)]
        )
    for name, row in part["baselines"].items():
        label = escape(_BASELINE_NAMES.get(name, name))
        if name == "live" and part.get("live_version"):
            label += f' <span class="muted">{escape(part["live_version"])}</span>'
        if not row.get("available"):
            rows.append([label, *(['<td class="muted">none</td>'] * len(METRICS))])
            continue
        ci = (models.get(name) or {}).get("ci", {})
        cells = []
        for m in METRICS:
            value = row["metrics"].get(m)
            lead = (row.get("candidate_minus") or {}).get(m)
            text = _with_ci(value, ci.get(m)) if value is not None else '<span class="muted">–</span>'
            if value is not None and lead is not None:
                text += f'<br><span class="ci">candidate {escape(_signed(lead))}</span>'
            cells.append(_num_cell(text))
        rows.append([label, *cells])
    html = (
        f"<p>{escape(str(part['test_rows']))} test rows; {escape(fmt_share(part['confidence']))} bootstrap intervals "
        "in brackets; under each baseline, the candidate's lead over it.</p>"
    )
    html += _table(head, rows)
    difference = part.get("candidate_minus_live")
    if difference:
        cells = [_num_cell(escape(_signed(d["point"])) + f' <span class="ci">{escape(_span(d["ci"]))}</span>')
                 for d in (difference.get(m, {"point": None, "ci": None}) for m in METRICS)]  # fmt: skip
        html += "<h3>Candidate minus live, paired on the same resamples</h3>" + _table(
            ["", *METRICS], [["difference", *cells]]
        )
    if candidate and candidate.get("per_class"):
        html += _per_class_html(part, candidate)
    elif candidate and candidate.get("confusion_matrix"):
        (tn, fp), (fn, tp) = candidate["confusion_matrix"]
        html += (
            f"<p>Candidate's confusion matrix: {tp} true positives, {fp} false positives, "
            f"{fn} false negatives, {tn} true negatives.</p>"
        )
    return html


def _per_class_html(part: dict[str, Any], candidate: dict[str, Any]) -> str:
    """A multi-class candidate: what its averaged metrics are, its per-class table and its confusion matrix."""
    # In class-id order (the confusion matrix's); the report's JSON keeps its keys sorted.
    names = [c for c in part.get("classes") or [] if c in candidate["per_class"]] or list(candidate["per_class"])
    per_class = {name: candidate["per_class"][name] for name in names}
    html = (
        f"<p>Multi-class label: precision, recall, F1 and ROC AUC above are {escape(str(part.get('averaging')))} "
        f"averages; a row's prediction is its most probable class. Candidate's log loss "
        f"{escape(_num(candidate.get('log_loss')))}.</p><h3>Per class</h3>"
    )
    rows = [
        [
            escape(name),
            *(
                _num_cell(_with_ci(entry.get(m), (entry.get("ci") or {}).get(m), 3))
                for m in ("precision", "recall", "f1")
            ),
            _num_cell(escape(_num(entry.get("support")))),
        ]
        for name, entry in per_class.items()
    ]
    html += _table(["class", "precision", "recall", "F1", "support"], rows)
    matrix = candidate.get("confusion_matrix") or []
    if len(matrix) == len(names):
        rows = [
            [escape(name), *(_num_cell(escape(_num(v))) for v in row)] for name, row in zip(names, matrix, strict=True)
        ]
        html += "<h3>Confusion matrix (true class by predicted class)</h3>" + _table(
            ["true \\ predicted", *names], rows
        )
    return html


def _slices_html(part: dict[str, Any]) -> str:
    if not part.get("available"):
        return _unavailable(part)
    metric = part["metric"]
    if not part["slices"]:
        return "<p>No slices configured: list feature combinations under <code>slices</code> in the config.</p>"
    html = (
        f"<p>{escape(metric)} per group with its interval; groups under {part['min_slice_size']} test rows "
        "are shown but not gated.</p>"
    )
    per_class = part.get("classes") or []
    for name, rows in part["slices"].items():
        html += f"<h3>{escape(name)}</h3>" + interval_chart_svg(rows, metric, part["overall"])
        table_rows, classes = [], []
        for r in rows:
            diff = r.get("difference")
            table_rows.append(
                [
                    escape(r["group"]),
                    _num_cell(escape(_num(r["n"]))),
                    _num_cell(_with_ci(r["candidate"], r["candidate_ci"])),
                    _num_cell(_with_ci(r["live"], r["live_ci"]) if r["live"] is not None else "–"),
                    _num_cell(
                        escape(_signed(diff["point"])) + f' <span class="ci">{escape(_span(diff["ci"]))}</span>'
                        if diff
                        else "–"
                    ),
                    "gated" if r["sufficient"] else "too small",
                    # A multi-class run: the candidate's F1 on each class within the group.
                    *(_num_cell(escape(_num((r.get("per_class_f1") or {}).get(c), 3))) for c in per_class),
                ]
            )
            classes.append("" if r["sufficient"] else "small")
        head = ["group", "rows", f"candidate {metric}", f"live {metric}", "candidate − live", "gate"]
        html += (
            "<details><summary>the numbers</summary>"
            + _table([*head, *(f"F1 {c}" for c in per_class)], table_rows, classes)
            + "</details>"
        )
    return html


_GROUP_METRICS = (
    ("selection_rate", "selection rate"),
    ("true_positive_rate", "TPR"),
    ("false_positive_rate", "FPR"),
    ("false_negative_rate", "FNR"),
    ("precision", "precision"),
    ("roc_auc", "ROC AUC"),
)
_BETWEEN = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
)


def _figure(figure: dict[str, Any] | None) -> str:
    if not figure:
        return "–"
    html = _with_ci(figure.get("value"), figure.get("ci"), 3)
    groups = figure.get("groups")
    if groups:
        html += f'<br><span class="ci">{escape(" vs ".join(map(str, groups)))}</span>'
    return html


def _fairness_html(part: dict[str, Any]) -> str:
    attributes = ", ".join(part.get("protected_attributes") or []) or "none declared"
    if not part.get("available"):
        return f"<p>Protected attributes: {escape(attributes)}</p>" + _unavailable(part)
    html = (
        f"<p>Protected attributes: {escape(attributes)}; groups under {escape(str(part.get('min_group_size')))} "
        f"test rows are reported as too small and left out of the gaps; decision threshold "
        f"{escape(_num(part.get('threshold'), 2))}.</p>"
    )
    # A multi-class audit names its own per-group metrics (accuracy, each class's recall) and between-group figures.
    group_metrics = [(m, m) for m in part["group_metrics"]] if part.get("group_metrics") else list(_GROUP_METRICS)
    between_figures = tuple(part.get("between") or _BETWEEN)
    for name, entry in (part.get("attributes") or {}).items():
        html += f"<h3>{escape(name)}</h3>"
        rows, classes = [], []
        for group, g in (entry.get("groups") or {}).items():
            ci = g.get("ci") or {}
            small = "" if g.get("status") == "ok" else ' <span class="muted">(too small)</span>'
            rows.append(
                [
                    escape(group) + small,
                    _num_cell(escape(_num(g.get("size")))),
                    *(_num_cell(_with_ci(g.get(m), ci.get(m), 3)) for m, _ in group_metrics),
                ]
            )
            classes.append("" if g.get("status") == "ok" else "small")
        html += _table(["group", "rows", *(label for _, label in group_metrics)], rows, classes)
        if entry.get("too_small"):
            html += f"<p class='muted'>Too small to compare: {escape(', '.join(entry['too_small']))}</p>"
        if not entry.get("sufficient"):
            html += "<p class='muted'>Fewer than two groups large enough: no between-group figures.</p>"
            continue
        figures = [*between_figures, *((entry.get("candidate") or {}).get("largest_gaps") or {})]
        between = []
        for figure in figures:
            label = figure.replace("_", " ")
            if figure in between_figures:
                cand = (entry.get("candidate") or {}).get(figure)
                live = (entry.get("live") or {}).get(figure)
                change = (entry.get("candidate_minus_live") or {}).get(figure)
            else:
                label = f"largest {label} gap"
                cand = ((entry.get("candidate") or {}).get("largest_gaps") or {}).get(figure)
                live = ((entry.get("live") or {}).get("largest_gaps") or {}).get(figure)
                change = None
            between.append(
                [escape(label), _num_cell(_figure(cand)), _num_cell(_figure(live)), _num_cell(_figure(change))]
            )
        html += _table(["between groups", "candidate", "live", "candidate − live"], between)
    checks = part.get("checks")
    if checks:
        rows = [
            [
                escape(str(c.get("attribute"))),
                escape(str(c.get("name"))),
                f'<td class="{"pass" if c.get("success") else "fail"}">{"pass" if c.get("success") else "FAIL"}</td>',
                escape(str(c.get("severity"))),
                escape(str(c.get("detail"))),
            ]
            for c in checks
        ]
        html += "<h3>Fairness checks</h3>" + _table(["attribute", "check", "result", "severity", "detail"], rows)
    return html


def _error_analysis_html(part: dict[str, Any]) -> str:
    if not part.get("available"):
        return _unavailable(part)
    best = part.get("best_baseline")
    against = (
        f"; the best baseline ({best}) errs on {fmt_share(part.get('best_baseline_error_rate'))}"
        f", room {_signed(part.get('room'), 4)} of the error rate"
        if best
        else "; no baseline to compare with"
    )
    html = (
        f"<p>{escape(str(part.get('errors')))} errors in {escape(str(part.get('rows')))} test rows "
        f"({escape(fmt_share(part.get('error_rate')))}){escape(against)}. Ranked by the room for improvement: what "
        "the overall error rate would drop by if the candidate matched the best baseline on the tag.</p>"
    )
    rows = []
    tags = part.get("tags") or []
    for t in tags:
        rates = t.get("baseline_error_rates") or {}
        baseline = ", ".join(f"{k} {fmt_share(v)}" for k, v in rates.items() if v is not None) or "–"
        rows.append(
            [
                escape(str(t.get("tag"))),
                escape(f"{t.get('kind')}: {t.get('definition')}"),
                _num_cell(escape(_num(t.get("rows")))),
                _num_cell(escape(fmt_share(t.get("data_share")))),
                _num_cell(escape(fmt_share(t.get("error_rate")))),
                _num_cell(escape(fmt_share(t.get("error_share")))),
                escape(baseline),
                _num_cell(escape(_signed(t.get("room"), 4))),
            ]
        )
    if not rows:
        return html + "<p>No tags: configure <code>slices</code> or <code>tags</code> rules to see errors by group.</p>"
    head = ["tag", "defined by", "rows", "share of data", "error rate", "share of errors", "baselines' errors", "room"]
    html += _table(head, rows[:TOP_TAGS])
    if len(rows) > TOP_TAGS:
        rest = len(rows) - TOP_TAGS
        html += f"<details><summary>{rest} more tags</summary>{_table(head, rows[TOP_TAGS:])}</details>"
    return html


def _gate_html(part: dict[str, Any]) -> str:
    if not part.get("available"):
        return _unavailable(part)
    colour = {"PROMOTE": "#2e7d32", "RETRAIN": "#1565c0"}.get(part["action"], "#b26a00")
    forced = ""
    if part.get("forced"):
        who = f"forced by {part.get('forced_by') or 'an operator'}: {part.get('force_reason') or 'no reason given'}"
        forced = " " + _badge(who, "#6a1b9a")
    html = (
        f"<p>{_badge(part['action'], colour)}{forced} {part['passed']} of {part['passed'] + part['failed']} checks "
        f"passed; attempt {escape(str(part.get('attempt')))}; compared with the live model "
        f"{escape(str(part.get('live_version') or 'none'))}.</p>"
    )
    html += _list(part.get("reasons") or [])
    rows = [
        [
            escape(str(c.get("family") or c.get("kind"))),
            escape(str(c.get("name"))),
            f'<td class="{"pass" if c.get("passed") else "fail"}">{"pass" if c.get("passed") else "FAIL"}</td>',
            escape(str(c.get("detail"))),
        ]
        for c in part.get("checks") or []
    ]
    if rows:
        html += _table(["family", "check", "result", "detail"], rows)
    notes = part.get("notes") or []
    small = [n["detail"] for n in notes if n.get("kind") == NoteKind.SMALL_SLICE]
    other = [f"{n.get('kind')}: {n.get('detail')}" for n in notes if n.get("kind") != NoteKind.SMALL_SLICE]
    if other:
        html += "<h3>Notes</h3>" + _list(other)
    if small:
        html += f"<details><summary>{len(small)} slices too small to gate</summary>{_list(small)}</details>"
    return html


def _deployment_html(part: dict[str, Any]) -> str:
    html = f"<p>{escape(part['message'])}</p>"
    if part.get("events"):
        rows = [
            [
                escape(str(e.get("action"))),
                escape(str(e.get("version"))),
                escape(f"{e.get('from') or '–'} → {e.get('to')}"),
                escape(str(e.get("run_id"))),
                escape(str(e.get("at"))),
            ]
            for e in part["events"]
        ]
        html += _table(["event", "version", "slot", "run", "at"], rows)
    return html


def render_html(card: dict[str, Any]) -> str:
    """The card as one standalone HTML page (a pure function of ``build_card``'s dict)."""
    base = Path(card["run_dir"]) / CARD_DIR
    bodies = {
        "outcome": _outcome_html(card),
        "data": _data_html(card["data"]),
        "validation": _validation_html(card["validation"], base),
        "drift": _drift_html(card["drift"], base),
        "splits": _splits_html(card["splits"]),
        "training": _training_html(card["training"]),
        "metrics": _metrics_html(card["metrics"]),
        "slices": _slices_html(card["slices"]),
        "fairness": _fairness_html(card["fairness"]),
        "error_analysis": _error_analysis_html(card["error_analysis"]),
        "gate": _gate_html(card["gate"]),
        "deployment": _deployment_html(card["deployment"]),
    }
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS)
    sections = "".join(
        f'<section class="part" id="{key}"><h2>{escape(title)}</h2>{bodies[key]}</section>' for key, title in SECTIONS
    )
    title = f"Run card {card['config']} {card['ds']}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{BASE_STYLE}{_CARD_STYLE}</style></head><body>"
        f"<h1>Run card: {escape(card['config'])}, D = {escape(card['ds'])}</h1>"
        f'<p class="meta">{escape(card["run_dir"])}</p><nav>{nav}</nav>{sections}</body></html>'
    )


def write_card(config: Config, ds: date) -> Path:
    """Build D's card and write ``run_card.json`` and ``run_card.html`` together (temp folder, then rename).

    Returns:
        The path of the HTML page.
    """
    card = build_card(config, ds)
    final = card_dir(config, ds)
    with atomic_dir(final) as tmp:
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
        (tmp / CARD_HTML).write_text(render_html(card))
    return card_path(config, ds)
