"""Training with real TensorFlow: the exported model takes raw features and stands alone; the fit follows the
config (early stopping, class weights, seeds, the sanity check, warm start) and is logged to MLflow whole."""

from __future__ import annotations

import shutil
from datetime import date

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, ingest_and_validate, write_config

from pipelines.core.artifacts import read_metadata
from pipelines.core.config import Config, ConfigError, EarlyStopping, load_config
from pipelines.core.context import RunContext
from pipelines.core.deployment_state import SlotRecord
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, TrainOutput, TransformOutput
from pipelines.data.demo import read_adult_wheel, write_partitions
from pipelines.features.transform import transform_features
from pipelines.model.scoring import load_scorer, score
from pipelines.model.signature import EXAMPLES_INPUT
from pipelines.model.train import (
    SanityCheckFailed,
    build_model,
    class_weights,
    fit,
    model_inputs,
    remap_rows,
    sanity_check,
    train_dataset,
    train_model,
    validation_data,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A transform with a validation split (the threshold is chosen on it) and a model trained with early stopping."""
    from conftest import ADULT_WHEEL

    tmp = tmp_path_factory.mktemp("train")
    training = {"epochs": 2, "threshold": {"strategy": "max_f1"}, "early_stopping": {"patience": 1}}
    path = write_config(tmp, {**SMALL, "training": training})
    write_partitions(read_adult_wheel(ADULT_WHEEL), load_config(path), date(2026, 1, 1), 800, days=3)
    ctx = RunContext.create(path, "2026-01-03")
    transform_uri = transform_features(ctx, *ingest_and_validate(ctx))
    return ctx, transform_uri, train_model(ctx, transform_uri)


def variant(config: Config, **training) -> Config:
    """``config`` with some ``training`` settings changed: one epoch of a model with dropout unless said."""
    changed = config.training.model_copy(update={"epochs": 1, "dropout": 0.1, "early_stopping": None, **training})
    return config.model_copy(update={"training": changed})


@pytest.fixture(scope="module")
def one_epoch(trained):
    """One epoch on the fixture's transform output with seed 7."""
    ctx, transform_uri, _ = trained
    return fit(variant(ctx.config), TransformOutput(transform_uri), seed=7)


def weights(fitted) -> list[np.ndarray]:
    return fitted.model.get_weights()


def test_exported_model_scores_raw_rows_without_the_transform_output(trained, tmp_path):
    ctx, transform_uri, train_uri = trained
    test = pd.read_parquet(TransformOutput(transform_uri).test_raw)
    model = tmp_path / "model"
    shutil.copytree(TrainOutput(train_uri).model_dir, model)
    shutil.move(transform_uri, tmp_path / "transform")  # the TFT graph and vocabularies must live inside the model
    try:
        p = score(model, test, ctx.config.data_schema)
    finally:
        shutil.move(tmp_path / "transform", transform_uri)  # back, for the module's other tests

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


def test_the_mlflow_run_holds_what_reproduces_and_explains_the_model(trained):
    import mlflow
    from mlflow.models import Model

    ctx, transform_uri, train_uri = trained
    meta, transformed = read_metadata(train_uri), TransformOutput(transform_uri)
    mlflow.set_tracking_uri(ctx.config.tracking_uri)
    run, client = mlflow.get_run(meta["mlflow_run_id"]), mlflow.MlflowClient()
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags

    assert tags["code_version"] == meta["code_version"] and tags["config_hash"] == meta["config_hash"]
    assert params["early_stopping.patience"] == "1" and params["early_stopping.monitor"] == "val_auc"
    assert params["hidden_units"] == "[64, 32]" and params["dropout"] == "0.0" and params["class_weights"] == "none"
    assert tags["warm_start"] == "not used: warm_start is off"
    val_auc = client.get_metric_history(run.info.run_id, "val_auc")
    assert [m.step for m in val_auc] == list(range(meta["epochs_trained"])) == [0, 1]
    assert metrics["final_val_auc"] == pytest.approx(val_auc[meta["best_epoch"]].value)
    assert metrics["best_epoch"] == meta["best_epoch"] and meta["sanity_check"]["result"] == "passed"

    fingerprints = {**transformed.metadata()["split_fingerprints"], "validation": meta["validation"]["fingerprint"]}
    logged = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert logged == {name: fp[: len(logged[name])] for name, fp in fingerprints.items()} and len(logged) == 3
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"model", "split.json"}
    uri = f"runs:/{run.info.run_id}/model"
    described = Model.load(uri)
    raw = [f.name for f in ctx.config.data_schema.model_features]
    assert described.signature.inputs.input_names() == raw
    assert list(described.load_input_example(uri).columns) == raw


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


