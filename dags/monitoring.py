"""
### Monitoring: watch the live model from the router's logs, alarm, retrain, roll back

Hourly (data intervals: the run for hour H starts once H is over), or on demand from the Params form,
for one registered use case:

* `monitor_interval` reads the router's prediction and feedback logs for the interval and measures
  software metrics (request and error rates, latency p50/p99 per slot and version), inputs (missing,
  out-of-range and unseen-category rates; drift per feature against the live model's training rows,
  by the training pipeline's own drift check), outputs (prediction distribution, positive rate,
  failed answers) and, once labels have arrived, accuracy and AUC overall, per slice and per protected
  group with intervals, against the live model's offline figures. It writes the interval's report
  (`<artifact_root>/monitoring/<YYYY-MM-DDTHHMM>/report.html`, offline, each metric over time with its
  threshold and the alarms) and returns the alarms. Re-running an hour gives the same report (labels
  count up to the interval's end plus `monitoring.label_wait_hours`).
* `notify_alarms` logs every alarm and posts warn and critical ones to the `ct_alerts` webhook
  connection when it exists.
* `watch_promotion`: for `monitoring.watch_hours` after a promotion, the new live version is compared
  with the previous one (still loaded in the other slot); on a breach it is rolled back and the
  deployment history says why.
* `retrain_needed` → `request_training`: a drift or performance alarm asks for retraining through the
  Asset `ct://retrain` (the training DAG is scheduled on it), with the alarms as the reason, unless
  `monitoring.retrain_cooldown_hours` or `monitoring.max_retrains_per_day` hold it back. Whether the
  retrained candidate goes live stays the gate's decision.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from dags._common import RunAlert, retrain_asset, use_case_param

RETRAIN = retrain_asset()


def _interval():
    """(config, start, end, feedback cut-off) of the running monitoring run."""
    from datetime import UTC, datetime, timedelta

    from pipelines.core.usecases import load_use_case

    context = get_current_context()
    params = context["params"]
    config = load_use_case(params["config"])
    if params["end"]:
        end = datetime.fromisoformat(params["end"]).astimezone(UTC)
    else:
        end = context.get("data_interval_end") or context["dag_run"].run_after
    start = datetime.fromisoformat(params["start"]).astimezone(UTC) if params["start"] else end - timedelta(hours=1)
    cut = min(datetime.now(UTC), end + timedelta(hours=config.monitoring.label_wait_hours))
    return config, start, end, cut


@dag(
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=None,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["monitoring", "continuous-training"],
    default_args={"owner": "ml-platform", "retries": 0, "on_failure_callback": RunAlert()},
    params={
        "config": use_case_param("The registered use case whose live model to watch."),
        "end": Param(
            None,
            type=["null", "string"],
            title="Interval end",
            description="ISO date-time (UTC) the interval ends at. Empty: the run's data interval end.",
        ),
        "start": Param(
            None,
            type=["null", "string"],
            title="Interval start",
            description="ISO date-time (UTC) the interval starts at. Empty: one hour before its end.",
        ),
    },
)
def monitoring():
    @task
    def monitor_interval() -> dict:
        """Measure the interval, judge the alarms, write the report; returns what later tasks need."""
        from pipelines.core.context import check_run_conf
        from pipelines.monitoring.alarms import alarms
        from pipelines.monitoring.metrics import monitor
        from pipelines.monitoring.report import write_report

        context = get_current_context()
        check_run_conf(context["dag_run"].conf or {}, context["dag"].params.keys())
        config, start, end, cut = _interval()
        report = monitor(config, start, end, now=cut)
        found = alarms(config, report)
        page = write_report(config, start, end, report, found)
        return {
            "use_case": context["params"]["config"],
            "interval": f"{start.isoformat()}..{end.isoformat()}",
            "report": str(page),
            "alarms": [a.to_dict() for a in found],
        }

    @task
    def notify_alarms(summary: dict) -> int:
        """Log every alarm; post warn and critical ones to the alert webhook."""
        import logging

        loud = [a for a in summary["alarms"] if a["severity"] in ("warn", "critical")]
        for alarm in summary["alarms"]:
            logging.getLogger(__name__).warning("alarm %s (%s): %s", alarm["name"], alarm["severity"], alarm["message"])
        if loud:
            lines = "\n".join(f"- [{a['severity']}] {a['message']}" for a in loud)
            RunAlert().send(
                {
                    "kind": "monitoring_alarms",
                    "use_case": summary["use_case"],
                    "interval": summary["interval"],
                    "alarms": loud,
                    "report": summary["report"],
                    "text": f"{summary['use_case']}: {len(loud)} alarm(s) in {summary['interval']}\n{lines}\n"
                    f"Report: {summary['report']}",
                }
            )
        return len(loud)

    @task
    def watch_promotion() -> dict | None:
        """Compare a recently promoted version with the previous one; roll it back on a breach."""
        from pipelines.monitoring.loop import watch

        config, _, _, cut = _interval()
        return watch(config, cut)

    @task.short_circuit
    def retrain_needed(summary: dict) -> dict | bool:
        """A retraining request for this interval, if its alarms ask for one and the cooldown and cap allow it."""
        import logging

        from pipelines.core.usecases import partition_days
        from pipelines.monitoring.loop import request_retrain

        reasons = [a["message"] for a in summary["alarms"] if a["retrain"]]
        if not reasons:
            return False
        config, _, _, cut = _interval()
        days = partition_days(config)
        request, why = request_retrain(config, summary["interval"], reasons, days[-1].isoformat(), cut)
        if why != "new":
            logging.getLogger(__name__).warning("no retraining requested: %s", why)
            return False
        return {**request, "use_case": summary["use_case"]}

    @task(outlets=[RETRAIN])
    def request_training(request: dict) -> None:
        """Emit the retraining event: the training DAG runs on it with the alarms as its trigger reason."""
        get_current_context()["outlet_events"][RETRAIN].extra = {
            "use_case": request["use_case"],
            "ds": request["ds"],
            "reason": "monitoring alarm: " + "; ".join(request["reasons"]),
            "interval": request["interval"],
        }

    summary = monitor_interval()
    notify_alarms(summary)
    watch_promotion()
    request_training(retrain_needed(summary))


monitoring()
