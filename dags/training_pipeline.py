"""
### Training pipeline: ingest, drift, validate, transform, train, evaluate, gate, deliver

One run trains one **use case** on the data window ending at its data date **D** and decides what to
do with the candidate:

`check_params` → `ingest_window` → `check_drift` + `validate_snapshot` → `transform_features` →
`train_model` → `evaluate_model` → `gate_candidate` → `route_decision` →
**promote_blue_green** | **hold_candidate** | **trigger_retrain**

**What starts a run, and its D**

* *The time schedule* (`@daily`, data intervals): the run for day D starts once D is over and trains the
  default use case (`adult`).
* *New data*: each use case has an asset, `ct://<use case>/raw`. The `ingestion` DAG checks every hour
  for a partition newer than the last one announced and emits an event whose extra holds the use case and
  the partition's date; a run started by such an event trains that use case on that date (the latest
  event, if several arrived together). Ingestion emits, not this DAG: a DAG that consumed its own events
  would trigger itself, and the ingestion DAG is cheap and frequent where training is not. (When both fire
  for the same D, the second run repeats the first's work: the same artifacts, and an already-live model is
  not switched again.) The monitoring DAG asks for retraining the same way, through `ct://retrain`
  (its event's extra names the use case and D as well).
* *A manual trigger* (the form below) or a **backfill** over past dates (Airflow's own backfill).
* The DAG has no `start_date`: data dates are independent of Airflow's calendar, so D may be any date
  with data, 2014 as well as today (`airflow dags test training_pipeline 2014-06-30`).

**Guards and alerts**

* `check_params` refuses a run before any work: a conf key this DAG does not have (a typo would otherwise run
  with defaults), a use case that is not registered (the choice is among the YAML files of the configs
  folder, `$CT_CONFIGS_DIR` or `<repo>/configs`, by name; never a path), an invalid config, or a window
  without a single partition (a run that would process nothing fails, naming the dates that have data).
* A failed task alerts (`RunAlert`): task, use case, D, the exception and a link to the task's log, in the
  log and, when the Airflow connection `ct_alerts` exists (an http(s) URL), posted to it as JSON.
  When `$CT_RUN_DEADLINE_MINUTES` is set where the DAG is parsed, a run still unfinished that long after it
  was queued raises a deadline alert through the same notifier (run by the triggerer). It is opt-in because
  Airflow 3.3.2's `airflow dags test` crashes at the end of a successful run of a DAG with a deadline.

**What a run does**

* Validation blocks: a failing Great Expectations check fails `validate_snapshot`, naming the
  column and expectation, and nothing downstream runs. Data Docs are in the run's artifacts.
* Drift is measured against the data the *live* model was trained on (from the deployment state).
* The gate compares the candidate with the live model on the same test rows, on confidence bounds
  and per slice; RETRAIN triggers a new run for the same D with the next attempt (bounded).
* Every task writes one immutable folder under `<artifact_root>/runs/<D>/<stage>/` and passes only
  its URI on; re-running D replaces D's artifacts atomically.
* `write_run_card` runs last, whatever happened once `check_params` accepted the run, and writes the card
  (`<artifact_root>/runs/<D>/card/run_card.html`, and `.json`): data and lineage, validation, drift,
  training curve, metrics beside the baselines, slices, fairness, error analysis, every gate check and
  the deployment outcome; a blocked or held run's card says why.
* A **backfill** run gates and records but does not switch the live model unless `promote_in_backfill` is
  set, and no run replaces a live model trained on newer data unless forced. A backfill runs its dates side
  by side up to its own *max active runs* (this DAG's limit of one run at a time does not apply to it): with
  `promote_in_backfill`, set that to 1 so switches happen one at a time, in date order.

**Params**, by section: *Data*: `config` (the use case), `date` (D), `window_days`; *Override*: `force` (an
operator override of the gate, recorded with `force_reason` and the triggering user); *Advanced*:
`promote_in_backfill`, `trigger_reason` (why the run was started: set by the monitoring DAG's retraining
requests, shown on the run card; an asset-triggered run takes its event's reason) and `attempt` (set by
automatic retraining).
"""

from __future__ import annotations

from airflow.sdk import (
    AssetAny,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    setup,
    task,
    teardown,
)

