"""The run card, rendered from real runs: every section there, carrying the run's own numbers, offline, rebuilt
identically, and a card that says why when the run stopped early."""

from __future__ import annotations

import json
import re
from datetime import date
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, write_config

from pipelines.cli import main
from pipelines.core.artifacts import read_metadata, run_dir
from pipelines.core.config import METRICS, load_config
from pipelines.core.context import RunContext
from pipelines.core.deployment_state import read_state
from pipelines.core.outputs import EvaluationOutput, GateOutput, TransformOutput, ValidationOutput
from pipelines.data.demo import write_partitions
from pipelines.data.ingest import IngestError
from pipelines.data.validate import ValidationFailed
from pipelines.evaluation.fairness import audit
from pipelines.evaluation.metrics import positives
from pipelines.reporting import card as card_module
from pipelines.reporting.card import CARD_JSON, SECTIONS, build_card, card_dir, card_path, render_html, stopped_at
from pipelines.runner import run_pipeline

FIRST, SECOND, BLOCKED = date(2026, 1, 3), date(2026, 1, 6), date(2026, 1, 7)  # SMALL's 3-day windows
NO_DATA = date(2026, 2, 1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, adult_frame):
    """Seven days of Adult; FIRST promoted to blue, SECOND gated against it (green), BLOCKED fails validation."""
    tmp = tmp_path_factory.mktemp("card")
    path = write_config(tmp, SMALL)
    config = load_config(path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=7)
    partition = config.data.root / f"ds={BLOCKED.isoformat()}" / "part-0.csv"
    lines = partition.read_text().splitlines()
    column = lines[0].split(",").index("age")
    rows = [line.split(",") for line in lines[1:]]
    for row in rows:  # far outside the declared 17..90
        row[column] = str(float(row[column]) + 100)
    partition.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    for ds in (FIRST, SECOND):
        run_pipeline(RunContext.create(config, ds))
    with pytest.raises(ValidationFailed):
        run_pipeline(RunContext.create(config, BLOCKED))
    return path, config


def read_card(config, ds: date) -> tuple[str, dict]:
    return card_path(config, ds).read_text(), json.loads((card_dir(config, ds) / CARD_JSON).read_text())


def section(html: str, key: str) -> str:
    """The HTML of one section of the card."""
    match = re.search(rf'<section class="part" id="{key}">(.*?)</section>', html, re.S)
    assert match, f"no section {key}"
    return match.group(1)


def stage(config, ds: date, name: str) -> Path:
    return run_dir(config.artifact_root, ds) / name


CHAIN = ("ingest", "drift", "validate", "transform", "train", "evaluate", "gate")


@pytest.mark.parametrize(
    ("written", "failed", "stage", "consequence"),
    [
        ((), None, "ingest", "no data was read and no model was trained"),
        (("ingest",), "ingest", "ingest", "no data was read and no model was trained"),
        (("ingest",), None, "drift", "no model was trained"),  # the local runner checks drift first
        (("ingest", "drift", "validate"), "validate", "validate", "no model was trained"),
        (("ingest", "drift", "validate", "transform"), None, "train", "no model was trained"),
        (("ingest", "validate", "transform", "train", "evaluate"), None, "drift", "no decision was made"),  # DAG
        (CHAIN[:-1], None, "gate", "no decision was made"),
        (CHAIN, None, None, None),
    ],
)
def test_where_a_run_stopped_is_the_first_output_its_decision_lacks(written, failed, stage, consequence):
    stages = {name: {"status": "failed" if name == failed else "succeeded", "problems": ["bad"]} for name in written}

    stop = stopped_at(stages, {})

    assert (stop and stop["stage"], stop and stop["consequence"]) == (stage, consequence)
    assert stop is None or stop["blocked"] is (failed is not None)
    if failed == "ingest":
        assert stop["reason"] == "ingest blocked the run: bad"


def test_an_out_of_date_output_is_named_as_where_the_run_stopped():
    stop = stopped_at({"ingest": {"status": "succeeded"}}, {"drift": "was made from a snapshot that was replaced"})

    assert stop["stage"] == "drift" and "out of date (was made from a snapshot that was replaced)" in stop["reason"]


