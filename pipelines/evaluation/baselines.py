"""Baselines beside the candidate: the trivial one, a simple model trained in the same run, and HLP figures.

The simple model is a scikit-learn logistic regression on the same raw features the candidate sees (one-hot
categoricals, standardised numerics, missing values imputed), fit on the run's train split (an even sample of
it when large: ``evaluate.SIMPLE_MODEL_ROWS``) and scored on its test split. If the deep model cannot beat it, the
extra machinery is not paying for itself. ``baseline_table`` puts every model's metrics, and the human-level or
legacy figures from the config, side by side with the candidate's. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import METRICS, Schema
from pipelines.evaluation.metrics import MISSING, THRESHOLD, classification_metrics, label_prior, positives

CANDIDATE = "candidate"
HLP = "hlp"


def trivial_scores(rows: int, train_positive_rate: float | np.ndarray) -> np.ndarray:
    """The training positive rate for every row: predicts the training majority class, ranks nothing (AUC 0.5).
    Given a multi-class prior (each class's training share), that prior for every row, [rows, classes]."""
    if np.ndim(train_positive_rate) == 1:
        return np.tile(np.asarray(train_positive_rate, dtype=float), (rows, 1))
    return np.full(rows, float(train_positive_rate))


def simple_model(train_frame: pd.DataFrame, test_frame: pd.DataFrame, schema: Schema, seed: int) -> np.ndarray:
    """Positive-class probabilities for ``test_frame`` from a logistic regression fit on ``train_frame``
    (``fit_simple_model``)."""
    return fit_simple_model(train_frame, schema, seed)(test_frame)


def fit_simple_model(train_frame: pd.DataFrame, schema: Schema, seed: int) -> Callable[[pd.DataFrame], np.ndarray]:
    """A logistic regression fit on ``train_frame``: the function giving positive-class probabilities of rows.

    Categories unseen in training score as all-zero one-hot columns; a missing category is its own value;
    a missing number takes the training median plus a missing-indicator column. With a single class in
    ``train_frame`` there is nothing to learn, and every row gets that class's training rate. For a multi-class
    label: a multinomial logistic regression's class probabilities [rows, classes] (a class absent from
    ``train_frame`` gets 0).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    y = positives(train_frame, schema)
    if len(np.unique(y)) < 2:
        prior = label_prior(train_frame, schema)
        return lambda rows: trivial_scores(len(rows), prior)
    features = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                schema.model_numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), schema.model_categorical),
        ]
    )
    model = make_pipeline(features, LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(_inputs(train_frame, schema), y)

    def predict(rows: pd.DataFrame) -> np.ndarray:
        proba = model.predict_proba(_inputs(rows, schema))
        if not schema.label.is_multiclass:
            return proba[:, 1]
        out = np.zeros((len(rows), len(schema.label.classes)))
        out[:, model.classes_] = proba  # LogisticRegression is multinomial over the classes it saw
        return out

    return predict


def _inputs(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The model's features (not the audit-only ones): numerics as floats (unparseable ones missing),
    categoricals as strings with ``missing`` for nulls."""
    columns = {name: pd.to_numeric(frame[name], errors="coerce").astype(float) for name in schema.model_numeric}
    for name in schema.model_categorical:
        columns[name] = frame[name].astype(object).where(frame[name].notna(), MISSING).astype(str)
    return pd.DataFrame(columns, index=frame.index)


def baseline_table(
    y: np.ndarray,
    scores_by_name: Mapping[str, np.ndarray | None],
    hlp: Mapping[str, float],
    candidate: str = CANDIDATE,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Each model's metrics on the same rows, the HLP figures, and the candidate's lead over each.

    Args:
        y: the true labels (0/1).
        scores_by_name: scores per model in display order, e.g. candidate, live, trivial, simple_model;
            ``None`` for one that does not exist in this run (no live model yet): listed as unavailable.
        hlp: human-level or legacy figure per metric (``config.baselines.hlp``); a row ``hlp`` when given.
        candidate: the name in ``scores_by_name`` the others are compared with.
        thresholds: each model's decision threshold (default 0.5), e.g. the candidate's and live's own.

    Returns:
        ``{"metrics": [...], "candidate": name, "rows": {name: row}}``, each row with ``available``,
        ``source`` (``scores`` or ``config``), ``metrics`` (each of METRICS, None where undefined) and
        ``candidate_minus`` (the candidate's metric minus this row's; None on the candidate's own row).
    """
    y = np.asarray(y, dtype=int)
    rows: dict[str, dict[str, Any]] = {}
    for name, scores in scores_by_name.items():
        cut = (thresholds or {}).get(name, THRESHOLD)
        values = None if scores is None else classification_metrics(y, scores, cut)
        rows[name] = {
            "available": values is not None,
            "source": "scores",
            "n": int(len(y)),
            "metrics": {m: None if values is None else values[m] for m in METRICS},
        }
    if hlp:
        rows[HLP] = {
            "available": True,
            "source": "config",
            "n": None,
            "metrics": {m: None if m not in hlp else round(float(hlp[m]), 6) for m in METRICS},
        }
    mine = rows[candidate]["metrics"] if candidate in rows else None
    for name, row in rows.items():
        row["candidate_minus"] = (
            None if mine is None or name == candidate else {m: _minus(mine[m], row["metrics"][m]) for m in METRICS}
        )
    return {"metrics": list(METRICS), "candidate": candidate if mine is not None else None, "rows": rows}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)
