"""Monitoring on synthetic router logs with known answers: software, input, output and performance metrics,
drift through the training pipeline's check, alarms at their limits, idempotent reports, torn lines, the
report's page over several intervals, and the Grafana dashboard against the metrics the servers expose."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, write_config
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from sklearn.metrics import roc_auc_score

from pipelines.core.config import load_config
from pipelines.core.contracts import ConceptVerdict, DriftVerdict
from pipelines.core.deployment_state import (
    DeploymentState,
    Event,
    EventKind,
    Slot,
    SlotRecord,
    state_lock,
    write_state,
)
from pipelines.core.prediction_log import FEEDBACK, PREDICTIONS, LogWriter, hour_dir
from pipelines.core.tracking import client, experiment_id
from pipelines.monitoring.alarms import Alarm, AlarmName, Severity, alarms
from pipelines.monitoring.metrics import monitor
from pipelines.monitoring.report import REPORT_HTML, REPORT_JSON, interval_dir, write_report
from pipelines.serving.router import create_app
from pipelines.serving.server import SlotModel

START = datetime(2026, 1, 28, 14, tzinfo=UTC)
END = START + timedelta(hours=1)
NOW = END + timedelta(hours=2)  # labels arrive up to an hour after the interval; the cut-off is later
REQUESTS = 1000
DASHBOARD = REPO / "docker" / "grafana" / "ct-serving.json"


def population(config, n: int, seed: int, hours_shift: float = 0.0) -> pd.DataFrame:
    """Adult-shaped rows: every numeric feature inside its schema range, every category a schema value."""
    rng = np.random.default_rng(seed)
    columns = {}
    for feature in config.data_schema.features:
        if feature.kind == "numeric":
            low, high = feature.min, feature.max
            values = rng.normal(low + 0.4 * (high - low), 0.12 * (high - low), n)
            if feature.name == "hours_per_week":
                values = values + hours_shift
            columns[feature.name] = values.clip(low, high).round()
        else:
            weights = 0.6 ** np.arange(len(feature.values))
            columns[feature.name] = rng.choice(feature.values, n, p=weights / weights.sum())
    label = config.data_schema.label
    columns[label.name] = np.where(rng.random(n) < 0.25, label.positive, label.values[0])
    return pd.DataFrame(columns)


def live_model(config, tmp: Path, mlflow_run_id: str | None = None) -> SlotRecord:
    """v1 live in blue (its training rows on disk), v2 standby in green."""
    reference = tmp / "reference.parquet"
    population(config, 2000, seed=1).to_parquet(reference)
    records = {
        slot: SlotRecord(version, str(tmp / f"model-{version}"), str(reference), "2026-01-14", f"run-{version}", run)
        for slot, version, run in ((Slot.BLUE, "v1", mlflow_run_id), (Slot.GREEN, "v2", None))
    }
    promoted = Event(EventKind.PROMOTE, None, Slot.BLUE, "v1", "2026-01-14", "run-v1", "2026-01-27T00:00:00+00:00")
    with state_lock(config):
        write_state(config, DeploymentState(Slot.BLUE, records, (promoted,)))
    return records[Slot.BLUE]


def traffic(
    config,
    rows: pd.DataFrame,
    *,
    start: datetime = START,
    error_every: int | None = None,
    slow_every: int | None = None,
    canary_every: int | None = None,
    shadow: bool = False,
    wrong_every: int = 5,
) -> list[dict]:
    """One request per row spread over the hour, as the router logs them, and a label for each answered row.

    Request i fails (500) when ``i % error_every == error_every - 1``, takes 400 ms when ``i % slow_every == 0``
    (else 5 ms), goes to the green canary when ``i % canary_every == 1``; its answer is wrong when
    ``i % wrong_every == 0``. Returns the answered client rows with their labels and scores.
    """
    label = config.data_schema.label
    rng = np.random.default_rng(7)
    records, feedback, answered = [], [], []
    step = 3600 / len(rows)
    for i, row in enumerate(rows.to_dict("records")):
        truth = int(row.pop(label.name) == label.positive)
        instance = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        predicted = 1 - truth if i % wrong_every == 0 else truth
        probability = round(0.5 + (1 if predicted else -1) * (0.05 + 0.4 * rng.random()), 4)
        failed = error_every is not None and i % error_every == error_every - 1
        canary = canary_every is not None and i % canary_every == 1
        base = {
            "request_id": f"req-{start:%H}-{i}",
            "time": (start + timedelta(seconds=i * step)).isoformat(),
            "request": {"instances": [instance]},
        }
        answer = {"predictions": [{"probability": probability, "class": int(probability >= 0.5)}]}
        records.append(
            {
                **base,
                "role": "canary" if canary else "live",
                "slot": "green" if canary else "blue",
                "version": "v2" if canary else "v1",
                "status": 500 if failed else 200,
                "latency_ms": 400.0 if slow_every and i % slow_every == 0 else 5.0,
                "response": {"error": "model server failed"} if failed else answer,
            }
        )
        if shadow and not canary:
            copy = {"predictions": [{"probability": round(1 - probability, 4), "class": int(probability < 0.5)}]}
            records.append(
                {**base, "role": "shadow", "slot": "green", "version": "v2", "status": 200, "latency_ms": 7.0}
                | {"response": copy}
            )
        if not failed:
            answered.append({"row": instance, "label": truth, "probability": probability, "canary": canary, "i": i})
            at = start + timedelta(hours=1, minutes=10, seconds=i)
            feedback.append({"request_id": base["request_id"], "row": 0, "label": row_label(label, truth), "time": at})
    LogWriter(config, PREDICTIONS).write(records)
    LogWriter(config, FEEDBACK).write([{**f, "time": f["time"].isoformat()} for f in feedback])
    return answered


def row_label(label, truth: int) -> str:
    return label.positive if truth else label.values[0]


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """An hour of 1,000 requests: 10% fail, 2% are slow, every 10th goes to the canary, occupation is missing
    in half the rows (null or "?"), 3% of ages are 150, 4% of workclasses are unknown, hours_per_week moved up by
    25, and a fifth of the educations come with spaces around them."""
    tmp = tmp_path_factory.mktemp("busy")
    config = load_config(write_config(tmp))
    live_model(config, tmp)
    rows = population(config, REQUESTS, seed=2, hours_shift=25)
    rows["occupation"] = rows["occupation"].where(np.arange(REQUESTS) % 2 == 1, None)
    rows.loc[np.arange(REQUESTS) % 4 == 0, "occupation"] = "?"  # missing as the config's missing_values spell it
    rows.loc[np.arange(REQUESTS) % 5 == 0, "education"] = " " + rows["education"] + " "  # read stripped
    rows.loc[np.arange(REQUESTS) % 100 < 3, "age"] = 150
    rows.loc[np.arange(REQUESTS) % 25 == 7, "workclass"] = "Space-force"
    answered = traffic(config, rows, error_every=10, slow_every=50, canary_every=10)
    return config, answered, monitor(config, START, END, NOW)


def test_software_metrics_per_slot_version_and_role(busy):
    _, _, report = busy
    groups = {(g["slot"], g["version"], g["role"]): g for g in report["software"]["groups"]}
    live, canary = groups["blue", "v1", "live"], groups["green", "v2", "canary"]
    i = np.arange(REQUESTS)
    is_canary, failed = i % 10 == 1, i % 10 == 9

    assert set(groups) == {("blue", "v1", "live"), ("green", "v2", "canary")}
    assert canary["requests"] == is_canary.sum() and live["requests"] == REQUESTS - is_canary.sum()
    assert live["errors"] == (failed & ~is_canary).sum() and canary["errors"] == 0
    assert report["software"]["clients"]["error_rate"] == pytest.approx(0.1)
    assert report["software"]["clients"]["rate_per_s"] == pytest.approx(REQUESTS / 3600, rel=1e-5)
    assert live["p50_ms"] == 5.0 and live["p99_ms"] == 400.0  # 2% of requests at 400 ms


def test_input_metrics_count_missing_out_of_range_and_unseen_values(busy):
    _, answered, report = busy
    features = report["inputs"]["features"]
    expected_missing = np.mean([a["row"]["occupation"] in (None, "?") for a in answered])
    ages = [a["row"]["age"] for a in answered]
    workclasses = [a["row"]["workclass"] for a in answered]

    assert report["inputs"]["rows"] == len(answered) == 900  # failed requests carry no answered row
    assert features["occupation"]["missing_rate"] == pytest.approx(expected_missing)
    assert abs(expected_missing - 0.5) < 0.06
    assert features["age"]["out_of_range_rate"] == pytest.approx(np.mean([a > 90 for a in ages]))
    assert features["age"]["examples"] == ["150.0"]  # as the client sent it
    assert features["workclass"]["unseen_rate"] == pytest.approx(np.mean([w == "Space-force" for w in workclasses]))
    assert features["workclass"]["examples"] == ["Space-force"]
    assert features["education"]["missing_rate"] == 0 and features["education"]["unseen_rate"] == 0


def test_the_training_pipelines_drift_check_flags_the_shifted_and_damaged_features(busy):
    _, _, report = busy
    drift = report["inputs"]["drift"]

    assert {"hours_per_week", "occupation"} <= set(drift["drifted_features"])
    assert "education" not in drift["drifted_features"] and "sex" not in drift["drifted_features"]
    assert drift["verdict"] in (DriftVerdict.WARN, DriftVerdict.DRIFT)
    assert drift["reference"]["version"] == "v1"
    assert drift["settings"]["reference_rows"] == 2000 and drift["settings"]["current_rows"] == 900


def test_output_metrics_give_the_distribution_the_positive_rate_and_failed_answers(busy):
    _, answered, report = busy
    clients = report["outputs"]["clients"]
    probabilities = np.array([a["probability"] for a in answered])

    assert clients["failed_share"] == pytest.approx(0.1) and clients["empty"] == 0
    assert clients["positive_rate"] == pytest.approx(np.mean(probabilities >= 0.5))
    assert sum(clients["histogram"]["counts"]) == len(answered)
    assert clients["histogram"]["counts"][9] == np.sum(probabilities >= 0.9)
    assert set(report["outputs"]["by_version"]) == {"v1", "v2"}
    assert 0.2 < report["outputs"]["reference_positive_rate"] < 0.3


def test_performance_joins_labels_that_arrived_after_the_interval_and_has_intervals(busy):
    _, answered, report = busy
    v1 = report["performance"]["by_version"]["v1"]
    mine = [a for a in answered if not a["canary"]]
    y = np.array([a["label"] for a in mine])
    p = np.array([a["probability"] for a in mine])

    assert v1["rows"] == len(mine) and report["performance"]["labelled_rows"] == len(answered)
    assert v1["metrics"]["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y), abs=1e-6)
    assert v1["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    low, high = v1["ci"]["accuracy"]
    assert low < v1["metrics"]["accuracy"] < high
    assert v1["verdict"] == ConceptVerdict.UNKNOWN  # no MLflow run: no offline figure to compare with
    assert set(v1["slices"]) == {"sex", "race", "age", "sex x race"} and set(v1["protected"]) == {"sex", "race", "age"}
    assert sum(g["rows"] for g in v1["protected"]["sex"].values()) == len(mine)
    assert "slices" not in report["performance"]["by_version"].get("v2", {})


def test_labels_after_the_cutoff_are_not_joined(busy):
    config, answered, report = busy
    cutoff = END + timedelta(minutes=10, seconds=100)  # row i's label came at END + 10 min + i seconds
    early = monitor(config, START, END, now=cutoff)

    assert early["performance"]["labelled_rows"] == sum(a["i"] < 100 for a in answered)
    assert early["interval"]["label_cutoff"] == cutoff.isoformat()
    assert report["interval"]["label_cutoff"] == NOW.isoformat()


def test_the_busy_hour_raises_the_alarms_an_operator_needs(busy):
    config, _, report = busy
    raised = alarms(config, report)
    by_metric = {a.metric: a for a in raised}

    error = by_metric["error_rate[blue/v1/live]"]
    assert error.severity is Severity.CRITICAL and not error.retrain
    assert "slot blue, version v1 (live)" in error.message and "1.0% (monitoring.max_error_rate)" in error.message
    assert by_metric["p99_ms[blue/v1/live]"].severity is Severity.WARN
    assert (
        "missing_rate.occupation" in by_metric and "feature occupation:" in by_metric["missing_rate.occupation"].message
    )
    assert "out_of_range_rate.age" in by_metric and "e.g. 150" in by_metric["out_of_range_rate.age"].message
    assert "Space-force" in by_metric["unseen_rate.workclass"].message
    assert "missing_rate.education" not in by_metric and "error_rate[green/v2/canary]" not in by_metric
    assert (
        by_metric["drift.share"].name is AlarmName.DATA_DRIFT and "hours_per_week" in by_metric["drift.share"].message
    )
    assert [a.severity.rank for a in raised] == sorted(a.severity.rank for a in raised)


@pytest.mark.parametrize(("limit", "raised"), [(0.1, False), (0.099, True)])
def test_the_error_rate_alarm_fires_only_above_its_limit(tmp_path, limit, raised):
    config = load_config(write_config(tmp_path, {"monitoring": {"max_error_rate": limit}}))
    live_model(config, tmp_path)
    traffic(config, population(config, 300, seed=3), error_every=10)
    names = [a.metric for a in alarms(config, monitor(config, START, END, NOW))]
    assert ("error_rate[blue/v1/live]" in names) is raised


@pytest.fixture
def clean(tmp_path):
    config = load_config(write_config(tmp_path, {"thresholds": {"drift": {"drift_share": 0.15}}}))
    live_model(config, tmp_path)
    traffic(config, population(config, 600, seed=4), shadow=True)
    return config, tmp_path


def test_clean_traffic_raises_no_warning_and_shadow_answers_stay_apart(clean):
    config, _ = clean
    report = monitor(config, START, END, NOW)
    raised = alarms(config, report)

    assert [a for a in raised if a.severity is not Severity.INFO] == [], [a.message for a in raised]
    assert report["inputs"]["drift"]["verdict"] == DriftVerdict.NONE
    assert report["inputs"]["rows"] == 600 and report["software"]["clients"]["requests"] == 600
    shadow = report["outputs"]["by_version"]["v2"]["shadow"]
    assert shadow["requests"] == 600 and shadow["positive_rate"] == pytest.approx(
        1 - report["outputs"]["clients"]["positive_rate"]
    )
    # the shadow's answers are the live ones inverted, and its labels are the same requests' labels
    assert report["performance"]["by_version"]["v2"]["roles"] == ["shadow"]
    assert report["performance"]["by_version"]["v2"]["metrics"]["accuracy"] == pytest.approx(
        1 - report["performance"]["by_version"]["v1"]["metrics"]["accuracy"]
    )


def test_drift_beyond_the_drift_share_and_a_performance_drop_ask_for_retraining(tmp_path):
    config = load_config(write_config(tmp_path, {"thresholds": {"drift": {"drift_share": 0.15}}}))
    mlflow_client = client(config)
    run = mlflow_client.create_run(experiment_id(config)).info.run_id
    mlflow_client.log_metric(run, "test_accuracy", 0.95)
    mlflow_client.log_metric(run, "test_roc_auc", 0.97)
    live_model(config, tmp_path, mlflow_run_id=run)
    rows = population(config, 600, seed=5, hours_shift=25)
    rows["capital_gain"] = rows["capital_gain"] * 0.2
    traffic(config, rows, wrong_every=4)  # 75% accuracy against 95% offline

    report = monitor(config, START, END, NOW)
    raised = {a.metric: a for a in alarms(config, report)}

    assert report["inputs"]["drift"]["verdict"] == DriftVerdict.DRIFT
    assert raised["drift.share"].severity is Severity.CRITICAL and raised["drift.share"].retrain
    accuracy = raised["accuracy[v1]"]
    assert accuracy.retrain and accuracy.severity is Severity.CRITICAL and accuracy.name is AlarmName.PERFORMANCE
    assert "against 0.950 offline" in accuracy.message and "concept drift" in accuracy.message
    assert report["performance"]["by_version"]["v1"]["verdict"] == ConceptVerdict.DRIFT


def test_a_quiet_hour_says_what_it_could_not_judge(tmp_path):
    config = load_config(write_config(tmp_path))
    live_model(config, tmp_path)
    traffic(config, population(config, 30, seed=6))

    report = monitor(config, START, END, NOW)
    raised = alarms(config, report)

    assert report["inputs"]["drift"]["verdict"] == DriftVerdict.INSUFFICIENT_DATA
    assert {a.severity for a in raised} == {Severity.INFO}
    assert any("data drift not judged: 2000 reference rows and 30 current rows" in a.message for a in raised)
    assert any("performance not judged: 30 labelled rows, need 200" in a.message for a in raised)


def test_the_same_interval_gives_the_same_report_and_a_torn_line_is_counted_not_fatal(clean):
    config, _ = clean
    first = monitor(config, START, END, NOW)
    path = write_report(config, START, END, first, alarms(config, first))
    written = (path.parent / REPORT_JSON).read_bytes()
    assert monitor(config, START, END, NOW) == first
    assert write_report(config, START, END, first, alarms(config, first)) == path
    assert (path.parent / REPORT_JSON).read_bytes() == written

    log_file = next(hour_dir(config, PREDICTIONS, START).glob("*.jsonl"))
    with log_file.open("a") as handle:  # a crash in the middle of a write
        handle.write('{"request_id": "torn", "time": "2026-01-28T14:30:00+00:00", "role": "li')
    torn = monitor(config, START, END, NOW)

    assert torn["logs"]["unreadable_lines"][PREDICTIONS] == 1
    assert {k: v for k, v in torn.items() if k != "logs"} == {k: v for k, v in first.items() if k != "logs"}
    assert any(a.name is AlarmName.UNREADABLE_LOG for a in alarms(config, torn))


def test_records_outside_the_interval_are_left_out(clean):
    config, _ = clean
    before = {
        "request_id": "early",
        "time": (START - timedelta(microseconds=1)).isoformat(),
        "role": "live",
        "slot": "blue",
        "version": "v1",
        "status": 500,
        "latency_ms": 1.0,
        "request": {},
        "response": {},
    }
    after = {**before, "request_id": "late", "time": END.isoformat()}
    LogWriter(config, PREDICTIONS).write([before, after])

    assert monitor(config, START, END, NOW)["software"]["clients"]["errors"] == 0


def test_the_report_page_draws_every_interval_with_its_limits_and_alarms(tmp_path):
    config = load_config(write_config(tmp_path))
    live_model(config, tmp_path)
    for hour, shift in enumerate((0, 0, 25)):
        start = START + timedelta(hours=hour)
        traffic(
            config,
            population(config, 400, seed=10 + hour, hours_shift=shift),
            start=start,
            error_every=(None, 200, 10)[hour],
        )
        report = monitor(config, start, start + timedelta(hours=1), start + timedelta(hours=3))
        page = write_report(config, start, start + timedelta(hours=1), report, alarms(config, report))

    html = page.read_text()
    assert page == interval_dir(config, START + timedelta(hours=2)) / REPORT_HTML
    assert sorted(p.name for p in page.parent.iterdir()) == ["drift.html", "report.html", "report.json"]
    assert "<script" not in html and not re.search(r"(src|href)=\"https?://", html)
    # three intervals on each measured chart; the error-rate chart marks the third in red
    error_chart = html.split("<h3>Error rate</h3>")[1].split("</svg>")[0]
    assert error_chart.count("<circle") == 3 and error_chart.count('r="5"') == 1
    assert 'stroke-dasharray="5 4"' in error_chart
    assert "hours_per_week" in html and "critical" in html
    saved = json.loads((page.parent / REPORT_JSON).read_text())
    assert [Alarm.from_dict(a) for a in saved["alarms"]] == alarms(config, report)
    # re-running an earlier hour draws only the hours before it
    first = monitor(config, START, END, NOW)
    html = write_report(config, START, END, first, alarms(config, first)).read_text()
    assert html.split("<h3>Client requests</h3>")[1].split("</svg>")[0].count("<circle") == 1


def test_a_report_must_be_written_for_the_interval_it_measured(clean):
    config, _ = clean
    report = monitor(config, START, END, NOW)
    with pytest.raises(Exception, match="the report covers 2026-01-28T14:00:00"):
        write_report(config, END, END + timedelta(hours=1), report, [])


def test_naive_or_empty_intervals_are_refused(clean):
    config, _ = clean
    with pytest.raises(Exception, match="timezone-aware"):
        monitor(config, START.replace(tzinfo=None), END.replace(tzinfo=None), NOW)
    with pytest.raises(Exception, match="is empty"):
        monitor(config, END, START, NOW)


def strip(name: str) -> str:
    """A metric family's name without the suffix of its samples (``_total``, ``_bucket``, ...)."""
    return re.sub(r"_(bucket|count|sum|total)$", "", name)


