"""What the DAGs share: the use cases offered as choices, their data assets, the run's request, the alert.

Not a DAG file (`.airflowignore` keeps the DAG processor out of it). The DAGs import it as
``dags._common`` (the project root is on the path of every Airflow process: the venv's .pth file, or
PYTHONPATH in the image), so the deadline alert's callback path resolves in the triggerer too, which
does not put the DAGs folder on its path.

Parse-time parts (``use_case_names``, ``raw_asset``, ``retrain_asset``, ``deadline_alert``) read file names and the
environment only; everything else runs inside tasks or callbacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference, Param

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_USE_CASE = "adult"
ALERT_CONNECTION = "ct_alerts"
DEADLINE_ENV = "CT_RUN_DEADLINE_MINUTES"


def use_case_names() -> list[str]:
    """The registered use cases: YAML stems in ``$CT_CONFIGS_DIR`` (default ``<repo>/configs``).

    The same rule as ``pipelines.core.usecases.registered``, repeated here because a DAG file may not import the
    library at parse time; a DAG test checks that the two agree.
    """
    folder = Path(os.environ.get("CT_CONFIGS_DIR") or PROJECT_ROOT / "configs").expanduser()
    if not folder.is_dir():
        return []
    return sorted(
        p.name.removesuffix(".yaml")
        for p in folder.glob("*.yaml")
        if p.is_file()
        and not p.name.endswith(".expectations.yaml")
        and re.fullmatch(r"[A-Za-z0-9_.-]+", p.name.removesuffix(".yaml"))
    )


def use_case_param(description: str, **schema: Any) -> Param:
    """The ``config`` Param of every DAG: a choice among the registered use cases, by name (never a path)."""
    names = use_case_names()
    default = DEFAULT_USE_CASE if DEFAULT_USE_CASE in names or not names else names[0]
    return Param(
        default, type="string", enum=names or [DEFAULT_USE_CASE], title="Use case", description=description, **schema
    )


def raw_asset(use_case: str) -> Asset:
    """The asset of a use case's daily partitions: one event per new partition, its date in the extra."""
    return Asset(name=f"{use_case}_raw", uri=f"ct://{use_case}/raw", group="continuous-training")


def retrain_asset() -> Asset:
    """The asset of retraining requests (the monitoring DAG's): its events' extra names the use case and D too."""
    return Asset(name="retrain_requests", uri="ct://retrain", group="continuous-training")


def run_request(context: Any) -> tuple[str, date | str]:
    """The use case and the data date D of the running DAG run.

    A run started by a data event trains the event's use case on the event's date (its ``extra``); any other run
    takes the ``config`` param and D from the ``date`` param, else the logical date (else, for a run that has
    none, the time it was queued for).
    """
    params, dag_run = context["params"], context["dag_run"]
    if dag_run.run_type == "asset_triggered":
        from pipelines.core.usecases import request_from_events

        events = [{"extra": e.extra, "timestamp": e.timestamp.isoformat()} for e in dag_run.consumed_asset_events]
        use_case, ds = request_from_events(events)
        return use_case, params["date"] or ds
    return params["config"], params["date"] or context.get("logical_date") or dag_run.run_after


def run_trigger(context: Any) -> str:
    """Why the running DAG run was started, in words: the event's reason, the operator's, or its run type."""
    params, dag_run = context["params"], context["dag_run"]
    if params.get("trigger_reason"):
        return str(params["trigger_reason"])
    if dag_run.run_type == "asset_triggered":
        extras = [e.extra or {} for e in sorted(dag_run.consumed_asset_events, key=lambda e: e.timestamp)]
        latest = extras[-1] if extras else {}
        return str(latest.get("reason") or f"new data: partition {latest.get('ds')} of {latest.get('use_case')}")
    if dag_run.run_type == "manual":
        return f"manual trigger by {dag_run.triggering_user_name or 'an operator'}"
    return {"scheduled": "the daily schedule", "backfill": "a backfill"}.get(dag_run.run_type, str(dag_run.run_type))


def deadline_minutes() -> int | None:
    """How long a run may take, from ``$CT_RUN_DEADLINE_MINUTES``; None (no deadline) when it is unset."""
    raw = os.environ.get(DEADLINE_ENV)
    if not raw:
        return None
    try:
        minutes = int(raw)
    except ValueError:
        raise ValueError(f"{DEADLINE_ENV}={raw!r}: expected whole minutes, e.g. 180") from None
    if minutes < 1:
        raise ValueError(f"{DEADLINE_ENV}={raw!r}: expected 1 minute or more")
    return minutes


