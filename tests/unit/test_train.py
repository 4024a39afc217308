"""Training with real TensorFlow: the exported model takes raw features and stands alone."""

from __future__ import annotations

import shutil
from datetime import date

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, ingest_and_validate, write_config

from pipelines.core.artifacts import read_metadata
from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, TrainOutput, TransformOutput
from pipelines.data.demo import read_adult_wheel, write_partitions
from pipelines.features.transform import transform_features
from pipelines.model.scoring import load_scorer, score
from pipelines.model.signature import EXAMPLES_INPUT
from pipelines.model.train import train_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import ADULT_WHEEL

    tmp = tmp_path_factory.mktemp("train")
    path = write_config(tmp, {**SMALL, "training": {"epochs": 2}})
    write_partitions(read_adult_wheel(ADULT_WHEEL), load_config(path), date(2026, 1, 1), 800, days=3)
    ctx = RunContext.create(path, "2026-01-03")
    transform_uri = transform_features(ctx, *ingest_and_validate(ctx))
    return ctx, transform_uri, train_model(ctx, transform_uri)


def test_exported_model_scores_raw_rows_without_the_transform_output(trained, tmp_path):
    ctx, transform_uri, train_uri = trained
    test = pd.read_parquet(TransformOutput(transform_uri).test_raw)
    model = tmp_path / "model"
    shutil.copytree(TrainOutput(train_uri).model_dir, model)
    shutil.rmtree(transform_uri)  # the TFT graph and vocabularies must live inside the model

    p = score(model, test, ctx.config.data_schema)

    assert p.shape == (len(test),) and ((p > 0) & (p < 1)).all()
    y = (test["income"] == ">50K").to_numpy()
    accuracy = np.mean((p >= 0.5) == y)
    assert accuracy > max(y.mean(), 1 - y.mean()) + 0.03, "better than always predicting the majority"


def test_serving_signature_takes_serialized_examples_and_tolerates_missing_features(trained):
    ctx, _, train_uri = trained
    serve = load_scorer(TrainOutput(train_uri).model_dir)
    (spec,) = serve.structured_input_signature[1].values()
    assert list(serve.structured_input_signature[1]) == [EXAMPLES_INPUT] and spec.dtype.name == "string"

    row = {"age": 52.0, "workclass": "Self-emp-inc", "education": "Masters", "education_num": 14.0,
           "marital_status": "Married-civ-spouse", "occupation": "Exec-managerial", "relationship": "Husband",
           "race": "White", "sex": "Male", "capital_gain": 15024.0, "capital_loss": 0.0,
           "hours_per_week": 60.0, "native_country": "United-States"}  # fmt: skip
    sparse = {**row, "workclass": None, "capital_gain": np.nan, "native_country": "Atlantis"}
    frame = pd.DataFrame([row, sparse]).astype({"workclass": "object"})
    p = score(TrainOutput(train_uri).model_dir, frame, ctx.config.data_schema)
    assert p.shape == (2,) and np.isfinite(p).all()
    assert p[0] > 0.5, "a textbook high earner"


def test_training_is_logged_to_mlflow_with_its_seed(trained):
    import mlflow

    ctx, _, train_uri = trained
    meta = read_metadata(train_uri)
    assert meta["seed"] == ctx.config.training.seed  # attempt 1
    mlflow.set_tracking_uri(ctx.config.tracking_uri)
    run = mlflow.get_run(meta["mlflow_run_id"])
    assert run.data.params["seed"] == str(ctx.config.training.seed)
    assert run.data.tags["attempt"] == "1" and run.data.tags["ds"] == "2026-01-03"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1]
    assert history[-1].value < history[0].value


def test_an_audit_only_feature_is_carried_but_never_fed_to_the_model(tmp_path, adult_frame):
    from pipelines.evaluation.baselines import simple_model

    config = load_config(write_config(tmp_path, {**SMALL, "training": {"epochs": 1}}))
    features = [
        f if f.name != "race" else f.model_copy(update={"audit_only": True}) for f in config.data_schema.features
    ]
    config = config.model_copy(update={"data_schema": config.data_schema.model_copy(update={"features": features})})
    write_partitions(adult_frame, config, date(2026, 1, 1), 800, days=3)
    ctx = RunContext.create(config, "2026-01-03")
    transformed = TransformOutput(transform_features(ctx, *ingest_and_validate(ctx)))
    model = TrainOutput(train_model(ctx, str(transformed.path))).model_dir
    test, train = pd.read_parquet(transformed.test_raw), pd.read_parquet(transformed.train_raw)

    assert "race" in test.columns and test["race"].nunique() > 2, "carried through the splits for audits"
    assets = transformed.tft_dir / "transform_fn" / "assets"
    assert (assets / "sex").exists() and not (assets / "race").exists(), "no vocabulary for it"
    recoded = test.assign(race="Amer-Indian-Eskimo")
    np.testing.assert_array_equal(score(model, test, config.data_schema), score(model, recoded, config.data_schema))
    np.testing.assert_array_equal(
        simple_model(train, test, config.data_schema, 0), simple_model(train, recoded, config.data_schema, 0)
    )


def test_a_threshold_chosen_on_held_out_rows_travels_with_the_model(tmp_path, adult_frame):
    import json

    from pipelines.evaluation.metrics import classification_metrics
    from pipelines.model.signature import THRESHOLD_FILE, read_threshold

    path = write_config(tmp_path, {**SMALL, "training": {"epochs": 1, "threshold": {"strategy": "max_f1"}}})
    config = load_config(path)
    write_partitions(adult_frame, config, date(2026, 1, 1), 800, days=3)
    ctx = RunContext.create(config, "2026-01-03")
    transformed = TransformOutput(transform_features(ctx, *ingest_and_validate(ctx)))
    trained = TrainOutput(train_model(ctx, str(transformed.path)))

    train, held = pd.read_parquet(transformed.train_raw), pd.read_parquet(transformed.validation_raw)
    assert 0.05 < len(held) / (len(held) + len(train)) < 0.15, "about validation_fraction 0.1 of the train split"
    keys = [SOURCE_DS, SOURCE_ROW]
    assert not set(map(tuple, held[keys].to_numpy())) & set(map(tuple, train[keys].to_numpy())), "held out"
    record = json.loads((trained.model_dir / THRESHOLD_FILE).read_text())
    assert record["strategy"] == "max_f1" and record["validation_rows"] == len(held)
    assert (
        read_threshold(trained.model_dir)
        == record["threshold"]
        == trained.metadata()["decision_threshold"]["threshold"]
    )
    y = (held["income"] == ">50K").to_numpy(dtype=int)
    p = score(trained.model_dir, held, config.data_schema)
    assert classification_metrics(y, p, record["threshold"])["f1"] >= classification_metrics(y, p, 0.5)["f1"]