@pytest.mark.parametrize("ds", [FIRST, SECOND, BLOCKED], ids=str)
def test_every_run_writes_a_card_with_every_section_in_html_and_json(runs, ds):
    config = runs[1]

    html, card = read_card(config, ds)

    for key, title in SECTIONS:
        assert f"<h2>{escape(title)}</h2>" in section(html, key)
        assert key in card, key
    assert card["ds"] == ds.isoformat() and card["config"] == config.name
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")


def test_the_card_carries_the_runs_numbers(runs):
    config = runs[1]
    html, card = read_card(config, SECOND)
    evaluation = EvaluationOutput(stage(config, SECOND, "evaluate")).report()
    overall = evaluation["overall"]

    metrics = section(html, "metrics")
    for who in ("candidate", "live"):
        for m in METRICS:
            assert f"{overall[who][m]:.4f}" in metrics, (who, m)
            assert card["metrics"]["models"][who]["values"][m] == overall[who][m]
        low, high = overall[who]["ci"]["roc_auc"]
        assert f"[{low:.3f}, {high:.3f}]" in metrics
    for name, row in evaluation["baselines"]["rows"].items():
        if row["available"] and name != "candidate":
            assert f"{row['metrics']['roc_auc']:.4f}" in metrics, name
            assert card["metrics"]["baselines"][name]["metrics"] == row["metrics"]
    difference = overall["difference"]["roc_auc"]
    assert f"{difference['point']:+.4f}" in metrics

    record = GateOutput(stage(config, SECOND, "gate")).record()
    gate = section(html, "gate")
    assert f">{record.decision.action}<" in gate and card["gate"]["action"] == record.decision.action
    for check in record.decision.checks:
        assert escape(check.detail) in gate, check.name
    assert [c["detail"] for c in card["gate"]["checks"]] == [c.detail for c in record.decision.checks]
    assert escape(record.decision.reasons[0]) in section(html, "outcome")

    lineage = section(html, "data")
    ingest = read_metadata(stage(config, SECOND, "ingest"))
    assert [p["sha256"] for p in card["data"]["partitions"]] == [p["sha256"] for p in ingest["partitions"]]
    for partition in ingest["partitions"]:
        assert partition["ds"] in lineage and partition["sha256"][:12] in lineage
    for name in ("ingest", "drift", "validate", "transform", "train", "evaluate", "gate"):
        fingerprint = read_metadata(stage(config, SECOND, name))["fingerprint"]
        assert fingerprint[:12] in lineage and card["data"]["stages"][name]["fingerprint"] == fingerprint
    assert card["data"]["code_version"] == [ingest["code_version"]] and ingest["code_version"] in lineage
    assert card["data"]["config_hash"] == [config.fingerprint] and config.fingerprint in lineage
    assert f"{ingest['rows']:,} from 3 of 3 days" in lineage

    transform = read_metadata(stage(config, SECOND, "transform"))
    splits = section(html, "splits")
    assert f"{transform['train_rows']:,}" in splits and f"{transform['test_rows']:,}" in splits
    share = transform["test_rows"] / (transform["train_rows"] + transform["test_rows"])
    assert card["splits"]["splits"]["test"]["share"] == pytest.approx(share, abs=1e-6)
    test_rows = pd.read_parquet(TransformOutput(stage(config, SECOND, "transform")).test_raw)
    assert card["splits"]["splits"]["test"]["positive_share"] == pytest.approx(
        positives(test_rows, config.data_schema).mean(), abs=1e-6
    )
    max_gap = TransformOutput(stage(config, SECOND, "transform")).split_report()["max_gap"]
    top = card["splits"]["gaps"][0]
    assert (top["column"], top["value"], top["gap"]) == (max_gap["column"], max_gap["value"], max_gap["gap"])
    assert f"<td>{escape(top['value'])}</td>" in splits and f"{max_gap['gap'] * 100:.1f} pp" in splits

    train = read_metadata(stage(config, SECOND, "train"))
    training = section(html, "training")
    assert card["training"]["history"] == train["history"] and card["training"]["epochs"] == 3
    assert f"loss ({train['history']['loss'][-1]:.4f})" in training and training.count("<svg") == 2
    assert train["mlflow_run_id"] in training

    drift = json.loads((stage(config, SECOND, "drift") / "drift.json").read_text())
    drift_html = section(html, "drift")
    assert f">{drift['verdict']}<" in drift_html and escape(drift["summary"]) in drift_html
    assert all(f"<td>{feature}</td>" in drift_html for feature in drift["features"])
    assert escape(evaluation["concept_drift"]["message"]) in drift_html

    slices = section(html, "slices")
    assert slices.count("<svg") == len(config.slices) == len(card["slices"]["slices"])
    for name, groups in evaluation["slices"].items():
        assert f"<h3>{escape(name)}</h3>" in slices
        for group, entry in groups.items():
            assert f"{escape(group)} (n={entry['candidate']['n']})" in slices
            if entry["candidate"]["roc_auc"] is not None:
                assert f"{entry['candidate']['roc_auc']:.4f}" in slices

    analysis = section(html, "error_analysis")
    top = evaluation["error_analysis"]["tags"][0]
    assert f"<td>{escape(top['tag'])}</td>" in analysis and card["error_analysis"]["tags"][0] == top
    assert f"{evaluation['error_analysis']['errors']} errors in {evaluation['test_rows']} test rows" in analysis

    validation = ValidationOutput(stage(config, SECOND, "validate")).result()
    assert f"{validation['evaluated']} expectations, 0 failed" in section(html, "validation")

    state = read_state(config)
    deployment = section(html, "deployment")
    assert card["outcome"]["kind"] == card["deployment"]["outcome"] == "promoted"
    assert f"promoted to the green slot as {state.live_record.version}" in deployment
    assert card["deployment"]["events"] == [e.to_dict() for e in state.history if e.ds == SECOND.isoformat()]


