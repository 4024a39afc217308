"""Evaluate: the candidate, the live model and the baselines on the same raw test rows.

Both models are scored through their serving signatures on raw features, so a model is judged as it
will serve; the report (see ``metrics``) is logged to the candidate's MLflow run. Beside the overall
and per-slice metrics it holds the fairness audit of the protected attributes with the checks their
configured limits imply (``fairness``; the gate acts on them), the baselines table (trivial, a
logistic regression trained on the same split, human-level figures from config), the error analysis
by tags (``tags``), and whether the live model still performs on the window's rows it never saw as
it did offline (``concept``).
"""

from __future__ import annotations

import logging

import pandas as pd

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.config import METRICS
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.deployment_state import live_version
from pipelines.core.outputs import EvaluationOutput, TrainOutput, TransformOutput, require
from pipelines.core.tracking import client
from pipelines.evaluation.baselines import baseline_table, simple_model, trivial_scores
from pipelines.evaluation.concept import check_concept_drift
from pipelines.evaluation.fairness import audit, fairness_checks
from pipelines.evaluation.metrics import evaluate_frame, on_threshold, positives
from pipelines.evaluation.tags import error_analysis
from pipelines.model.scoring import score
from pipelines.model.signature import read_threshold

log = logging.getLogger(__name__)


def evaluate_model(ctx: RunContext, transform_uri: str, train_uri: str) -> str:
    """Score the test split with the candidate and the live model; write the evaluation report."""
    transformed, trained = require(TransformOutput(transform_uri)), require(TrainOutput(train_uri))
    schema = ctx.config.data_schema
    test, train = pd.read_parquet(transformed.test_raw), pd.read_parquet(transformed.train_raw)
    positive_rate = float(positives(train, schema).mean())
    candidate = score(trained.model_dir, test, schema)
    live = live_version(ctx.config)
    live_scores = score(live.model_uri, test, schema) if live else None
    # Each model is judged at its own decision threshold, which travels in its folder.
    cut = read_threshold(trained.model_dir)
    live_cut = read_threshold(live.model_uri) if live else cut
    report = evaluate_frame(test, candidate, live_scores, ctx.config, positive_rate, (cut, live_cut))
    report["live_version"] = live.version if live else None
    live_at_cut = None if live_scores is None else on_threshold(live_scores, live_cut, cut)
    simple = simple_model(train, test, schema, ctx.config.training.seed) if ctx.config.baselines.simple_model else None
    y = positives(test, schema)
    scores = {"candidate": candidate, "live": live_scores, "trivial": trivial_scores(len(y), positive_rate)}
    report["baselines"] = baseline_table(
        y, {**scores, "simple_model": simple}, ctx.config.baselines.hlp, thresholds={"candidate": cut, "live": live_cut}
    )
    report["fairness"] = audit(test, y, candidate, ctx.config, live_p=live_at_cut, threshold=cut)
    report["fairness"]["checks"] = fairness_checks(report["fairness"], ctx.config)
    report["error_analysis"] = error_analysis(
        test, y, candidate, ctx.config, cut, baseline_p={"simple_model": simple, "live": live_at_cut}
    )
    report["concept_drift"] = check_concept_drift(ctx.config, transformed, live)
    with ctx.open_stage(StageName.EVALUATE) as out:
        written = EvaluationOutput(out.path)
        write_json_atomic(written.report_path, report)
        pd.DataFrame({"candidate": candidate}).to_parquet(
            written.scores_path, index=False
        )  # the skew check's yardstick
        mlflow_client, mlflow_run = client(ctx.config), trained.metadata()["mlflow_run_id"]
        for m in METRICS:
            for who, prefix in (("candidate", ""), ("live", "live_")):
                value = report["overall"].get(who, {}).get(m)
                if value is not None:
                    mlflow_client.log_metric(mlflow_run, f"{prefix}test_{m}", value)
        mlflow_client.log_artifact(mlflow_run, str(written.report_path))
        out.finish(
            fingerprint_json(report),
            inputs={"transform": transformed, "model": trained},
            live_version=report["live_version"],
        )
    log.info("evaluation: candidate %s", {m: report["overall"]["candidate"][m] for m in METRICS})
    return out.uri
