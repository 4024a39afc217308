"""
### Ingestion: announce each use case's new daily partition as an asset event

Every hour, for each registered use case (the YAML files of the configs folder, `$CT_CONFIGS_DIR` or
`<repo>/configs`), `announce_<use case>` looks for the newest daily partition under the use case's data
root. If it is newer than the last one announced (the asset's last event), it emits an event on the asset
`ct://<use case>/raw` whose extra is `{"use_case": ..., "ds": "YYYY-MM-DD", "partition": <path>}`; the
training DAG, scheduled on these assets as well as on its daily timetable, then trains that use case on
that date. With nothing new the task is skipped and emits nothing.

A partition is only announced here, not read: reading, quarantining and validating it is the training run's
work (`ingest_window`, `validate_snapshot`), keyed by the date the event carries. Later, the monitoring DAG's
retrain requests arrive at the training DAG the same way.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from dags._common import RunAlert, raw_asset, use_case_names

USE_CASES = use_case_names()  # file names only: parsing stays cheap


def announce(use_case: str):
    """The task that announces ``use_case``'s newest partition, once."""
    asset = raw_asset(use_case)

    @task(task_id=f"announce_{use_case}", inlets=[asset], outlets=[asset])
    def announce_partition() -> str:
        from datetime import date

        from airflow.sdk.exceptions import AirflowSkipException

        from pipelines.core.usecases import load_use_case, new_partition

        context = get_current_context()
        last = context["inlet_events"][asset].ascending(False).limit(1)
        announced = date.fromisoformat(last[0].extra["ds"]) if len(last) and "ds" in last[0].extra else None
        config = load_use_case(use_case)
        day = new_partition(config, announced)
        if day is None:
            raise AirflowSkipException(
                f"no new partition for {use_case} under {config.data.root} (last announced: {announced or 'none'})"
            )
        context["outlet_events"][asset].extra = {
            "use_case": use_case,
            "ds": day.isoformat(),
            "partition": str(config.data.partition(day)),
        }
        return day.isoformat()

    return announce_partition()


@dag(
    schedule=CronTriggerTimetable("@hourly", timezone="UTC"),
    start_date=None,
    catchup=False,
    max_active_runs=1,  # two runs at once could announce the same partition twice
    default_args={"owner": "ml-platform", "retries": 0, "on_failure_callback": RunAlert()},
    doc_md=__doc__,
    tags=["ingestion", "continuous-training"],
)
def ingestion():
    for use_case in USE_CASES:
        announce(use_case)


ingestion()