def deadline_alert() -> DeadlineAlert | None:
    """Alert (through ``RunAlert``, in the triggerer) when a run is not finished this long after it was queued.

    Opt-in (``$CT_RUN_DEADLINE_MINUTES``, set where a scheduler runs): Airflow 3.3.2's ``dag.test()`` (and so
    ``airflow dags test``) crashes when a run of a DAG with a deadline succeeds (it looks the serialized alert up
    as if it were a database id), so a DAG parsed for a local test run must not carry one.
    """
    minutes = deadline_minutes()
    if minutes is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(RunAlert, kwargs={"connection_id": ALERT_CONNECTION}),
        name="run_too_long",
    )


class RunAlert(BaseNotifier):
    """Tells the operators that a task failed, or that a run is late: logged, and posted to a webhook.

    The message names the DAG, the task, the use case, the data date D, the reason (the exception) and a link to
    the task's log in the UI. It is posted as JSON (``text`` plus the fields) when the Airflow connection
    ``ct_alerts`` exists: ``AIRFLOW_CONN_CT_ALERTS=http://host:port/path`` (``https://`` for TLS; a path carrying
    a token, as chat webhooks do, is kept). Without it the alert is only logged. A failure to post is logged
    and never fails the task a second time.
    """

    def __init__(self, connection_id: str = ALERT_CONNECTION, context: Any = None):
        super().__init__(context)
        self.connection_id = connection_id

    def notify(self, context: Any) -> None:
        """A task failed (``on_failure_callback``, run by the task's worker)."""
        ti = context["ti"]
        try:
            use_case, ds = run_request(context)
        except Exception as exc:  # the request itself may be what failed; say so rather than lose the alert
            use_case, ds = context["params"].get("config"), f"unknown ({exc})"
        ds = ds.date() if hasattr(ds, "date") else ds
        error = context.get("exception")
        reason = f"{type(error).__name__}: {error}" if error is not None else "no exception recorded"
        alert = {
            "kind": "task_failed",
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "use_case": use_case,
            "date": str(ds),
            "reason": reason,
            "log_url": ti.log_url,
        }
        alert["text"] = (
            f"{ti.dag_id}: task {ti.task_id} failed for use case {use_case}, D={ds} (run {ti.run_id}).\n"
            f"Reason: {reason}\nLog: {ti.log_url}"
        )
        self._send(alert)

    async def async_notify(self, context: Any) -> None:
        """A run missed its deadline (run by the triggerer; the context holds the DAG run and the deadline).

        Airflow clears a deadline only when its run succeeds, so a run that failed before it is reported too.
        """
        run = context.get("dag_run") or {}
        deadline = (context.get("deadline") or {}).get("deadline_time")
        conf = run.get("conf") or {}
        logical = run.get("logical_date")
        ds = conf.get("date") or (str(logical)[:10] if logical else "the date of its data event")
        state = run.get("state")
        what = "still running" if state in ("queued", "running") else f"ended {state}"
        alert = {
            "kind": "deadline_missed",
            "dag_id": run.get("dag_id"),
            "run_id": run.get("dag_run_id"),
            "use_case": conf.get("config"),
            "date": ds,
            "reason": f"not successful by its deadline {deadline} ({deadline_minutes()} min after it was queued): "
            f"{what}",
            "run_url": _run_url(run.get("dag_id"), run.get("dag_run_id")),
        }
        alert["text"] = (
            f"{alert['dag_id']}: run {alert['run_id']} (D={ds}) missed its deadline: {alert['reason']}.\n"
            f"Run: {alert['run_url']}"
        )
        await asyncio.to_thread(self._send, alert)

    def send(self, alert: dict[str, Any]) -> None:
        """Log ``alert`` (its ``text``) and post it as JSON to the ``ct_alerts`` webhook when it exists."""
        self._send(alert)

    def _send(self, alert: dict[str, Any]) -> None:
        log.error("ALERT %s", alert["text"])
        url = self._webhook_url()
        if not url:
            return
        request = urllib.request.Request(
            url, data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                log.info("alert posted to connection %s: HTTP %s", self.connection_id, response.status)
        except OSError as exc:
            log.warning("could not post the alert to connection %s (%s): %s", self.connection_id, url, exc)

    def _webhook_url(self) -> str | None:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(self.connection_id)
        except AirflowNotFoundException:
            log.info("no Airflow connection %r: the alert is only logged", self.connection_id)
            return None
        scheme = "https" if conn.conn_type == "https" else "http"
        port = f":{conn.port}" if conn.port else ""
        path = (conn.schema or "").lstrip("/")
        return f"{scheme}://{conn.host}{port}/{path}"


def _run_url(dag_id: str | None, run_id: str | None) -> str:
    from urllib.parse import quote

    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{dag_id}/runs/{quote(run_id or '')}"