def test_a_threshold_chosen_on_held_out_rows_travels_with_the_model(trained):
    import json

    from pipelines.evaluation.metrics import classification_metrics
    from pipelines.model.signature import THRESHOLD_FILE, read_threshold

    ctx, transform_uri, train_uri = trained
    config, transformed, model = ctx.config, TransformOutput(transform_uri), TrainOutput(train_uri)
    train, held = pd.read_parquet(transformed.train_raw), pd.read_parquet(transformed.validation_raw)
    assert 0.05 < len(held) / (len(held) + len(train)) < 0.15, "about validation_fraction 0.1 of the train split"
    keys = [SOURCE_DS, SOURCE_ROW]
    assert not set(map(tuple, held[keys].to_numpy())) & set(map(tuple, train[keys].to_numpy())), "held out"
    record = json.loads((model.model_dir / THRESHOLD_FILE).read_text())
    assert record["strategy"] == "max_f1" and record["validation_rows"] == len(held)
    assert read_threshold(model.model_dir) == record["threshold"] == model.metadata()["decision_threshold"]["threshold"]
    y = (held["income"] == ">50K").to_numpy(dtype=int)
    p = score(model.model_dir, held, config.data_schema)
    assert classification_metrics(y, p, record["threshold"])["f1"] >= classification_metrics(y, p, 0.5)["f1"]


def test_the_same_seed_gives_the_same_model_and_another_seed_another(trained, one_epoch):
    ctx, transform_uri, _ = trained
    again = fit(variant(ctx.config), TransformOutput(transform_uri), seed=7)
    other = fit(variant(ctx.config), TransformOutput(transform_uri), seed=8)

    assert again.history == one_epoch.history
    assert all(np.array_equal(a, b) for a, b in zip(weights(again), weights(one_epoch), strict=True))
    assert other.history["val_auc"] != one_epoch.history["val_auc"]
    assert not any(np.array_equal(a, b) for a, b in zip(weights(other), weights(one_epoch), strict=True))


def test_early_stopping_stops_on_a_plateau_and_keeps_the_best_epoch(trained, one_epoch):
    ctx, transform_uri, _ = trained
    plateau = EarlyStopping(patience=2, min_delta=1.0)  # no AUC can rise by 1: no epoch after the first improves
    fitted = fit(variant(ctx.config, epochs=10, early_stopping=plateau), TransformOutput(transform_uri), seed=7)

    assert fitted.details["epochs_trained"] == 3 and fitted.details["stopped_epoch"] == 2, "patience 2, then stop"
    assert fitted.details["best_epoch"] == 0 and fitted.history["loss"][0] == one_epoch.history["loss"][0]
    assert fitted.history["val_auc"][2] != fitted.history["val_auc"][0], "the last epoch's model differs"
    kept = zip(weights(fitted), weights(one_epoch), strict=True)
    assert all(np.array_equal(a, b) for a, b in kept), "the first epoch's weights are restored"


def test_balanced_class_weights_follow_the_train_split_and_raise_the_scores(trained, one_epoch):
    import tensorflow_transform as tft

    ctx, transform_uri, _ = trained
    transformed, schema = TransformOutput(transform_uri), ctx.config.data_schema
    fitted = fit(variant(ctx.config, class_weight="balanced"), transformed, seed=7)

    positive = (pd.read_parquet(transformed.train_raw)["income"] == ">50K").to_numpy()
    n, k = len(positive), positive.sum()
    assert fitted.details["class_weights"] == pytest.approx({"<=50K": n / (2 * (n - k)), ">50K": n / (2 * k)})
    features, _ = validation_data(
        pd.read_parquet(transformed.validation_raw), tft.TFTransformOutput(str(transformed.tft_dir)), schema
    )
    weighted, plain = (float(np.mean(f.model(features))) for f in (fitted, one_epoch))
    assert weighted > plain + 0.05, "positives (about a quarter of the rows) weigh as much as negatives"