def test_the_first_run_had_no_live_model_to_stand_beside(runs):
    config = runs[1]
    html, card = read_card(config, FIRST)

    assert "live" not in card["metrics"]["models"] and card["metrics"]["baselines"]["live"]["available"] is False
    assert '<td class="muted">none</td>' in section(html, "metrics")
    assert "(first model: no live model)" in section(html, "gate")
    assert "compared with the live model none" in section(html, "gate")
    assert card["drift"]["verdict"] == "no_reference"
    assert card["deployment"]["slot"] == "blue" and card["deployment"]["events"][0]["to"] == "blue"


def test_fairness_shows_what_the_evaluation_holds(runs):
    config = runs[1]
    html, card = read_card(config, SECOND)
    evaluation = EvaluationOutput(stage(config, SECOND, "evaluate")).report()

    fairness = section(html, "fairness")
    assert "Protected attributes: sex, race, age" in fairness
    if "fairness" in evaluation:
        assert card["fairness"]["available"] is True
        assert all(f"<h3>{escape(name)}</h3>" in fairness for name in evaluation["fairness"]["attributes"])
    else:
        assert card["fairness"]["available"] is False and "not computed" in fairness


def test_a_fairness_audit_in_the_evaluation_is_tabled_per_group_with_its_gaps(runs, monkeypatch):
    config = runs[1]
    test_rows = pd.read_parquet(TransformOutput(stage(config, SECOND, "transform")).test_raw)
    y = positives(test_rows, config.data_schema)
    rng = np.random.default_rng(0)
    p = np.clip(0.6 * y + rng.normal(0.2, 0.2, len(y)), 0, 1)
    report = audit(test_rows, y, p, config, live_p=np.clip(p + rng.normal(0, 0.05, len(y)), 0, 1))
    real_collect = card_module.collect

    def with_audit(config, ds):
        run = real_collect(config, ds)
        run["evaluation"]["fairness"] = report
        return run

    monkeypatch.setattr(card_module, "collect", with_audit)
    card = build_card(config, SECOND)
    fairness = section(render_html(card), "fairness")

    assert card["fairness"]["available"] is True and card["fairness"]["attributes"] == report["attributes"]
    sex = report["attributes"]["sex"]
    for group, entry in sex["groups"].items():
        assert f"<td>{escape(group)}</td>" in fairness
        assert f"{entry['false_positive_rate']:.3f}" in fairness
    odds = sex["candidate"]["equalized_odds_difference"]
    assert f"{odds['value']:.3f}" in fairness and escape(" vs ".join(odds["groups"])) in fairness
    change = sex["candidate_minus_live"]["equalized_odds_difference"]
    assert f"{change['value']:.3f}" in fairness
    for name, entry in report["attributes"].items():
        assert f"<h3>{escape(name)}</h3>" in fairness
        if entry["too_small"]:
            assert escape(", ".join(entry["too_small"])) in fairness