from dags._common import (
    RunAlert,
    deadline_alert,
    raw_asset,
    retrain_asset,
    run_request,
    run_trigger,
    use_case_names,
    use_case_param,
)

USE_CASES = use_case_names()  # file names only: parsing stays cheap
# Data intervals, not Airflow 3's default trigger timetable: the run for day D starts once D is over.
DAILY = CronDataIntervalTimetable("@daily", timezone="UTC")


def _run_context():
    """The pipelines' RunContext for the running task (imported here: nothing heavy at parse time)."""
    from pipelines.core.context import RunContext
    from pipelines.core.usecases import config_path

    context = get_current_context()
    params = context["params"]
    use_case, ds = run_request(context)
    return RunContext.create(
        config_path(use_case),
        ds,
        context["run_id"],
        attempt=params["attempt"],
        window_days=params["window_days"],
        force=params["force"],
        force_reason=params["force_reason"],
        operator=context["dag_run"].triggering_user_name,
        backfill=context["dag_run"].run_type == "backfill",
        promote_in_backfill=params["promote_in_backfill"],
        trigger=run_trigger(context),
    )


@dag(
    schedule=AssetOrTimeSchedule(timetable=DAILY, assets=AssetAny(*map(raw_asset, USE_CASES), retrain_asset())),
    start_date=None,  # any data date may run (see the doc); the scheduler itself only ever starts the latest day
    catchup=False,
    max_active_runs=1,  # deployment-state transitions happen one run at a time, in date order
    default_args={"owner": "ml-platform", "retries": 0, "on_failure_callback": RunAlert()},
    deadline=deadline_alert(),
    doc_md=__doc__,
    tags=["training", "continuous-training"],
    params={
        "config": use_case_param(
            "Which registered use case to train: a YAML file of the configs folder (data, schema, "
            "slices, thresholds, training), by name. Runs started by new data use the data's own use case.",
            section="Data",
        ),
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Data date D",
            description="Train on the window ending at this date (any date with data, also before this year). "
            "Empty: the run's logical date, or the date of the data event that started it.",
            section="Data",
        ),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Training window (days)",
            description="How many daily partitions, ending at D, to train on. Empty: the config's data.window_days.",
            section="Data",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force promotion",
            description="Promote even if the gate holds the candidate (recorded as an override with your user "
            "name). Failed validation still blocks.",
            section="Override",
        ),
        "force_reason": Param(
            None,
            type=["null", "string"],
            title="Why force",
            description="Recorded in the decision with your user name when you force a promotion.",
            section="Override",
        ),
        "promote_in_backfill": Param(
            False,
            type="boolean",
            title="Promote in a backfill",
            description="A backfill run gates and records, but does not switch the live model unless this "
            "is set. (Any run keeps a live model trained on newer data unless forced.)",
            section="Advanced",
        ),
        "trigger_reason": Param(
            None,
            type=["null", "string"],
            title="Why this run",
            description="What started the run, shown on its run card (set by retraining requests; a run "
            "started by an asset event takes the event's reason).",
            section="Advanced",
        ),
        "attempt": Param(
            1,
            type="integer",
            minimum=1,
            title="Attempt",
            description="Set by automatic retraining (a new run for the same D with the next seed); leave at 1.",
            section="Advanced",
        ),
    },
)
def training_pipeline():
    @setup  # of the run card: a refused run gets none (see write_run_card)
    @task
    def check_params() -> None:
        """Refuse undeclared conf keys, an unregistered use case, an invalid config or a window without data."""
        from pipelines.core.context import check_run_conf
        from pipelines.core.usecases import check_window

        context = get_current_context()
        check_run_conf(context["dag_run"].conf or {}, context["dag"].params.keys())  # params also hold conf keys
        ctx = _run_context()
        check_window(ctx.config, ctx.ds, ctx.window)

    @task
    def ingest_window() -> str:
        from pipelines.data.ingest import ingest_window

        return ingest_window(_run_context())

    @task
    def check_drift(snapshot_uri: str) -> str:
        from pipelines.data.drift import check_drift

        return check_drift(_run_context(), snapshot_uri)

    @task
    def validate_snapshot(snapshot_uri: str) -> str:
        from pipelines.data.validate import validate_snapshot

        return validate_snapshot(_run_context(), snapshot_uri)

    @task
    def transform_features(snapshot_uri: str, validation_uri: str) -> str:
        from pipelines.features.transform import transform_features

        return transform_features(_run_context(), snapshot_uri, validation_uri)

    @task
    def train_model(transform_uri: str) -> str:
        from pipelines.model.train import train_model

        return train_model(_run_context(), transform_uri)

    @task
    def evaluate_model(transform_uri: str, train_uri: str) -> str:
        from pipelines.evaluation.evaluate import evaluate_model

        return evaluate_model(_run_context(), transform_uri, train_uri)

    @task
    def gate_candidate(evaluation_uri: str, drift_uri: str) -> str:
        from pipelines.decision.gate import gate_candidate

        return gate_candidate(_run_context(), evaluation_uri, drift_uri)

    @task.branch
    def route_decision(decision_uri: str) -> str:
        """The gate's action, unless the switch policy holds a passed candidate (a backfill, older data)."""
        import logging

        from pipelines.core.outputs import GateOutput
        from pipelines.runner import ROUTES, route

        action, refusal = route(_run_context(), GateOutput(decision_uri).record())
        if refusal:
            logging.getLogger(__name__).warning("the gate passed the candidate, but it is held: %s", refusal)
        return ROUTES[action]

    @task
    def promote_blue_green(train_uri: str, transform_uri: str, decision_uri: str) -> str:
        from pipelines.deployment.promote import promote_blue_green

        return promote_blue_green(_run_context(), train_uri, transform_uri, decision_uri)

    @task
    def hold_candidate(decision_uri: str) -> None:
        import logging

        from pipelines.core.outputs import GateOutput
        from pipelines.runner import route

        record = GateOutput(decision_uri).record()
        refusal = route(_run_context(), record)[1]
        logging.getLogger(__name__).warning("candidate held, live model kept: %s", refusal or record.decision.reasons)

    @task
    def trigger_retrain() -> None:
        """Queue a new run of this DAG for the same D with the next attempt (the gate bounds it)."""
        import hashlib

        # What TriggerDagRunOperator raises under Airflow 3; raised here directly because importing
        # that operator costs ~0.9 s of DAG parse time (it pulls in airflow-core's ORM models;
        # see benchmarks/dag_parse.py).
        from airflow.sdk.exceptions import DagRunTriggerException

        context, ctx = get_current_context(), _run_context()
        use_case = run_request(context)[0]  # a run started by a data event retrains the event's use case
        attempt = ctx.attempt + 1
        parent = hashlib.sha1(context["run_id"].encode()).hexdigest()[:8]
        raise DagRunTriggerException(
            trigger_dag_id=context["dag"].dag_id,
            dag_run_id=f"retrain__{ctx.ds}__attempt{attempt}__{parent}",
            conf={
                **context["params"],
                "config": use_case,
                "date": ctx.ds.isoformat(),
                "attempt": attempt,
                "trigger_reason": f"the gate asked for a retrain of {ctx.ds} (attempt {attempt})",
            },
            reset_dag_run=False,
            skip_when_already_exists=True,
            wait_for_completion=False,
            allowed_states=["success"],
            failed_states=["failed"],
            poke_interval=60,
            deferrable=False,
        )

    # The teardown of check_params: it runs once everything upstream is done, in any state, provided the run was
    # accepted (all done, setup succeeded); and, unlike a plain all-done task, it does not decide the run's
    # state, so a blocked run stays failed.
    @teardown
    def write_run_card() -> str:
        """Write D's run card from its artifacts: also when a stage failed or the candidate was held."""
        from pipelines.reporting.card import write_card

        ctx = _run_context()
        return str(write_card(ctx.config, ctx.ds))

    snapshot = ingest_window()
    checked = check_params()
    checked >> snapshot
    drift = check_drift(snapshot)
    validated = validate_snapshot(snapshot)
    transformed = transform_features(snapshot, validated)
    trained = train_model(transformed)
    evaluation = evaluate_model(transformed, trained)
    decision = gate_candidate(evaluation, drift)
    delivered = [promote_blue_green(trained, transformed, decision), hold_candidate(decision), trigger_retrain()]
    route_decision(decision) >> delivered
    [checked, snapshot, drift, validated, transformed, trained, evaluation, decision, *delivered] >> write_run_card()


training_pipeline()
