"""Concept drift with a real live model: its new rows only, an interval against its offline metric, a verdict."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, ingest_and_validate, write_config

from pipelines.core.artifacts import write_json_atomic
from pipelines.core.config import METRICS, load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import Action, ConceptVerdict, Decision, GateRecord, NoteKind
from pipelines.core.deployment_state import live_version
from pipelines.core.outputs import (
    SOURCE_DS,
    EvaluationOutput,
    GateOutput,
    IngestOutput,
    TrainOutput,
    TransformOutput,
)
from pipelines.core.tracking import client, experiment_id
from pipelines.data.demo import write_partitions
from pipelines.data.ingest import ingest_window
from pipelines.decision.gate import decide
from pipelines.deployment.promote import promote_blue_green
from pipelines.evaluation.concept import OfflinePerformance, check_concept_drift, concept_drift, offline_performance
from pipelines.evaluation.evaluate import evaluate_model
from pipelines.features.transform import transform_features
from pipelines.model.train import train_model
from pipelines.reporting.summary import render

LIVE_DS = "2026-01-03"  # SMALL's 3-day window: the live model trained on 01..03 of six 800-row days


@pytest.fixture(scope="module")
def live(tmp_path_factory, adult_frame):
    """A real model trained and evaluated on 01..03 and promoted; its first evaluation had no live model."""
    tmp = tmp_path_factory.mktemp("concept")
    path = write_config(tmp, SMALL)
    write_partitions(adult_frame, load_config(path), date(2026, 1, 1), rows_per_day=800, days=6)
    ctx = RunContext.create(path, LIVE_DS)
    transform_uri = transform_features(ctx, *ingest_and_validate(ctx))
    train_uri = train_model(ctx, transform_uri)
    first_evaluation = EvaluationOutput(evaluate_model(ctx, transform_uri, train_uri)).report()
    gate = GateOutput(tmp / "gate")
    write_json_atomic(gate.decision_path, GateRecord(Decision(Action.PROMOTE, ["test"]), 1, None).to_dict())
    ctx.write_metadata(gate.path, "gate", "gate-live")
    promote_blue_green(ctx, train_uri, transform_uri, str(gate.uri))
    return ctx.config, live_version(ctx.config), first_evaluation, train_uri


@pytest.fixture(scope="module")
def windows(live):
    """The ingested 3-day windows ending at 01-05 (03..05) and 01-06 (04..06), with their SOURCE_DS."""
    config = live[0]
    return {
        day: IngestOutput(ingest_window(RunContext.create(config, f"2026-01-{day}"))).read_snapshot()
        for day in ("05", "06")
    }


@pytest.fixture(scope="module")
def same(live, windows):
    """The live model's offline performance, and its report on 04..06: new days from the same distribution."""
    config, record, _, _ = live
    offline = offline_performance(config, record.mlflow_run_id)
    return offline, concept_drift(windows["06"], record, offline, config)


def flip(rows: pd.DataFrame, share: float, label: str, positive: str) -> pd.DataFrame:
    """The same features with the label of ``share`` of the rows flipped: the concept changed, the data did not."""
    negative = next(v for v in rows[label].astype(object).unique() if v != positive)
    flipped = np.random.default_rng(0).random(len(rows)) < share
    is_positive = (rows[label].astype(object) == positive).to_numpy()
    return rows.assign(**{label: np.where(is_positive ^ flipped, positive, negative)})


def test_the_first_evaluation_reports_no_live_model(live, tmp_path):
    config, _, first_evaluation, _ = live

    assert first_evaluation["concept_drift"]["verdict"] == ConceptVerdict.NO_LIVE_MODEL
    report = check_concept_drift(config, TransformOutput(tmp_path / "absent"), None)  # reads nothing
    assert report == {"verdict": "no_live_model", "message": "no live model: concept drift not checked"}


def test_offline_performance_is_what_the_live_model_scored_on_its_own_test_split(live):
    config, record, first_evaluation, _ = live

    offline = offline_performance(config, record.mlflow_run_id)

    candidate = first_evaluation["overall"]["candidate"]
    assert offline.metrics == pytest.approx({m: candidate[m] for m in METRICS})
    assert offline.intervals["roc_auc"] == candidate["ci"]["roc_auc"] and offline.rows == candidate["n"]
    assert offline.source == f"MLflow run {record.mlflow_run_id}"
    assert offline_performance(config, None) is None
    assert offline_performance(config, "0" * 32) is None, "a run that does not exist is unknown, not an error"


def test_a_run_with_metrics_but_no_evaluation_report_has_no_offline_interval(live):
    config = live[0]
    mlflow_client = client(config)
    run = mlflow_client.create_run(experiment_id(config)).info.run_id
    mlflow_client.log_metric(run, "test_roc_auc", 0.9)
    bare = mlflow_client.create_run(experiment_id(config)).info.run_id

    assert offline_performance(config, run) == OfflinePerformance({"roc_auc": 0.9}, {}, None, f"MLflow run {run}")
    assert offline_performance(config, bare) is None


