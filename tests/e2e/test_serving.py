"""The model server as a real process on 127.0.0.1: TF Serving's REST API, answers equal to the offline
scores, 4xx that name the field, readiness, metrics, and no 5xx whatever a client sends."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date

import httpx
import pandas as pd
import pytest
from conftest import SMALL, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.deployment_state import read_state
from pipelines.core.outputs import TransformOutput
from pipelines.data.demo import write_partitions
from pipelines.model.scoring import score
from pipelines.model.signature import read_threshold
from pipelines.runner import run_pipeline
from pipelines.serving.processes import free_port, start_server

NAME = "adult-income"


def wait_ready(url: str) -> httpx.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/readyz", timeout=5)
        if response.status_code == 200 or "loading" not in response.text:
            return response
        time.sleep(0.3)
    raise RuntimeError("not ready in 120 s")


@pytest.fixture(scope="module")
def served(tmp_path_factory, adult_frame):
    """A small pipeline run promoted to blue, and a blue model server for it (a real process)."""
    tmp = tmp_path_factory.mktemp("serving")
    # A fixed decision threshold of 0.4: the server must answer "class" at the model's own cut.
    config_path = write_config(tmp, {**SMALL, "training": {**SMALL["training"], "threshold": {"value": 0.4}}})
    config = load_config(config_path)
    write_partitions(adult_frame, config, date(2026, 1, 1), 800, days=4)
    run_pipeline(RunContext.create(config, "2026-01-03"))
    process, url = start_server(config_path, "blue")
    assert wait_ready(url).status_code == 200
    yield config_path, config, url
    process.terminate()
    process.wait(timeout=30)


def rows(config, n: int) -> pd.DataFrame:
    """Raw test rows of the promoted run, as a client would send them."""
    test = pd.read_parquet(TransformOutput(RunContext.create(config, "2026-01-03").stage_dir("transform")).test_raw)
    return test[[f.name for f in config.data_schema.features]].head(n)


def as_json(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def test_status_and_metadata_speak_tf_servings_api(served):
    _, config, url = served
    live = read_state(config).live_record

    status = httpx.get(f"{url}/v1/models/{NAME}").json()
    metadata = httpx.get(f"{url}/v1/models/{NAME}/metadata").json()

    [version] = status["model_version_status"]
    assert version["state"] == "AVAILABLE" and version["version"] == live.registry_version
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(signature["inputs"]) == {f.name for f in config.data_schema.features}
    assert signature["inputs"]["age"]["dtype"] == "DT_FLOAT" and signature["inputs"]["sex"]["dtype"] == "DT_STRING"
    assert httpx.get(f"{url}/v1/models/other").status_code == 404


def test_predictions_online_equal_the_offline_scores_in_both_formats(served):
    _, config, url = served
    frame = rows(config, 40)
    frame.loc[frame.index[:5], "workclass"] = None  # missing values are sent as null
    offline = score(read_state(config).live_record.model_uri, frame, config.data_schema)
    # ... or as ingest reads them in a CSV: empty, or spelled as the schema's missing_values; spaces stripped
    sent = frame.copy()
    sent.loc[sent.index[:2], "workclass"] = "?"
    sent.loc[sent.index[2], "workclass"] = ""
    sent["sex"] = " " + sent["sex"] + " "

    records = as_json(sent)
    by_rows = httpx.post(f"{url}/v1/models/{NAME}:predict", json={"instances": records})
    columns = {c: [r[c] for r in records] for c in frame.columns}
    by_columns = httpx.post(f"{url}/v1/models/{NAME}:predict", json={"inputs": columns})

    assert by_rows.status_code == 200 and by_rows.headers["X-Slot"] == "blue"
    assert by_rows.headers["X-Model-Version"] == read_state(config).live_record.version
    online = [p["probability"] for p in by_rows.json()["predictions"]]
    assert online == pytest.approx(offline.tolist(), abs=1e-6)
    # The threshold travelled with the model into the deployment's copy, and the server answers at it.
    assert read_threshold(read_state(config).live_record.model_uri) == 0.4
    assert [p["class"] for p in by_rows.json()["predictions"]] == [int(p >= 0.4) for p in offline]
    assert by_columns.json()["outputs"]["probability"] == pytest.approx(offline.tolist(), abs=1e-6)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda r: {"instances": [{**r, "agee": r.pop("age")}]}, 400, "unknown feature 'agee' (did you mean 'age'?)"),
        (lambda r: {"instances": [{k: v for k, v in r.items() if k != "sex"}]}, 400, "missing feature(s) ['sex']"),
        (lambda r: {"instances": [{**r, "age": "old"}]}, 400, "instances[0].age: expected a number or null"),
        (lambda r: {"instances": [{**r, "sex": 1}]}, 400, "instances[0].sex: expected a string or null"),
        (lambda r: {"instances": [{**r, "income": ">50K"}]}, 400, "the label is not an input"),
        (lambda r: {"instances": []}, 400, "the batch is empty"),
        (lambda r: {"instances": [r] * 2000}, 413, "more than serving.max_batch 1024"),
        (lambda r: {"instances": [r], "inputs": {}}, 400, "exactly one of 'instances'"),
        (lambda r: [r], 400, "must be a JSON object"),
        (lambda r: {"inputs": {k: [v, v] if k != "age" else [v] for k, v in r.items()}}, 400, "same number of values"),
    ],
    ids=["unknown", "missing", "number", "string", "label", "empty", "too-many", "both", "not-object", "ragged"],
)
def test_bad_requests_get_a_4xx_that_names_the_problem(served, change, status, message):
    _, config, url = served
    body = change(as_json(rows(config, 1))[0])

    response = httpx.post(f"{url}/v1/models/{NAME}:predict", json=body)

    assert response.status_code == status
    assert message in response.json()["error"]


def test_a_body_that_is_not_json_or_too_large_is_refused(served):
    _, _, url = served
    assert httpx.post(f"{url}/v1/models/{NAME}:predict", content=b"\xff\x00 not json").status_code == 400
    huge = httpx.post(f"{url}/v1/models/{NAME}:predict", content=b" " * 5_000_000)
    assert huge.status_code == 413 and "max_body_bytes" in huge.json()["error"]


def test_metrics_count_requests_by_status_slot_and_version(served):
    _, config, url = served
    version = read_state(config).live_record.version
    httpx.post(f"{url}/v1/models/{NAME}:predict", json={"instances": as_json(rows(config, 3))})

    text = httpx.get(f"{url}/metrics").text

    ok = [line for line in text.splitlines() if line.startswith("predict_requests_total") and 'code="200"' in line]
    assert ok and f'version="{version}"' in ok[0] and 'slot="blue"' in ok[0] and float(ok[0].split()[-1]) >= 1
    assert "predict_latency_seconds_bucket" in text and "prediction_probability_count" in text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"instances": st.lists(st.dictionaries(st.sampled_from(["age", "sex", "x"]), JSON), max_size=3)}
        ),
        st.fixed_dictionaries(
            {"inputs": st.dictionaries(st.sampled_from(["age", "sex", "workclass"]), JSON, max_size=3)}
        ),
    )
)
def test_no_request_body_makes_the_server_fail(served, body):
    _, _, url = served
    content = json.dumps(body).encode()  # NaN and Infinity included, as a careless client may send them
    response = httpx.post(f"{url}/v1/models/{NAME}:predict", content=content, timeout=30)
    assert response.status_code < 500, response.text


def test_the_send_command_posts_test_rows_and_says_who_answered(served):
    config_path, config, url = served
    command = [sys.executable, "-m", "pipelines", "send", "--config", str(config_path), "--date", "2026-01-03"]

    sent = subprocess.run(
        [*command, "--url", url, "--rows", "3", "--batch", "2", "--wait", "30"], capture_output=True, text=True
    )
    unreachable = subprocess.run([*command, "--url", f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True)

    assert sent.returncode == 0, sent.stderr[-2000:]
    version = read_state(config).slots["blue"].version
    assert f"2 request(s), 0 failed; answered by slot blue model {version}" in sent.stdout
    assert '-> 200 {"predictions":[{"probability":' in sent.stdout
    assert unreachable.returncode == 1 and "cannot reach a model server" in unreachable.stderr


def test_a_slot_server_picks_up_the_model_promoted_into_its_slot_without_a_restart(served):
    config_path, config, blue_url = served
    process, url = start_server(config_path, "green")  # nothing was promoted to green yet
    try:
        ready = wait_ready(url)
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert ready.status_code == 503 and "slot green holds no model" in ready.json()["error"]
        assert httpx.post(f"{url}/v1/models/{NAME}:predict", json={"instances": [{}]}).status_code == 503

        run_pipeline(RunContext.create(config, "2026-01-04", force=True))  # the next model goes to green
        green = read_state(config).slots["green"]
        assert read_state(config).live == "green"
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)

        frame = rows(config, 10)
        answer = httpx.post(f"{url}/v1/models/{NAME}:predict", json={"instances": as_json(frame)})
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == green.version
        offline = score(green.model_uri, frame, config.data_schema)
        assert [p["probability"] for p in answer.json()["predictions"]] == pytest.approx(offline.tolist(), abs=1e-6)
        # The blue server keeps serving blue's model: it is the rollback target, ready to take traffic back.
        assert httpx.get(f"{blue_url}/readyz").json()["version"] == read_state(config).slots["blue"].version
    finally:
        process.terminate()
        process.wait(timeout=30)