def test_a_blocked_run_gets_a_card_that_says_why_and_what_did_not_happen(runs):
    config = runs[1]
    html, card = read_card(config, BLOCKED)
    result = ValidationOutput(stage(config, BLOCKED, "validate")).result()

    assert card["outcome"]["kind"] == "blocked" and card["stopped"]["stage"] == "validate"
    assert card["outcome"]["text"].startswith("validation blocked the run: " + result["blocked"][0])
    assert card["outcome"]["text"].endswith("; no model was trained")
    assert escape(result["blocked"][-1]) in section(html, "outcome")
    validation = section(html, "validation")
    assert "FAILED: blocked the run" in validation and "expect_column_values_to_be_between" in validation
    assert card["validation"]["failed_expectations"][0]["column"] == "age"
    assert card["drift"]["available"] is True, "drift ran before validation blocked"
    for key in ("splits", "training", "metrics", "slices", "fairness", "error_analysis", "gate"):
        assert card[key]["available"] is False, key
        assert "validation blocked the run; no model was trained" in section(html, key), key
    assert card["deployment"]["outcome"] == "not_deployed"
    assert "nothing deployed: validation blocked the run" in section(html, "deployment")


def test_a_run_that_stopped_before_writing_anything_still_gets_a_card(runs):
    config = runs[1]

    with pytest.raises(IngestError, match="no partition"):
        run_pipeline(RunContext.create(config, NO_DATA))

    html, card = read_card(config, NO_DATA)
    assert card["outcome"]["kind"] == "stopped" and card["stopped"]["stage"] == "ingest"
    assert "the run stopped before ingest wrote its output" in section(html, "outcome")
    assert "no data was read and no model was trained" in section(html, "data")


def test_a_card_that_cannot_be_written_never_hides_the_stage_error(runs, monkeypatch, caplog):
    config = runs[1]

    def broken(config, ds):
        raise OSError("disk full")

    monkeypatch.setattr("pipelines.runner.write_card", broken)
    with pytest.raises(IngestError, match="no partition"):
        run_pipeline(RunContext.create(config, NO_DATA))
    assert "could not write the run card" in caplog.text and "disk full" in caplog.text


@pytest.mark.parametrize("ds", [SECOND, BLOCKED], ids=str)
def test_the_cli_rebuilds_the_card_identically_from_the_artifacts(runs, ds, capsys):
    path, config = runs
    before = {name: (card_dir(config, ds) / name).read_bytes() for name in ("run_card.html", CARD_JSON)}

    assert main(["card", "--config", str(path), "--date", ds.isoformat()]) == 0

    assert capsys.readouterr().out.strip() == str(card_path(config, ds))
    assert {name: (card_dir(config, ds) / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in run_dir(config.artifact_root, ds).glob(".card.*") if p.suffix != ".lock") == []


@pytest.mark.parametrize("ds", [FIRST, SECOND, BLOCKED], ids=str)
def test_the_page_opens_offline_and_links_only_into_the_runs_artifacts(runs, ds):
    config = runs[1]
    html = card_path(config, ds).read_text()

    assert not re.search(r"https?://", html), "no CDN, no remote resource, nothing fetched"
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(", html, re.I)
    links = re.findall(r'href="([^"#][^"]*)"', html)
    assert links, "the drift report and Data Docs are linked"
    for link in links:
        assert not Path(link).is_absolute() and (card_dir(config, ds) / link).resolve().exists(), link


def test_every_string_from_the_artifacts_is_escaped(runs):
    config = runs[1]
    card = json.loads((card_dir(config, SECOND) / CARD_JSON).read_text())
    card["config"] = "<script>alert(1)</script>"
    card["gate"]["checks"][0]["detail"] = 'a "quoted" <b>detail</b> & more'
    card["slices"]["slices"]["sex"][0]["group"] = "sex=<img src=x>"
    card["error_analysis"]["tags"][0]["tag"] = "<i>tag</i>"

    html = render_html(card)

    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &quot;quoted&quot; &lt;b&gt;detail&lt;/b&gt; &amp; more" in html
    assert "<img" not in html and "sex=&lt;img src=x&gt;" in html
    assert "<i>tag</i>" not in html and "&lt;i&gt;tag&lt;/i&gt;" in html
