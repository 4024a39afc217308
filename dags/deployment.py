"""
### Deployment: act on the live model from the Airflow UI

A manual DAG (no schedule): trigger it with the Params form and pick an **action** for a use case.

* `promote`: deliver the kept model **version** through the deployment controller: the standby slot
  loads it, the skew check (and the configured shadow period and canary ramp) run against the live
  servers, then the atomic switch; a failed check reverts.
* `rollback`: make the previously live version live again (one switch back).
* `switch`: make the standby slot live.
* `canary`: send **canary_weight** of the traffic to the standby slot (0 stops it).
* `shadow`: mirror traffic to the standby slot (**shadow** on/off); answers recorded, not returned.
* `resume` / `abort`: finish or revert a delivery whose controller stopped.
* `status`: log the deployment state.

Every action is recorded in the deployment history with the triggering user and the **reason**, and
the MLflow aliases (`blue`, `green`, `live`) follow every switch. The router picks a switch up on its
next request. Versions to promote are listed by `status` (and on the Models page).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from dags._common import use_case_param

ACTIONS = ["status", "promote", "rollback", "switch", "canary", "shadow", "resume", "abort"]  # deployment.actions


@dag(
    schedule=None,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["deployment", "continuous-training"],
    default_args={"owner": "ml-platform", "retries": 0},
    params={
        "config": use_case_param("The registered use case whose deployment to act on."),
        "action": Param("status", type="string", enum=ACTIONS, title="Action", description="See the DAG's docs."),
        "version": Param(
            None,
            type=["null", "string"],
            title="Version (promote)",
            description="A kept model version, e.g. 2026-01-14-3fa2b1c0d9e8 (see the status action).",
        ),
        "canary_weight": Param(
            0.1,
            type="number",
            minimum=0,
            exclusiveMaximum=1,
            title="Canary weight (canary)",
            description="Share of requests for the standby slot; 0 stops the canary.",
        ),
        "shadow": Param(True, type="boolean", title="Shadow on (shadow)", description="Off stops mirroring."),
        "reason": Param(
            None,
            type=["null", "string"],
            title="Reason",
            description="Why: recorded in the deployment history with your user name.",
        ),
    },
)
def deployment():
    @task
    def act() -> str:
        """Run the chosen action; a refused one fails the task with the controller's message."""
        import logging

        from pipelines.core.context import check_run_conf
        from pipelines.core.usecases import load_use_case
        from pipelines.deployment.actions import act as run_action

        context = get_current_context()
        check_run_conf(context["dag_run"].conf or {}, context["dag"].params.keys())
        params, action = context["params"], context["params"]["action"]
        done = run_action(
            load_use_case(params["config"]),
            action,
            context["run_id"],
            version=params["version"],
            canary_weight=params["canary_weight"],
            shadow=params["shadow"],
            by=context["dag_run"].triggering_user_name,
            reason=params["reason"],
        )
        logging.getLogger(__name__).info("%s: %s", action, done)
        return done

    act()


deployment()
