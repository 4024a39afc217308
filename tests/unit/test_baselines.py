"""Baselines: a logistic regression on real Adult, the trivial scores, and the side-by-side table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG
from sklearn.metrics import roc_auc_score

from pipelines.core.config import load_config
from pipelines.evaluation.baselines import baseline_table, simple_model, trivial_scores
from pipelines.evaluation.metrics import classification_metrics

SCHEMA = load_config(ADULT_CONFIG).data_schema
# Hand-written rows scored beside the real test split: two categories training never saw, a missing
# category and a missing number, and a low/high education pair that differs in nothing else.
BASE = {
    "age": 40.0,
    "workclass": "Private",
    "education": "HS-grad",
    "education_num": 9.0,
    "marital_status": "Married-civ-spouse",
    "occupation": "Craft-repair",
    "relationship": "Husband",
    "race": "White",
    "sex": "Male",
    "capital_gain": 0.0,
    "capital_loss": 0.0,
    "hours_per_week": 40.0,
    "native_country": "United-States",
    "income": "<=50K",
}
PROBES = pd.DataFrame(
    [
        {**BASE, "workclass": "Astronaut"},
        {**BASE, "workclass": "Pirate"},
        {**BASE, "workclass": None, "age": None},
        {**BASE, "education_num": 3.0, "education": "5th-6th"},
        {**BASE, "education_num": 16.0, "education": "Doctorate"},
    ]
)


@pytest.fixture(scope="module")
def scored(adult_frame):
    """(test rows, their scores): one fit on 16,000 real training rows, scored on 8,000 others plus PROBES."""
    rows = adult_frame.sample(24_000, random_state=0).reset_index(drop=True)
    rows[SCHEMA.numeric] = rows[SCHEMA.numeric].astype(float)
    train, test = rows.iloc[:16_000], rows.iloc[16_000:]
    assert not {"Astronaut", "Pirate"} & set(train["workclass"])
    frame = pd.concat([test, PROBES], ignore_index=True)
    return frame, simple_model(train, frame, SCHEMA, seed=0)


def test_logistic_regression_ranks_real_adult_rows_well(scored):
    frame, scores = scored
    real = frame.iloc[: -len(PROBES)]
    y = (real["income"] == ">50K").to_numpy(dtype=int)

    assert scores.shape == (len(frame),)
    assert roc_auc_score(y, scores[: len(real)]) > 0.85
    assert 0.75 < classification_metrics(y, scores[: len(real)])["accuracy"] < 0.95


def test_unseen_and_missing_categories_still_get_a_score(scored):
    _, scores = scored
    probes = scores[-len(PROBES) :]

    assert np.all(np.isfinite(probes)) and np.all((probes > 0) & (probes < 1))
    assert probes[0] == pytest.approx(probes[1])  # two unseen categories: both one-hot all-zero, same score


def test_more_education_raises_the_score(scored):
    _, scores = scored
    low, high = scores[-2], scores[-1]

    assert high > low + 0.05


def test_a_training_split_with_one_class_gives_its_rate_everywhere(adult_frame):
    train = adult_frame[adult_frame["income"] == "<=50K"].head(50)

    scores = simple_model(train, adult_frame.head(7), SCHEMA, seed=0)

    assert scores.tolist() == [0.0] * 7


def test_trivial_scores_predict_the_majority_and_rank_nothing():
    y = np.array([0, 0, 0, 1])

    metrics = classification_metrics(y, trivial_scores(4, 0.3))

    assert metrics["accuracy"] == 0.75 and metrics["roc_auc"] == 0.5 and metrics["recall"] == 0.0


Y = np.array([1, 1, 0, 0, 0, 1, 0, 0])
CANDIDATE = np.array([0.9, 0.8, 0.2, 0.1, 0.3, 0.7, 0.6, 0.2])  # one false positive: accuracy 7/8
SIMPLE = np.array([0.9, 0.4, 0.2, 0.6, 0.3, 0.7, 0.6, 0.2])  # a miss and two false positives: 5/8


def test_baseline_table_puts_each_model_and_the_hlp_beside_the_candidate():
    table = baseline_table(
        Y,
        {"candidate": CANDIDATE, "live": None, "trivial": trivial_scores(8, 0.25), "simple_model": SIMPLE},
        {"accuracy": 0.9, "roc_auc": 0.95},
    )
    rows = table["rows"]

    assert table["metrics"] == ["accuracy", "precision", "recall", "f1", "roc_auc"]
    assert list(rows) == ["candidate", "live", "trivial", "simple_model", "hlp"]
    assert rows["candidate"]["metrics"]["accuracy"] == 0.875 and rows["candidate"]["candidate_minus"] is None
    assert rows["live"]["available"] is False and set(rows["live"]["metrics"].values()) == {None}
    assert set(rows["live"]["candidate_minus"].values()) == {None}
    assert rows["trivial"]["metrics"]["accuracy"] == 0.625 and rows["trivial"]["metrics"]["roc_auc"] == 0.5
    assert rows["simple_model"]["metrics"]["accuracy"] == 0.625
    assert rows["simple_model"]["candidate_minus"]["accuracy"] == 0.25
    assert rows["simple_model"]["candidate_minus"]["recall"] == round(1 - 2 / 3, 6)
    assert rows["hlp"]["source"] == "config"
    assert rows["hlp"]["metrics"] == {"accuracy": 0.9, "precision": None, "recall": None, "f1": None, "roc_auc": 0.95}
    assert rows["hlp"]["candidate_minus"]["accuracy"] == -0.025
    assert rows["hlp"]["candidate_minus"]["precision"] is None
    json.dumps(table, allow_nan=False)


def test_baseline_table_without_hlp_or_candidate_has_no_differences():
    table = baseline_table(Y, {"simple_model": SIMPLE}, {})

    assert list(table["rows"]) == ["simple_model"]
    assert table["candidate"] is None and table["rows"]["simple_model"]["candidate_minus"] is None