def test_the_grafana_dashboard_queries_only_metrics_the_router_and_servers_expose(tmp_path):
    config = load_config(write_config(tmp_path))
    router = TestClient(create_app(config)).get("/metrics").text
    server = SlotModel(config, Slot.BLUE)
    exposition = router + generate_latest(server.metrics).decode()
    families = {strip(name) for name in re.findall(r"^# TYPE (\w+) ", exposition, re.M)}
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {strip(m) for q in queries for m in re.findall(r"\b[a-z_]+_[a-z_]+(?=[{\[])", q)}

    assert {
        "router_requests",
        "router_latency_seconds",
        "predict_requests",
        "predict_latency_seconds",
        "prediction_probability",
    } <= used
    assert used <= families, f"the dashboard queries metrics nobody exposes: {used - families}"
    assert dashboard["uid"] and all(p.get("datasource") for p in dashboard["panels"] if p.get("targets"))


def test_before_the_first_promotion_the_report_says_there_is_nothing_to_compare_with(tmp_path):
    config = load_config(write_config(tmp_path))

    report = monitor(config, START, END, NOW)
    raised = alarms(config, report)

    assert report["model"] is None and report["inputs"]["drift"]["verdict"] == DriftVerdict.NO_REFERENCE
    assert {a.name for a in raised} == {AlarmName.NO_TRAFFIC, AlarmName.DATA_DRIFT}
    assert {a.severity for a in raised} == {Severity.INFO}
    assert write_report(config, START, END, report, raised).exists()