def test_class_weights_by_label_value(trained):
    ctx, transform_uri, _ = trained
    label, rows = ctx.config.data_schema.label, TransformOutput(transform_uri).train_raw

    assert class_weights("none", label, rows) is None
    assert class_weights({">50K": 3.0}, label, rows) == {0: 1.0, 1: 3.0}
    assert class_weights({"<=50K": 0.5, ">50K": 2.0}, label, rows) == {0: 0.5, 1: 2.0}
    with pytest.raises(ConfigError, match=r"training.class_weight: \['>50k'\] are not values"):
        class_weights({">50k": 3.0}, label, rows)


def test_the_training_input_gives_every_train_row_once_per_epoch_in_an_order_set_by_the_seed(trained):
    import tensorflow as tf
    import tensorflow_transform as tft

    ctx, transform_uri, _ = trained
    transformed = TransformOutput(transform_uri)
    tft_output = tft.TFTransformOutput(str(transformed.tft_dir))
    spec = tft_output.transformed_feature_spec()
    files = sorted(str(p) for p in transformed.transformed_dir.glob("*.tfrecord"))
    on_disk = tf.io.parse_example(next(iter(tf.data.TFRecordDataset(files).batch(1_000_000))), spec)
    columns = sorted(name for name in spec if name != "income")

    def rows(features, labels) -> list[tuple]:
        values = [features[name].numpy().tolist() for name in columns] + [labels.numpy().tolist()]
        return list(zip(*values, strict=True))

    def epoch(dataset) -> tuple[list[tuple], list[int]]:
        seen, sizes = [], []
        for features, labels in dataset:
            assert "income" not in features
            seen += rows(features, labels)
            sizes.append(len(labels))
        return seen, sizes

    expected = rows({name: on_disk[name] for name in columns}, on_disk["income"])
    seeded = train_dataset(transformed, tft_output, "income", 100, seed=3)
    first, sizes = epoch(seeded)
    second, _ = epoch(seeded)
    again, _ = epoch(train_dataset(transformed, tft_output, "income", 100, seed=3))
    other, _ = epoch(train_dataset(transformed, tft_output, "income", 100, seed=4))

    assert sorted(first) == sorted(expected) == sorted(second), "each train row exactly once per epoch"
    assert sizes[:-1] == [100] * (len(sizes) - 1) and 0 < sizes[-1] <= 100
    assert first == again, "the same seed, the same order"
    assert first != second and first != other and first != expected, "shuffled, again each epoch, by the seed"


