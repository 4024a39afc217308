"""Gradient-boosted references for ``model_quality.py``: LightGBM and scikit-learn's HistGradientBoosting.

Runs inside its own venv (``.venv-quality``, from ``requirements-quality.txt``: LightGBM is not part of the
product), so it imports nothing from ``pipelines``. It trains on one raw train split and scores one raw test
split, both as the transform stage wrote them:

    .venv-quality/bin/python benchmarks/gbdt_reference.py TRAIN TEST SPEC OUT

SPEC is a JSON file ``{"numeric": [...], "categorical": [...], "label": NAME, "positive": VALUE, "seed": N}``.
Both models hold out ``HOLDOUT`` of the train rows (stratified, seeded) to stop early on, and see categorical
features as pandas categories (their own categorical splits, no one-hot). The test scores go to OUT as parquet
(one column per model, in the test split's row order); stdout gets JSON: per model its version, fit seconds,
trees kept and accuracy at 0.5, or the error that kept it from running (LightGBM missing: HistGradientBoosting
still runs, so the script also works in the main venv).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HOLDOUT = 0.1
TREES = 500
LEARNING_RATE = 0.05
LEAVES = 31
PATIENCE = 50


def frame(path: Path, spec: dict[str, Any], categories: dict[str, list[str]] | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The features of a raw split (categoricals as pandas categories over ``categories``) and its 0/1 label."""
    raw = pd.read_parquet(path)
    x = raw[spec["numeric"]].astype(float)
    for name in spec["categorical"]:
        values = raw[name].astype(object).where(raw[name].notna(), None)
        known = categories[name] if categories else sorted(v for v in values.dropna().unique())
        x[name] = pd.Categorical(values, categories=known)
    return x, (raw[spec["label"]] == spec["positive"]).to_numpy(dtype=int)


def fit_lightgbm(x: pd.DataFrame, y: np.ndarray, seed: int) -> tuple[Any, dict[str, Any]]:
    import lightgbm

    x_fit, x_stop, y_fit, y_stop = train_test_split(x, y, test_size=HOLDOUT, stratify=y, random_state=seed)
    model = lightgbm.LGBMClassifier(
        n_estimators=TREES,
        learning_rate=LEARNING_RATE,
        num_leaves=LEAVES,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        verbose=-1,
    )
    start = time.perf_counter()
    model.fit(
        x_fit,
        y_fit,
        eval_set=[(x_stop, y_stop)],
        eval_metric="auc",
        callbacks=[lightgbm.early_stopping(PATIENCE, verbose=False)],
    )
    seconds = time.perf_counter() - start
    return model, {"version": lightgbm.__version__, "seconds": seconds, "trees": int(model.best_iteration_)}


def fit_hist_gradient_boosting(x: pd.DataFrame, y: np.ndarray, seed: int) -> tuple[Any, dict[str, Any]]:
    import sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=TREES,
        learning_rate=LEARNING_RATE,
        max_leaf_nodes=LEAVES,
        categorical_features="from_dtype",
        early_stopping=True,
        validation_fraction=HOLDOUT,
        n_iter_no_change=PATIENCE,
        scoring="roc_auc",
        random_state=seed,
    )
    start = time.perf_counter()
    model.fit(x, y)
    seconds = time.perf_counter() - start
    return model, {"version": sklearn.__version__, "seconds": seconds, "trees": int(model.n_iter_)}


MODELS = {"lightgbm": fit_lightgbm, "hist_gradient_boosting": fit_hist_gradient_boosting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    x_train, y_train = frame(args.train, spec, None)
    categories = {name: list(x_train[name].cat.categories) for name in spec["categorical"]}
    x_test, y_test = frame(args.test, spec, categories)  # values unseen in training become missing
    results, scores = {}, {}
    for name, fit in MODELS.items():
        try:
            model, result = fit(x_train, y_train, spec["seed"])
        except ImportError as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        scores[name] = model.predict_proba(x_test)[:, 1]
        result["accuracy"] = float(((scores[name] >= 0.5) == y_test).mean())
        results[name] = result
    pd.DataFrame(scores).to_parquet(args.out, index=False)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