def test_rows_of_a_batched_request_are_labelled_one_by_one(tmp_path):
    config = load_config(write_config(tmp_path, {"monitoring": {"min_labelled_rows": 1}}))
    live_model(config, tmp_path)
    rows = population(config, 2, seed=8).drop(columns=config.data_schema.label.name)
    columnar = {name: [None if pd.isna(v) else v for v in rows[name]] for name in rows}
    record = {
        "request_id": "batch",
        "time": (START + timedelta(minutes=1)).isoformat(),
        "role": "live",
        "slot": "blue",
        "version": "v1",
        "status": 200,
        "latency_ms": 3.0,
        "request": {"inputs": columnar},
        "response": {"outputs": {"probability": [0.9, 0.2], "class": [1, 0]}},
    }
    LogWriter(config, PREDICTIONS).write([record])
    label = config.data_schema.label
    feedback = [{"request_id": "batch", "row": 1, "label": label.positive, "time": END.isoformat()}]
    LogWriter(config, FEEDBACK).write(feedback)

    performance = monitor(config, START, END, NOW)["performance"]

    assert performance["labelled_rows"] == 1
    v1 = performance["by_version"]["v1"]
    assert v1["rows"] == 1 and v1["positives"] == 1 and v1["verdict"] == ConceptVerdict.INSUFFICIENT_DATA
    assert "one class only" in v1["reason"]