def test_same_distribution_on_new_days_is_stable(live, windows, same):
    config, record, _, _ = live
    rows, (offline, report) = windows["06"], same  # 04..06: all after the live model's data

    assert report["verdict"] == ConceptVerdict.STABLE, report["message"]
    assert report["rows"] == len(rows) == 2400 and report["days"] == ["2026-01-04", "2026-01-05", "2026-01-06"]
    low, high = report["interval"]
    assert low <= report["value"] <= high and report["offline_interval"] == offline.intervals["roc_auc"]
    point, (d_low, d_high) = report["difference"]["point"], report["difference"]["ci"]
    assert point == pytest.approx(report["value"] - offline.metrics["roc_auc"], abs=1e-6)
    assert d_low < point < d_high and d_high >= -config.thresholds.gate.max_regression
    assert report["offline"] == asdict(offline) and report["live_version"] == record.version
    assert report["message"].startswith(f"live model {record.version}'s roc_auc on 2,400 rows from 2026-01-04..")
    assert report["message"].endswith("is not wholly below -0.01: stable")
    json.dumps(report)  # goes into the evaluation report as it is


def test_an_offline_value_without_its_interval_is_taken_as_exact(live, windows, same):
    config, record, _, _ = live
    offline, with_interval = same
    exact = OfflinePerformance(offline.metrics, source=offline.source)

    report = concept_drift(windows["06"], record, exact, config)

    reference, (low, high) = offline.metrics["roc_auc"], report["interval"]
    assert report["difference"]["ci"] == pytest.approx([low - reference, high - reference], abs=1e-6)
    assert report["offline_interval"] is None
    assert "offline (its interval is not on record: taken as exact)" in report["message"]
    wider, narrower = with_interval["difference"]["ci"], report["difference"]["ci"]
    assert wider[0] < narrower[0] and narrower[1] < wider[1], "the offline estimate's own uncertainty widens it"


def test_only_rows_dated_after_the_live_models_data_are_used(live, windows):
    config, record, _, _ = live
    rows = windows["05"]  # 03..05: day 03 was in the live model's window

    report = concept_drift(rows, record, offline_performance(config, record.mlflow_run_id), config)

    after = rows[rows[SOURCE_DS].astype(str) > LIVE_DS]
    assert report["window_rows"] == len(rows) == 2400
    assert report["rows"] == len(after) == 1600 and report["days"] == ["2026-01-04", "2026-01-05"]
    assert report["current"]["n"] == 1600
    assert "on 1,600 rows from 2026-01-04..2026-01-05" in report["message"]


def test_flipped_labels_on_the_same_features_are_concept_drift_and_a_gate_note(live, windows):
    config, record, first_evaluation, _ = live
    schema = config.data_schema
    rows = flip(windows["06"], 0.3, schema.label.name, schema.label.positive)
    offline = offline_performance(config, record.mlflow_run_id)

    report = concept_drift(rows, record, offline, config)

    assert report["verdict"] == ConceptVerdict.DRIFT, report["message"]
    assert report["difference"]["ci"][1] < -config.thresholds.gate.max_regression
    assert report["interval"][1] < offline.intervals["roc_auc"][0], "the two intervals do not even overlap"
    assert report["message"].endswith("is wholly below -0.01: concept drift")
    noted = decide({**first_evaluation, "concept_drift": report}, config.thresholds.gate)
    plain = decide(first_evaluation, config.thresholds.gate)
    [note] = [n for n in noted.notes if n.kind is NoteKind.CONCEPT_DRIFT]
    assert note.detail == report["message"]
    assert noted.action == plain.action and not any(n.kind is NoteKind.CONCEPT_DRIFT for n in plain.notes)


@pytest.mark.parametrize(
    ("pick", "positives", "words"),
    [
        (lambda rows, y: rows.iloc[:150], None, "only 150 of the window's 950 rows are dated after"),
        (lambda rows, y: rows[~y].iloc[:300], 0, "the 300 rows after"),
        (lambda rows, y: rows[y].iloc[:300], 300, "hold one class only (300 positive)"),
    ],
    ids=["too-few-new-rows", "negatives-only", "positives-only"],
)
def test_too_few_new_rows_or_one_class_is_insufficient_data(live, windows, pick, positives, words):
    config, record, _, _ = live
    full = windows["05"]
    old, new = full[full[SOURCE_DS].astype(str) <= LIVE_DS], full[full[SOURCE_DS].astype(str) > LIVE_DS]
    y = (new[config.data_schema.label.name].astype(object) == ">50K").to_numpy()
    rows = pd.concat([old, pick(new, y)])  # 800 old rows (not new to the live model) + the picked new ones

    report = concept_drift(rows, record, OfflinePerformance({"roc_auc": 0.9}), config)

    assert report["verdict"] == ConceptVerdict.INSUFFICIENT_DATA
    assert report["rows"] == len(rows) - 800 and report["window_rows"] == len(rows)
    assert words in report["message"] and "not judged" in report["message"]
    if positives is not None:
        assert report["positives"] == positives
    assert "interval" not in report


