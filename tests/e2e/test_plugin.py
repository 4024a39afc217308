"""The Models plugin through a real `airflow api-server` on 127.0.0.1: the Models page, the extra links of a
real DAG run, Data Docs that load nothing from the internet, paths kept inside the artifact root, rollback
behind Airflow's own login, and the page as a browser shows it (headless Chromium, logged in by token)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pendulum
import pytest
from conftest import REPO, SMALL, candidate, write_config
from PIL import Image

from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.deployment_state import read_state
from pipelines.data.demo import write_partitions
from pipelines.reporting.screenshot import BROWSERS, check
from pipelines.serving.processes import free_port

sys.path.insert(0, str(REPO / "plugins"))
from ml_models.datadocs import remote_loads  # noqa: E402

D1 = date(2026, 1, 3)
USE_CASE = "small"
DAG_ID = "training_pipeline"


def wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the api-server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the api-server did not answer in 180 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, adult_frame, airflow_db):
    """A DAG run for D1 that promotes to blue (via dag.test()), and an api-server with the plugin over it."""
    from airflow.dag_processing.dagbag import DagBag

    tmp = tmp_path_factory.mktemp("plugin")
    configs = tmp / "configs"
    configs.mkdir()
    config_path = write_config(tmp, SMALL).rename(configs / f"{USE_CASE}.yaml")
    (configs / "other.expectations.yaml").write_text("{}\n")  # a GE suite beside the configs: not a use case
    config = load_config(config_path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=3)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__BASE_URL": url,
        "CT_CONFIGS_DIR": str(configs),
    }
    log = tmp / "api-server.log"
    airflow_bin = Path(sys.executable).parent / "airflow"
    with log.open("w") as out:  # started first: it comes up while the DAG runs
        server = subprocess.Popen(
            [str(airflow_bin), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # The DAG offers the registered use cases as choices when it is parsed: register ours first.
        with pytest.MonkeyPatch.context() as env_patch:
            env_patch.setenv("CT_CONFIGS_DIR", str(configs))
            dag = DagBag(dag_folder=str(REPO / "dags")).dags[DAG_ID]
            dagrun = dag.test(
                logical_date=pendulum.datetime(D1.year, D1.month, D1.day, tz="UTC"),
                run_conf={"config": USE_CASE, "date": D1.isoformat()},
            )
        assert dagrun.state == "success", {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
        wait_healthy(url, server, log)
        passwords = json.loads(
            (Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text()
        )
        token = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": passwords["admin"]}).json()
        yield {
            "url": url,
            "config": config,
            "run_id": dagrun.run_id,
            "auth": {"Authorization": f"Bearer {token['access_token']}"},
            "token": token["access_token"],
            "tmp": tmp,
        }
    finally:
        server.terminate()
        server.wait(timeout=60)


def links(airflow, task_id: str) -> dict[str, str | None]:
    response = httpx.get(
        f"{airflow['url']}/api/v2/dags/{DAG_ID}/dagRuns/{airflow['run_id']}/taskInstances/{task_id}/links",
        headers=airflow["auth"],
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()["extra_links"]


def get(airflow, path: str, **kwargs) -> httpx.Response:
    return httpx.get(f"{airflow['url']}{path}", headers=airflow["auth"], timeout=120, **kwargs)  # MLflow loads slowly


def test_models_page_shows_the_live_version_and_its_slot(airflow):
    live = read_state(airflow["config"]).live_record

    page = get(airflow, "/ml-models/models")  # the first registered use case by default: the only one here
    data = get(airflow, "/ml-models/models.json", params={"use_case": USE_CASE}).json()

    assert page.status_code == 200 and "Models: small" in page.text
    assert f"Live: <b>blue</b> = <code>{live.version}</code>" in page.text
    assert "PROMOTE" in page.text and "Not possible: no version was live before" in page.text
    assert data["live_slot"] == "blue" and data["live_version"] == live.version
    [run] = data["runs"]
    assert run["ds"] == D1.isoformat() and run["action"] == "PROMOTE" and run["versions"] == [live.version]
    assert run["candidate"]["roc_auc"] > 0.8
    assert "other.expectations" not in page.text  # a suite file is no use case
    unknown = get(airflow, "/ml-models/models", params={"use_case": "nope"})
    assert unknown.status_code == 404 and "is unknown: the registered use cases are" in unknown.text
    # Airflow's login guards the page: no token, no page; a forged token is refused too.
    assert httpx.get(f"{airflow['url']}/ml-models/models").status_code == 401
    forged = httpx.get(f"{airflow['url']}/ml-models/models", headers={"Authorization": "Bearer x.y.z"})
    assert forged.status_code in (401, 403)


@pytest.mark.parametrize(
    ("task_id", "name", "expected"),
    [
        ("validate_snapshot", "Data Docs", "Validation Results"),
        ("check_drift", "Drift report", "<h1>Drift report"),
        ("gate_candidate", "Gate decision", "all checks passed"),
        ("train_model", "MLflow run", "decision_threshold"),
        ("write_run_card", "Run card", "<h1>Run card: "),
        ("promote_blue_green", "Run card", "<h1>Run card: "),
    ],
)
def test_extra_links_of_a_real_run_open_the_plugins_pages(airflow, task_id, name, expected):
    found = links(airflow, task_id)

    assert found[name] and found[name].startswith("/ml-models/"), found
    assert [n for n, href in found.items() if href] == [name]  # only the links that belong to this task
    page = get(airflow, found[name])
    assert page.status_code == 200 and expected in page.text, page.text[:500]


def test_tasks_without_a_page_show_no_link(airflow):
    assert not any(links(airflow, "ingest_window").values())


def test_data_docs_load_nothing_from_the_internet(airflow):
    page = get(airflow, links(airflow, "validate_snapshot")["Data Docs"])
    raw = (
        Path(airflow["config"].artifact_root) / "runs" / D1.isoformat() / "validate" / "data_docs" / "index.html"
    ).read_text()

    assert remote_loads(raw), "GE's page no longer loads from CDNs: this rewrite may be unnecessary"
    assert remote_loads(page.text) == []
    assert "default-src 'self'" in page.headers["content-security-policy"]
    stylesheets = re.findall(r'<link[^>]+href="([^"]+\.css)"', page.text)
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', page.text)
    assert any("bootstrap.min.css" in s for s in stylesheets) and any("jquery" in s for s in scripts)
    for asset in stylesheets + scripts:
        assert asset.startswith("/ml-models/static/"), asset
        served = httpx.get(f"{airflow['url']}{asset}")  # public: a browser fetches them like any asset
        assert served.status_code == 200, asset
        assert served.content == (REPO / "plugins" / "ml_models" / asset.removeprefix("/ml-models/")).read_bytes()
    bootstrap = next(s for s in stylesheets if "bootstrap.min.css" in s)
    assert "text/css" in httpx.get(f"{airflow['url']}{bootstrap}").headers["content-type"]


def test_artifact_paths_stay_inside_the_artifact_root(airflow):
    root = Path(airflow["config"].artifact_root)
    (root / "escape").symlink_to("/etc")
    secret = airflow["tmp"] / "configs" / f"{USE_CASE}.yaml"  # beside the artifact root, not in it
    attempts = [
        "/ml-models/artifacts/small/..%2F..%2Fconfigs%2Fsmall.yaml",
        "/ml-models/artifacts/small/runs/..%2F..%2F..%2Fconfigs%2Fsmall.yaml",
        "/ml-models/artifacts/small/%2Fetc%2Fpasswd",
        "/ml-models/artifacts/small/escape/passwd",
        "/ml-models/decision/small/..%2F..%2F..",
    ]
    for path in attempts:
        response = get(airflow, path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "root:" not in response.text and secret.read_text()[:40] not in response.text, path
    assert get(airflow, attempts[0]).status_code == 403
    assert "outside the artifact root" in get(airflow, attempts[3]).text
    assert get(airflow, f"/ml-models/artifacts/small/runs/{D1}/card/run_card.html").status_code == 200


def test_rollback_needs_airflow_login_and_goes_one_version_back(airflow):
    config = airflow["config"]
    url = f"{airflow['url']}/ml-models/rollback?use_case={USE_CASE}"
    first = read_state(config).live_record.version
    as_api = {**airflow["auth"], "Accept": "application/json"}

    # One version only: refused, saying why.
    alone = httpx.post(url, headers=as_api, data={"reason": "test"})
    assert alone.status_code == 409 and f"no version was live before {first}" in alone.json()["detail"]

    # A second version goes live in green (a small candidate through the real promotion).
    ctx = RunContext.create(config, "2026-01-04", "manual__second", operator="tester")
    from pipelines.deployment.promote import promote_blue_green

    promote_blue_green(ctx, *candidate(ctx, "second"))
    second = read_state(config).live_record.version
    assert read_state(config).live == "green" and second != first

    # An operator's canary: the page shows each slot's share of the requests.
    from pipelines.deployment.controller import set_routing

    set_routing(config, canary_weight=0.25, shadow=True)
    page = get(airflow, "/ml-models/models").text
    assert "75% of requests" in page and "25% of requests (canary); every request mirrored (shadow)" in page
    set_routing(config, canary_weight=0.0, shadow=False)

    assert httpx.post(url, data={"reason": "no login"}).status_code == 401
    cross_site = httpx.post(url, headers={**airflow["auth"], "Origin": "http://evil.example"}, data={"reason": "x"})
    assert cross_site.status_code == 403
    assert read_state(config).live_record.version == second

    # As a browser posts the form: redirected back to the Models page, which says what happened.
    done = httpx.post(url, headers=airflow["auth"], data={"reason": "green looks wrong"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    state = read_state(config)
    assert state.live == "blue" and state.live_record.version == first
    event = state.history[-1]
    assert (event.action, event.version, event.by, event.reason) == ("rollback", first, "admin", "green looks wrong")
    page = get(airflow, done.headers["location"])
    assert "rolled back: live is now blue" in page.text and "green looks wrong" in page.text


def screenshot(url: str, token: str, out: Path, wait: float) -> Path:
    """``url`` in headless Chromium, logged in with Airflow's ``_token`` cookie (set over the DevTools protocol)."""
    from websockets.sync.client import connect

    browser = next(found for name in BROWSERS if (found := __import__("shutil").which(name)))
    # Chromium's helper processes may still write into the profile as it goes: its removal must not fail the test.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "--window-size=1280,1000", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (active.exists() and len(active.read_text().splitlines()) >= 2):
                assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
                time.sleep(0.2)
            port = active.read_text().splitlines()[0]
            target = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                ids = iter(range(1, 1000))

                def call(method: str, **params) -> dict:
                    sent = next(ids)
                    ws.send(json.dumps({"id": sent, "method": method, "params": params}))
                    while True:
                        message = json.loads(ws.recv(timeout=60))
                        if message.get("id") == sent:
                            assert "error" not in message, message
                            return message["result"]

                call("Network.enable")
                call("Network.setCookie", name="_token", value=token, url=url, httpOnly=True)
                call("Page.enable")
                call("Page.navigate", url=url)
                time.sleep(wait)  # the page, and for Airflow's UI its React app and the iframe in it
                shot = call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
        finally:
            process.terminate()
            process.wait(timeout=30)
    return out


def test_the_models_page_in_a_browser(airflow):
    out = airflow["tmp"]
    page = screenshot(f"{airflow['url']}/ml-models/models", airflow["token"], out / "models-page.png", 3)
    in_ui = screenshot(f"{airflow['url']}/plugin/models", airflow["token"], out / "models-in-airflow-ui.png", 8)
    docs_url = airflow["url"] + links(airflow, "validate_snapshot")["Data Docs"]
    docs = screenshot(docs_url, airflow["token"], out / "data-docs.png", 3)

    for png in (page, in_ui):
        problems, _ = check(png)
        assert not [p for p in problems if "blank" in p or "wide" in p], (png, problems)
    # Styled, offline: Font Awesome's green check (Bootstrap's text-success) shows; unstyled, nothing would.
    with Image.open(docs) as image:
        r, g, b = np.asarray(image.convert("RGB")).astype(int).transpose(2, 0, 1)
    green = int(((r < 90) & (g > 140) & (b < 110)).sum())
    assert green > 50, f"no green status icon in {docs}: the Data Docs did not get their CSS and fonts"
    print(f"\nscreenshots: {page} {in_ui} {docs}")
