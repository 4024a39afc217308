"""
### Training pipeline: ingest, drift, validate, transform, train, evaluate, gate, deliver

One run trains on the data window ending at its date **D** (the logical date, or the `date` param)
and decides what to do with the candidate:

`check_params` → `ingest_window` → `check_drift` + `validate_snapshot` → `transform_features` →
`train_model` → `evaluate_model` → `gate_candidate` → `route_decision` →
**promote_blue_green** | **hold_candidate** | **trigger_retrain**

* `check_params` refuses a run whose conf names an option this DAG does not have (a typo would
  otherwise run with defaults) or whose config file is missing or invalid, naming the key or path.

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

Params: `config` (use-case YAML; empty for the project's default), `date`, `window_days`; under
*Advanced*: `force` (operator override of the gate, recorded with `force_reason` and the triggering
user), `attempt` (set by automatic retraining) and `promote_in_backfill`. A **backfill** run gates
and records but does not switch the live model unless `promote_in_backfill` is set, and no run
replaces a live model trained on newer data unless forced.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, setup, task, teardown


def _run_context():
    """The pipelines' RunContext for the running task (imported here: nothing heavy at parse time)."""
    from pipelines.core.context import RunContext

    context = get_current_context()
    params = context["params"]
    ds = params["date"] or context.get("logical_date") or context["dag_run"].run_after
    return RunContext.create(
        params["config"],
        ds,
        context["run_id"],
        attempt=params["attempt"],
        window_days=params["window_days"],
        force=params["force"],
        force_reason=params["force_reason"],
        operator=context["dag_run"].triggering_user_name,
        backfill=context["dag_run"].run_type == "backfill",
        promote_in_backfill=params["promote_in_backfill"],
    )


@dag(
    # Data intervals, not Airflow 3's default trigger timetable: the run for day D starts once D is over.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # deployment-state transitions happen one run at a time, in date order
    default_args={"owner": "ml-platform", "retries": 0},
    doc_md=__doc__,
    tags=["training", "continuous-training"],
    params={
        "config": Param(
            None,
            type=["null", "string"],
            title="Config file",
            description="The use-case YAML: data, schema, slices, thresholds, training. "
            "Empty: the project's configs/adult.yaml.",
        ),
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Data date D",
            description="Train on the window ending at this date. Empty: the run's logical date.",
        ),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Training window (days)",
            description="Empty: the config's data.window_days.",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force promotion",
            description="Promote even if the gate holds the candidate (recorded as an override). "
            "Failed validation still blocks.",
            section="Advanced",
        ),
        "force_reason": Param(
            None,
            type=["null", "string"],
            title="Why force",
            description="Recorded in the decision with your user name when you force a promotion.",
            section="Advanced",
        ),
        "attempt": Param(
            1,
            type="integer",
            minimum=1,
            title="Attempt",
            description="Set by automatic retraining; leave at 1.",
            section="Advanced",
        ),
        "promote_in_backfill": Param(
            False,
            type="boolean",
            title="Promote in a backfill",
            description="A backfill run gates and records, but does not switch the live model unless this "
            "is set. (Any run keeps a live model trained on newer data unless forced.)",
            section="Advanced",
        ),
    },
)
def training_pipeline():
    @setup  # of the run card: a refused run gets none (see write_run_card)
    @task
    def check_params() -> None:
        """Refuse undeclared conf keys and a missing or invalid config before any work starts."""
        from pipelines.core.config import load_config
        from pipelines.core.context import check_run_conf

        context = get_current_context()
        check_run_conf(context["dag_run"].conf or {}, context["dag"].params.keys())  # params also hold conf keys
        load_config(context["params"]["config"])

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
        attempt = ctx.attempt + 1
        parent = hashlib.sha1(context["run_id"].encode()).hexdigest()[:8]
        raise DagRunTriggerException(
            trigger_dag_id=context["dag"].dag_id,
            dag_run_id=f"retrain__{ctx.ds}__attempt{attempt}__{parent}",
            conf={**context["params"], "date": ctx.ds.isoformat(), "attempt": attempt},
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
