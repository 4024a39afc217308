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

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.config import METRICS, Config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.deployment_state import live_version
from pipelines.core.outputs import SNAPSHOT_BATCH_ROWS, EvaluationOutput, TrainOutput, TransformOutput, require
from pipelines.core.tracking import client
from pipelines.evaluation.baselines import baseline_table, fit_simple_model, trivial_scores
from pipelines.evaluation.concept import check_concept_drift
from pipelines.evaluation.fairness import audit, fairness_checks
from pipelines.evaluation.metrics import evaluate_frame, label_prior, on_threshold, positives
from pipelines.evaluation.tags import error_analysis
from pipelines.model.scoring import load_scorer, predict_with
from pipelines.model.signature import read_threshold

log = logging.getLogger(__name__)

SIMPLE_MODEL_ROWS = 200_000  # the simple baseline is fit on at most about this many train rows, evenly spread


def evaluation_columns(config: Config) -> list[str]:
    """The test rows' columns the report reads beside the scores: the label, the slice and protected features and
    those the tags' rules name."""
    schema = config.data_schema
    slices = {name for features in config.slices for name in features}
    rules = {condition.column for tag in config.tags for condition in tag.conditions}
    wanted = {schema.label.name, *slices, *config.protected_attributes, *rules}
    return [name for name in schema.columns if name in wanted]


def sample_rows(path: Path, limit: int) -> pd.DataFrame:
    """At most about ``limit`` rows of a Parquet file, evenly spread (every k-th row of each batch), read batch by
    batch; the whole file when it holds no more."""
    parquet = pq.ParquetFile(path)
    step = max(1, -(-parquet.metadata.num_rows // limit))
    if step == 1:
        return parquet.read().to_pandas()
    return pd.concat([b.to_pandas().iloc[::step] for b in parquet.iter_batches(SNAPSHOT_BATCH_ROWS)], ignore_index=True)


def score_test(
    path: Path,
    config: Config,
    model_dir: str | Path,
    live_dir: str | Path | None,
    simple: Callable[[pd.DataFrame], np.ndarray] | None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Score the test split batch by batch with the candidate, the live model (if any) and the simple model (if
    any), keeping of each row only the ``evaluation_columns``: memory holds one batch of whole rows.

    Returns:
        The kept columns of every test row, in order, and each model's scores ("candidate", "live",
        "simple_model"; those given).
    """
    schema = config.data_schema
    scorers = {"candidate": functools.partial(predict_with, load_scorer(model_dir), schema=schema)}
    if live_dir is not None:
        scorers["live"] = functools.partial(predict_with, load_scorer(live_dir), schema=schema)
    if simple is not None:
        scorers["simple_model"] = simple
    parquet, keep = pq.ParquetFile(path), evaluation_columns(config)
    kept, scores = [], {name: [] for name in scorers}
    batches = parquet.iter_batches(SNAPSHOT_BATCH_ROWS) if parquet.metadata.num_rows else [parquet.read()]
    for batch in batches:
        rows = batch.to_pandas()
        for name, scorer in scorers.items():
            scores[name].append(scorer(rows))
        kept.append(rows[keep])
    return pd.concat(kept, ignore_index=True), {name: np.concatenate(parts) for name, parts in scores.items()}


def evaluate_model(ctx: RunContext, transform_uri: str, train_uri: str) -> str:
    """Score the test split with the candidate and the live model; write the evaluation report."""
    transformed, trained = require(TransformOutput(transform_uri)), require(TrainOutput(train_uri))
    schema = ctx.config.data_schema
    positive_rate = label_prior(pd.read_parquet(transformed.train_raw, columns=[schema.label.name]), schema)
    live = live_version(ctx.config)
    simple = None
    if ctx.config.baselines.simple_model:
        simple = fit_simple_model(
            sample_rows(transformed.train_raw, SIMPLE_MODEL_ROWS), schema, ctx.config.training.seed
        )
    test, scored = score_test(
        transformed.test_raw, ctx.config, trained.model_dir, live.model_uri if live else None, simple
    )
    candidate, live_scores, simple = scored["candidate"], scored.get("live"), scored.get("simple_model")
    # Each model is judged at its own decision threshold, which travels in its folder.
    cut = read_threshold(trained.model_dir)
    live_cut = read_threshold(live.model_uri) if live else cut
    report = evaluate_frame(test, candidate, live_scores, ctx.config, positive_rate, (cut, live_cut))
    report["live_version"] = live.version if live else None
    live_at_cut = None if live_scores is None else on_threshold(live_scores, live_cut, cut)
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
        # A multi-class model's served ``probability`` is its predicted class's: the skew check compares that.
        pd.DataFrame({"candidate": candidate.max(axis=1) if candidate.ndim == 2 else candidate}).to_parquet(
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
