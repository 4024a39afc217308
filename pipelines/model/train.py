"""Train: a tf_keras model on the transformed train split, exported to take RAW features.

The exported SavedModel's ``serving_default`` signature takes serialized ``tf.Example`` protos of raw
feature values (any of them may be missing) and runs the TFT transform graph inside the model, so
serving cannot skew from training. Its decision threshold (``training.threshold``: fixed, or chosen on
rows held out of the train split) is written into the model's folder. The run is logged to MLflow:
parameters, per-epoch metrics and the SavedModel as the run's ``model`` artifact.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.artifacts import METADATA, fingerprint_files, write_json_atomic
from pipelines.core.config import Config, Schema, Training
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.outputs import TrainOutput, TransformOutput, require
from pipelines.core.tracking import MODEL_ARTIFACT, start_run
from pipelines.features.encoding import raw_feature_spec
from pipelines.model.scoring import score
from pipelines.model.signature import EXAMPLES_INPUT, OUTPUT, SIGNATURE, THRESHOLD_FILE
from pipelines.model.threshold import choose_threshold

log = logging.getLogger(__name__)

# The graph files name traced functions with a process-wide counter (``__inference_..._15037``), so the
# same model exported twice differs there. The fingerprint covers the weights, the vocabularies and the
# Keras config; the code version and config hash recorded beside it pin the graph.
GRAPH_FILES = ("saved_model.pb", "fingerprint.pb")


def fingerprint_model(model_dir: Path) -> str:
    """A content fingerprint of an exported model that is the same every time the same model is exported."""
    return fingerprint_files(model_dir, exclude=(*GRAPH_FILES, METADATA))


def build_model(schema: Schema, vocabulary_sizes: dict[str, int], params: Training) -> Any:
    """A small feed-forward network over z-scored numerics and embedded categoricals."""
    import tf_keras as keras

    inputs, encoded = {}, []
    for name in schema.model_numeric:
        inputs[name] = keras.Input(shape=(), name=name, dtype="float32")
        encoded.append(keras.layers.Reshape((1,))(inputs[name]))
    for name in schema.model_categorical:
        inputs[name] = keras.Input(shape=(), name=name, dtype="int64")
        embedded = keras.layers.Embedding(vocabulary_sizes[name] + 1, params.embedding_dim)(inputs[name])
        encoded.append(embedded)
    x = keras.layers.Concatenate()(encoded)
    for units in params.hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT)(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model


def export_serving_model(model: Any, tft_output: Any, schema: Schema, export_dir: Path) -> None:
    """Save ``model`` with a signature over serialized raw tf.Examples (the TFT layer inside)."""
    import tensorflow as tf

    spec = raw_feature_spec(schema, with_label=False)
    model.tft_layer = tft_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve(examples: Any) -> dict[str, Any]:
        features = model.tft_layer(tf.io.parse_example(examples, spec))
        features.pop(schema.label.name, None)
        return {OUTPUT: tf.reshape(model(features), [-1])}

    model.save(str(export_dir), save_format="tf", signatures={SIGNATURE: serve})


def fit(config: Config, transformed: TransformOutput, export_dir: Path, seed: int) -> dict[str, list[float]]:
    """Train on the transformed train split and export; returns the Keras history."""
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    schema, params = config.data_schema, config.training
    keras.backend.clear_session()  # layer names restart, so a re-run in the same process exports the same config
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tft_output = tft.TFTransformOutput(str(transformed.tft_dir))
    files = sorted(str(p) for p in transformed.transformed_dir.glob("*.tfrecord"))
    dataset = tf.data.experimental.make_batched_features_dataset(
        file_pattern=files,
        batch_size=params.batch_size,
        features=tft_output.transformed_feature_spec(),
        label_key=schema.label.name,
        num_epochs=1,
        shuffle=True,
        shuffle_seed=seed,
        reader_num_threads=1,
        parser_num_threads=1,
        sloppy_ordering=False,
    )
    sizes = {name: tft_output.vocabulary_size_by_name(name) for name in schema.model_categorical}
    model = build_model(schema, sizes, params)
    history = model.fit(dataset, epochs=params.epochs, verbose=2)
    export_serving_model(model, tft_output, schema, export_dir)
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def decide_threshold(config: Config, transformed: TransformOutput, model_dir: Path) -> dict[str, Any]:
    """Choose the decision threshold (``training.threshold``) on the held-out validation rows and write it
    into the model's folder, so it travels with the model; returns the record."""
    setting, schema = config.training.threshold, config.data_schema
    y, p = np.zeros(0, dtype=int), np.zeros(0)
    if setting.strategy != "fixed" and transformed.validation_raw.exists():
        rows = pd.read_parquet(transformed.validation_raw)
        y = (rows[schema.label.name] == schema.label.positive).to_numpy(dtype=int)
        p = score(model_dir, rows, schema)
    record = choose_threshold(y, p, setting)
    write_json_atomic(model_dir / THRESHOLD_FILE, record)
    log.info("decision threshold %s: %s", record["threshold"], record["reason"])
    return record


def train_model(ctx: RunContext, transform_uri: str) -> str:
    """Train, export the raw-feature SavedModel and log the run to MLflow; returns the train output's URI.

    Each retrain attempt uses a different seed (``training.seed + attempt - 1``).
    """
    import mlflow

    transformed = require(TransformOutput(transform_uri))
    seed = ctx.config.training.seed + ctx.attempt - 1
    with ctx.open_stage(StageName.TRAIN) as out:
        model_dir = TrainOutput(out.path).model_dir
        history = fit(ctx.config, transformed, model_dir, seed)
        threshold = decide_threshold(ctx.config, transformed, model_dir)
        with start_run(ctx) as run:
            mlflow.log_params({**ctx.config.training.model_dump(), "seed": seed, "window_days": ctx.window})
            mlflow.log_param("decision_threshold", threshold["threshold"])
            for name, values in history.items():
                for epoch, value in enumerate(values):
                    mlflow.log_metric(f"train_{name}", value, step=epoch)
            mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_ARTIFACT)
        out.finish(
            fingerprint_model(model_dir),
            inputs={"transform": transformed},
            seed=seed,
            history=history,
            decision_threshold=threshold,
            mlflow_run_id=run.info.run_id,
            model_uri=str(TrainOutput(out.uri).model_dir),
        )
    return out.uri