@pytest.mark.parametrize(
    "offline", [None, OfflinePerformance({"accuracy": 0.85})], ids=["no-run-metrics", "no-primary-metric"]
)
def test_unknown_offline_performance_is_said_not_guessed(live, windows, offline):
    config, record, _, _ = live

    report = concept_drift(windows["06"], record, offline, config)

    assert report["verdict"] == ConceptVerdict.UNKNOWN
    assert report["difference"] is None and report["interval"][0] <= report["value"] <= report["interval"][1]
    assert f"its offline roc_auc is unknown (no test_roc_auc on MLflow run {record.mlflow_run_id})" in report["message"]


def test_evaluate_reports_it_and_the_summary_shows_it(live):
    config, record, _, train_uri = live
    ctx = RunContext.create(config, LIVE_DS)
    transform_uri = TrainOutput(train_uri).metadata()["inputs"]["transform"]["uri"]
    offline = offline_performance(config, record.mlflow_run_id)

    # The live model's own window, evaluated again now that it is live: every row is in-sample for it.
    full = EvaluationOutput(evaluate_model(ctx, transform_uri, train_uri)).report()
    report = full["concept_drift"]

    assert report["verdict"] == ConceptVerdict.INSUFFICIENT_DATA and report["live_version"] == record.version
    assert report["rows"] == 0 and report["window_rows"] == 2400, "train and test splits read, none after 01-03"
    assert report["offline"] == asdict(offline)
    assert f"  concept    {report['message']}" in render(config, ctx.ds).splitlines()
    # Beside the candidate: the live model, the trivial baseline and a logistic regression on the same split.
    rows = full["baselines"]["rows"]
    assert all(rows[name]["available"] for name in ("live", "trivial", "simple_model"))
    assert rows["trivial"]["metrics"]["roc_auc"] == 0.5 and 0.8 < rows["simple_model"]["metrics"]["roc_auc"] < 1.0
    tags = {t["tag"]: t for t in full["error_analysis"]["tags"]}
    assert {"sex=Female", "sex=Male", "young"} <= set(tags)
    assert tags["sex=Female"]["rows"] + tags["sex=Male"]["rows"] == full["test_rows"]
    assert sum(tags[s]["errors"] for s in ("sex=Female", "sex=Male")) == full["error_analysis"]["errors"]


def test_evaluation_streams_the_test_split_and_gives_the_same_report(live, monkeypatch):
    """Scored batch by batch (97 rows here) with only the columns the report reads kept, the report is the one
    scored in one batch; the simple baseline fit on an even sample of the train split still beats the trivial one."""
    from pipelines.evaluation import evaluate

    config, _, _, train_uri = live
    ctx = RunContext.create(config, LIVE_DS)
    transform_uri = TrainOutput(train_uri).metadata()["inputs"]["transform"]["uri"]
    whole = EvaluationOutput(evaluate_model(ctx, transform_uri, train_uri)).report()

    monkeypatch.setattr(evaluate, "SNAPSHOT_BATCH_ROWS", 97)
    assert EvaluationOutput(evaluate_model(ctx, transform_uri, train_uri)).report() == whole
    assert set(evaluate.evaluation_columns(config)) == {"income", "sex", "race", "age", "hours_per_week",
        "capital_gain", "capital_loss", "workclass", "education", "native_country", "marital_status"}  # fmt: skip

    train_raw = TransformOutput(transform_uri).train_raw
    sample = evaluate.sample_rows(train_raw, 500)
    assert 400 <= len(sample) <= 500 + len(pd.read_parquet(train_raw)) // 97 + 1
    assert sample[SOURCE_DS].nunique() == 3, "spread over the window's days, not its first rows"
    monkeypatch.setattr(evaluate, "SIMPLE_MODEL_ROWS", 500)
    simple = EvaluationOutput(evaluate_model(ctx, transform_uri, train_uri)).report()["baselines"]["rows"]
    assert 0.75 < simple["simple_model"]["metrics"]["roc_auc"] < 1.0


def test_given_only_the_new_rows_the_message_counts_the_whole_window(live, windows):
    config, record, _, _ = live
    full = windows["05"]
    new = full[full[SOURCE_DS].astype(str) > LIVE_DS].iloc[:40]  # as check_concept_drift reads them

    report = concept_drift(new, record, OfflinePerformance({"roc_auc": 0.9}), config, window_rows=len(full))

    assert f"only 40 of the window's {len(full):,} rows are dated after" in report["message"]