def test_the_training_input_mixes_rows_from_across_the_split_with_a_shuffle_buffer_a_sliver_of_it(
    trained, tmp_path, monkeypatch
):
    """Files of 100 rows (as the transform writes files of FILE_ROWS) and a shuffle buffer of 10 rows: the first batch
    still draws from most of the files, not from the first 110 rows of one (the model would train on the window's
    days one after the other), and an epoch still gives every row once."""
    import shutil

    import tensorflow as tf
    import tensorflow_transform as tft

    from pipelines.model import train

    _, transform_uri, _ = trained
    source, transformed = TransformOutput(transform_uri), TransformOutput(tmp_path / "transform")
    records = [r for p in sorted(source.transformed_dir.glob("*.tfrecord")) for r in tf.data.TFRecordDataset(str(p))]
    shutil.copytree(source.tft_dir, transformed.tft_dir)
    transformed.transformed_dir.mkdir(parents=True)
    for n, start in enumerate(range(0, len(records), 100)):
        with tf.io.TFRecordWriter(str(transformed.transformed_dir / f"train-{n:03d}.tfrecord")) as writer:
            for record in records[start : start + 100]:
                writer.write(record.numpy())
    assert n + 1 > train.READ_FILES
    tft_output = tft.TFTransformOutput(str(transformed.tft_dir))
    spec = tft_output.transformed_feature_spec()
    columns = sorted(name for name in spec if name != "income")

    def rows(features, labels) -> list[tuple]:
        values = [features[name].numpy().tolist() for name in columns] + [labels.numpy().tolist()]
        return list(zip(*values, strict=True))

    on_disk = tf.io.parse_example(tf.stack(records), spec)
    expected = rows(on_disk, on_disk.pop("income"))
    file_of = {row: i // 100 for i, row in enumerate(expected)}
    monkeypatch.setattr(train, "SHUFFLE_ROWS", 10)
    epoch = [rows(features, labels) for features, labels in train_dataset(transformed, tft_output, "income", 100, 0)]

    assert len({file_of[row] for row in epoch[0]}) >= train.READ_FILES - 2, "the first batch comes from most files"
    assert sorted(row for batch in epoch for row in batch) == sorted(expected), "every row once per epoch"


def test_the_sanity_check_stops_a_model_whose_features_cannot_explain_the_labels(trained):
    import tensorflow as tf
    import tensorflow_transform as tft

    ctx, transform_uri, _ = trained
    transformed, schema, params = TransformOutput(transform_uri), ctx.config.data_schema, ctx.config.training
    tft_output = tft.TFTransformOutput(str(transformed.tft_dir))
    features, labels = next(iter(train_dataset(transformed, tft_output, "income", 128, seed=0)))
    alike = {name: tf.fill(tf.shape(values), values[0]) for name, values in features.items()}  # every row the same

    passed = sanity_check(build_model(model_inputs(tft_output, schema), params), features, labels)
    assert passed["result"] == "passed" and passed["loss_after"] < 0.8 * passed["constant_loss"]
    with pytest.raises(SanityCheckFailed, match="The features do not explain the labels"):
        sanity_check(build_model(model_inputs(tft_output, schema), params), alike, labels)


def test_warm_start_begins_from_the_live_weights(trained):
    import tf_keras as keras

    ctx, transform_uri, train_uri = trained
    model_dir = TrainOutput(train_uri).model_dir
    live = SlotRecord("v1", str(model_dir), "", "2026-01-03", "run")
    frozen = variant(ctx.config, warm_start=True, dropout=0.0, learning_rate=1e-9)  # the weights cannot move

    fitted = fit(frozen, TransformOutput(transform_uri), seed=7, live=live)

    assert fitted.details["warm_start"]["used"] and fitted.details["warm_start"]["live_version"] == "v1"
    assert fitted.details["warm_start"]["embedding_rows_carried"]["sex"] == 3, "Female, Male and the OOV row"
    live_weights = keras.models.load_model(model_dir, compile=False).get_weights()
    for ours, theirs in zip(weights(fitted), live_weights, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_warm_start_is_skipped_with_the_reason_when_the_architecture_differs(trained):
    import tensorflow_transform as tft

    from pipelines.model.train import warm_start

    ctx, transform_uri, train_uri = trained
    tft_output = tft.TFTransformOutput(str(TransformOutput(transform_uri).tft_dir))
    narrower = ctx.config.training.model_copy(update={"hidden_units": [64]})
    model = build_model(model_inputs(tft_output, ctx.config.data_schema), narrower)
    live = SlotRecord("v1", str(TrainOutput(train_uri).model_dir), "", "2026-01-03", "run")

    record = warm_start(model, live, tft_output)

    assert not record["used"] and "layers with weights" in record["reason"] and "dense_1" in record["reason"]


def test_embedding_rows_follow_their_tokens_when_the_vocabulary_changes():
    live = np.arange(8.0).reshape(4, 2)  # a, b, c and one OOV row
    fresh = np.full((5, 2), -1.0)  # c, a, d (new) and two OOV rows

    rows, carried = remap_rows(live, [b"a", b"b", b"c"], fresh, [b"c", b"a", b"d"])

    np.testing.assert_array_equal(rows, [[4, 5], [0, 1], [-1, -1], [6, 7], [-1, -1]])
    assert carried == 3


def test_features_named_as_csv_columns_get_valid_unique_layer_names(tmp_path, caplog):
    # CSV exports name columns "mean radius"; TensorFlow's node names allow no space, and two columns may
    # differ only there. The model is still called with the features' own names.
    config = load_config(write_config(tmp_path, SMALL))
    features = {"mean radius": None, "mean_radius": None, "_ratio": None, "work class": 4}
    model = build_model(features, config.training)

    names = [layer.name for layer in model.layers if layer.__class__.__name__ == "InputLayer"]
    assert sorted(names) == ["mean_radius", "mean_radius_", "work_class", "x_ratio"]
    rows = {name: np.array([1.0, 2.0], np.float32) for name in features if features[name] is None}
    rows["work class"] = np.array([0, 3], np.int64)
    assert model(rows).shape == (2, 1)
    caplog.set_level("WARNING", logger="tensorflow")
    model.save(str(tmp_path / "model"), save_format="tf")
    assert not [r for r in caplog.records if "not a valid node name" in r.getMessage()]