def multiclass_traffic(config, shares: list[float], start: datetime, n: int = 400) -> None:
    """An hour of ``n`` live answers of a three-class model whose predicted classes come in ``shares``."""
    classes = config.data_schema.label.classes
    rows = population(config, n, seed=11).drop(columns=config.data_schema.label.name)
    ids = np.repeat(np.arange(len(classes)), np.round(np.array(shares) * n).astype(int))
    records = [
        {
            "request_id": f"mc-{start:%H}-{i}",
            "time": (start + timedelta(seconds=i * 3600 / n)).isoformat(),
            "role": "live",
            "slot": "blue",
            "version": "v1",
            "status": 200,
            "latency_ms": 5.0,
            "request": {"instances": [row]},
            "response": {"predictions": [{"probability": 0.6, "class": int(c), "label": classes[c]}]},
        }
        for i, (row, c) in enumerate(zip(rows.to_dict("records"), ids, strict=True))
    ]
    LogWriter(config, PREDICTIONS).write(records)


def test_a_multiclass_model_is_watched_on_each_class_share_of_its_predictions(tmp_path):
    classes = ["low", "mid", "high"]
    label = {"name": "income", "values": classes, "positive": None}
    config = load_config(write_config(tmp_path, {"schema": {"label": label}}))
    live_model(config, tmp_path)
    reference = population(config, 1000, seed=1)
    reference["income"] = np.repeat(classes, [500, 300, 200])  # the training labels: 50%, 30%, 20%
    reference.to_parquet(tmp_path / "reference.parquet")
    later = START + timedelta(hours=1)
    multiclass_traffic(config, [0.5, 0.3, 0.2], START)  # as trained
    multiclass_traffic(config, [0.35, 0.2, 0.45], later)  # "high" predicted 25 points more often

    steady = monitor(config, START, END, NOW)
    shifted = monitor(config, later, later + timedelta(hours=1), NOW + timedelta(hours=1))
    raised = alarms(config, shifted)

    assert steady["outputs"]["reference_class_shares"] == {"low": 0.5, "mid": 0.3, "high": 0.2}
    assert steady["outputs"]["clients"]["class_shares"] == {"low": 0.5, "mid": 0.3, "high": 0.2}
    assert steady["outputs"]["clients"]["positive_rate"] is None and steady["headline"]["class_share_gap"] == 0
    assert not [a for a in alarms(config, steady) if a.name in (AlarmName.CLASS_SHARE, AlarmName.POSITIVE_RATE)]
    assert (shifted["headline"]["class_share_gap"], shifted["headline"]["class_share_gap_class"]) == (0.25, "high")
    [alarm] = [a for a in raised if a.name is AlarmName.CLASS_SHARE]
    assert alarm.metric == "outputs.class_share_shift.high" and alarm.value == 0.25 and alarm.threshold == 0.15
    assert (
        "class 'high' in 45.0% of the predictions" in alarm.message and "20.0% of the training labels" in alarm.message
    )
    assert "monitoring.max_positive_rate_shift" in alarm.message
    # The page charts the gap (the second hour marked) and gives each class's share beside its training share.
    write_report(config, START, END, steady, alarms(config, steady))
    html = write_report(config, later, later + timedelta(hours=1), shifted, raised).read_text()
    chart = html.split("<h3>Largest class share gap</h3>")[1].split("</svg>")[0]
    assert chart.count("<circle") == 2 and chart.count('r="5"') == 1
    assert "Positive prediction rate" not in html and "positive class" not in html
    assert "high 45.0% (training labels 20.0%)" in html and "<th>mid</th>" in html
