"""Train: a tf_keras model on the transformed train split, exported to take RAW features.

The exported SavedModel's ``serving_default`` signature takes serialized ``tf.Example`` protos of raw
feature values (any of them may be missing) and runs the TFT transform graph inside the model, so
serving cannot skew from training. Its decision threshold (``training.threshold``: fixed, or chosen on
rows held out of the train split) is written into the model's folder.

The fit follows ``training``: a sanity check first (a fresh model must overfit one batch, or the run stops),
optionally the live model's weights to start from, class weights, and early stopping on the validation
split (raw held-out rows through the TFT graph, as at serving) keeping the best epoch's weights. The same
data, config and seed give the same weights and metrics on CPU (seeded initialisation, shuffling and
dropout; deterministic ops). The run is logged to MLflow: code version and config hash, the data's
fingerprints, hyperparameters, per-epoch and final metrics, the split report, and the SavedModel as the
run's ``model`` artifact with its signature and an input example.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.artifacts import METADATA, fingerprint_files, fingerprint_frame, write_json_atomic
from pipelines.core.config import Config, ConfigError, Label, Schema, Training
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName
from pipelines.core.deployment_state import SlotRecord, live_version
from pipelines.core.outputs import TrainOutput, TransformOutput, require
from pipelines.core.tracking import flat_params, log_datasets, log_saved_model, start_run
from pipelines.features.encoding import column_kinds, raw_feature_spec, to_record_batches
from pipelines.model.scoring import score
from pipelines.model.signature import EXAMPLES_INPUT, OUTPUT, SIGNATURE, THRESHOLD_FILE
from pipelines.model.threshold import choose_threshold, multiclass_threshold

log = logging.getLogger(__name__)

# The graph files name traced functions with a process-wide counter (``__inference_..._15037``), so the
# same model exported twice differs there. The fingerprint covers the weights, the vocabularies and the
# Keras config; the code version and config hash recorded beside it pin the graph.
GRAPH_FILES = ("saved_model.pb", "fingerprint.pb")

# The sanity check: a fresh probe model of fixed capacity (``SANITY_MODEL``, over the same transformed inputs)
# trains on one batch with Adam at a fixed rate, and its loss must end below this share of the loss of always
# predicting the batch's label shares, all that a model can reach when the features say nothing. It checks the
# data reaching the model, not the configured architecture or learning rate: a weak model is the gate's to judge.
SANITY_MODEL = {"hidden_units": [32], "embedding_dim": 4, "dropout": 0.0}
SANITY_ROWS = 128
SANITY_STEPS = 10
SANITY_LEARNING_RATE = 0.02
SANITY_MAX_LOSS_RATIO = 0.8
VALIDATION_BATCH = 4096  # held-out rows encoded and transformed at a time
# Training input: the transform's files (FILE_ROWS examples each) are read READ_FILES at a time, a record from each
# in turn, in an order shuffled each epoch; the records are shuffled through a buffer of SHUFFLE_ROWS, then parsed
# PARSE_ROWS at a time whatever the training batch size, and cut into batches (the batches hold the same rows as
# parsing each batch on its own, which made reading the data, not the steps, the cost of an epoch). Read as one file
# in row order, the buffer held a sliver of the window (at 4.9M rows, part of one day): the model learnt the days one
# after the other and forgot the earlier ones (benchmarks/pipeline_scale.py at 100x: test ROC AUC 0.904, now 0.973).
READ_FILES = 16
PARSE_ROWS = 1024
SHUFFLE_ROWS = 10_000
INPUT_EXAMPLE_ROWS = 5


class SanityCheckFailed(PipelineError):
    """A fresh model could not fit one batch of training rows: its features do not explain its labels."""


@dataclass
class Fitted:
    """A trained Keras model (the best epoch's weights under early stopping) and how it was trained."""

    model: Any
    history: dict[str, list[float]]
    details: dict[str, Any] = field(default_factory=dict)


def fingerprint_model(model_dir: Path) -> str:
    """A content fingerprint of an exported model that is the same every time the same model is exported."""
    return fingerprint_files(model_dir, exclude=(*GRAPH_FILES, METADATA))


def model_inputs(tft_output: Any, schema: Schema) -> dict[str, int | None]:
    """What the model reads of the transform's output, numbers first, in the schema's order: None for a number,
    the count of ids for integer ids with a known range (vocabulary ids with their OOV buckets, quantile
    buckets, hashed crosses: the transform's output schema records each range).

    Raises:
        ValueError: a transformed feature is neither one float nor one id with a known range per row.
    """
    import tensorflow as tf

    domains = {f.name: f.int_domain for f in tft_output.transformed_metadata.schema.feature}
    features = {}
    for name, spec in tft_output.transformed_feature_spec().items():
        if name == schema.label.name:
            continue
        ids = domains.get(name)
        if not isinstance(spec, tf.io.FixedLenFeature) or list(spec.shape):
            raise ValueError(f"transformed feature {name!r}: the model takes one value per row, not {spec}")
        if spec.dtype == tf.float32:
            features[name] = None
        elif ids is not None and ids.is_categorical and ids.min == 0:
            features[name] = ids.max + 1
        else:
            raise ValueError(
                f"transformed feature {name!r} ({spec.dtype.name}) is neither a float nor ids from 0 with a known "
                "range: return floats, or ids from tft.compute_and_apply_vocabulary (num_oov_buckets >= 1) or "
                "tft.apply_buckets"
            )
    order = {f.name: i for i, f in enumerate(schema.model_features)}
    return dict(sorted(features.items(), key=lambda f: (f[1] is not None, order.get(f[0], len(order)), f[0])))


def build_model(features: dict[str, int | None], params: Training, classes: int = 2) -> Any:
    """A small feed-forward network over the numbers and the embedded ids of ``model_inputs``: one sigmoid unit
    for a binary label, a softmax over ``classes`` units (sparse categorical cross-entropy) for a multi-class one.
    Either way the metrics are ``accuracy`` and ``auc`` (macro one-vs-rest for a multi-class label)."""
    import tf_keras as keras

    inputs, encoded, nodes = {}, [], node_names(list(features))
    for name, ids in features.items():
        if ids is None:
            inputs[name] = keras.Input(shape=(), name=nodes[name], dtype="float32")
            encoded.append(keras.layers.Reshape((1,))(inputs[name]))
        else:
            inputs[name] = keras.Input(shape=(), name=nodes[name], dtype="int64")
            encoded.append(keras.layers.Embedding(ids, params.embedding_dim)(inputs[name]))
    x = keras.layers.Concatenate()(encoded)
    for units in params.hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout)(x)
    if classes > 2:
        output = keras.layers.Dense(classes, activation="softmax", name=OUTPUT)(x)
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), _sparse_auc(classes)]
    else:
        output = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT)(x)
        loss = "binary_crossentropy"
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=loss, metrics=metrics)
    return model


def _sparse_auc(classes: int) -> Any:
    """Keras' AUC per class over one-hot class ids, averaged: the macro one-vs-rest AUC of a softmax."""
    import tensorflow as tf
    import tf_keras as keras

    class SparseMacroAUC(keras.metrics.AUC):
        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            ids = tf.reshape(tf.cast(y_true, tf.int32), [-1])
            return super().update_state(tf.one_hot(ids, classes), y_pred, sample_weight)

    return SparseMacroAUC(name="auc", multi_label=True, num_labels=classes)


def node_names(features: list[str]) -> dict[str, str]:
    """Each feature's input layer name, as TensorFlow accepts it for a graph node (a CSV column may be called
    "mean radius"), and unique. The model is called with a dict keyed by the feature names: this names the layers
    and nothing else."""
    names: dict[str, str] = {}
    for feature in features:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", feature)
        name = name if re.match(r"[A-Za-z0-9.]", name) else f"x{name}"
        while name in names.values():
            name += "_"
        names[feature] = name
    return names


def export_serving_model(model: Any, tft_output: Any, schema: Schema, export_dir: Path) -> None:
    """Save ``model`` with a signature over serialized raw tf.Examples (the TFT layer inside)."""
    import tensorflow as tf

    spec = raw_feature_spec(schema, with_label=False)
    model.tft_layer = tft_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve(examples: Any) -> dict[str, Any]:
        features = model.tft_layer(tf.io.parse_example(examples, spec))
        features.pop(schema.label.name, None)
        if schema.label.is_multiclass:
            return {OUTPUT: model(features)}  # [examples, classes], in the order of label.values
        return {OUTPUT: tf.reshape(model(features), [-1])}

    model.save(str(export_dir), save_format="tf", signatures={SIGNATURE: serve})


def train_dataset(transformed: TransformOutput, tft_output: Any, label: str, batch_size: int, seed: int) -> Any:
    """The transformed train examples in batches of (features, label), shuffled by ``seed`` the same way every time:
    streamed from ``READ_FILES`` files at a time (a record from each in turn, the files in an order shuffled by
    ``seed`` and again each epoch), shuffled through a buffer of ``SHUFFLE_ROWS`` serialized records, parsed
    ``PARSE_ROWS`` at a time in parallel (in order), cut into batches and prefetched while a step runs."""
    import tensorflow as tf

    files = sorted(str(p) for p in transformed.transformed_dir.glob("*.tfrecord"))
    spec = tft_output.transformed_feature_spec()

    def split_label(features: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        features = dict(features)
        return features, features.pop(label)

    return (
        tf.data.Dataset.from_tensor_slices(files)
        .shuffle(len(files), seed=seed)
        .interleave(tf.data.TFRecordDataset, cycle_length=READ_FILES, block_length=1)
        .shuffle(SHUFFLE_ROWS, seed=seed)
        .batch(PARSE_ROWS)
        .map(lambda records: tf.io.parse_example(records, spec), tf.data.AUTOTUNE, deterministic=True)
        .rebatch(batch_size)
        .map(split_label)
        .prefetch(tf.data.AUTOTUNE)
    )


def validation_data(rows: pd.DataFrame, tft_output: Any, schema: Schema) -> tuple[dict[str, Any], Any]:
    """Raw held-out rows as the model sees them, through the TFT graph as at serving: (features, labels)."""
    import pyarrow as pa
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

    kinds, spec, layer = column_kinds(schema), raw_feature_spec(schema), tft_output.transform_features_layer()
    parts = []
    for start in range(0, len(rows), VALIDATION_BATCH):
        table = pa.Table.from_pandas(rows.iloc[start : start + VALIDATION_BATCH][list(kinds)], preserve_index=False)
        examples = [e for batch in to_record_batches(table, kinds) for e in example_coder.RecordBatchToExamples(batch)]
        parts.append(layer(tf.io.parse_example(tf.constant(examples), spec)))
    features = {name: tf.concat([part[name] for part in parts], axis=0) for name in parts[0]}
    return features, features.pop(schema.label.name)


def class_weights(setting: str | dict[str, float], label: Label, train_raw: Path) -> dict[int, float] | None:
    """Keras class weights (class id -> weight; class 1 is the positive label value, or a multi-class label's ids
    in the order of its values) for ``training.class_weight``; ``balanced`` counts the classes in the label column
    of the train split's raw rows.

    Raises:
        ConfigError: a weight names a value the label does not take, or the other values (one class) differ.
        PipelineError: ``balanced``, and the train split lacks a class.
    """
    if setting == "none":
        return None
    values = pd.read_parquet(train_raw, columns=[label.name])[label.name]
    classes = label.classes
    if label.is_multiclass:
        ids = values.astype(object).map({v: i for i, v in enumerate(classes)}).fillna(-1).to_numpy(dtype=int)
        ids = ids[ids >= 0]
    else:
        ids = (values == label.positive).to_numpy(dtype=int)
    if setting == "balanced":
        counts = np.bincount(ids, minlength=len(classes))
        if not counts.all():
            raise PipelineError(
                f"training.class_weight balanced: the train split has no rows of class {classes[counts.argmin()]!r}"
            )
        return {c: len(ids) / (len(counts) * n) for c, n in enumerate(counts.tolist())}
    unknown = sorted(set(setting) - set(label.values or values.dropna().unique()))
    if unknown:
        raise ConfigError(f"training.class_weight: {unknown} are not values of the label {label.name!r}")
    if label.is_multiclass:
        return {i: float(setting.get(value, 1.0)) for i, value in enumerate(classes)}
    others = {w for value, w in setting.items() if value != label.positive}
    if len(others) > 1:
        raise ConfigError(
            f"training.class_weight: the values other than {label.positive!r} form one class: give them one weight"
        )
    return {0: others.pop() if others else 1.0, 1: setting.get(label.positive, 1.0)}


def sanity_check(model: Any, features: dict[str, Any], labels: Any) -> dict[str, Any]:
    """Train the fresh ``model`` on one batch for ``SANITY_STEPS`` steps; its loss must fall below
    ``SANITY_MAX_LOSS_RATIO`` times the loss of always predicting the batch's label shares. Returns the record.

    Raises:
        SanityCheckFailed: the loss did not fall that far (or is not a number).
    """
    import tensorflow as tf
    import tf_keras as keras

    shares = np.bincount(np.asarray(labels)) / len(labels)
    shares = shares[shares > 0]
    constant = float(-(shares * np.log(shares)).sum())
    record: dict[str, Any] = {"rows": len(labels), "constant_loss": round(constant, 6)}
    if len(shares) < 2:
        return {**record, "result": "skipped: the batch holds one class"}
    optimizer = keras.optimizers.Adam(SANITY_LEARNING_RATE)

    def loss(training: bool) -> Any:
        return model.compiled_loss(labels, model(features, training=training), regularization_losses=model.losses)

    before = float(loss(False))
    for _ in range(SANITY_STEPS):
        with tf.GradientTape() as tape:
            value = loss(True)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
    after = float(loss(False))
    record.update(loss_before=round(before, 6), loss_after=round(after, 6))
    if not after <= SANITY_MAX_LOSS_RATIO * constant:
        raise SanityCheckFailed(
            f"sanity check: after {SANITY_STEPS} steps on one batch of {len(labels)} training rows the loss is "
            f"{after:.4f} (from {before:.4f}); a model must fit one batch to below {SANITY_MAX_LOSS_RATIO} x "
            f"{constant:.4f}, the loss of always predicting the batch's label shares. The features do not explain "
            "the labels: look for constant, empty or NaN transformed features and for a wrong label encoding "
            "(or set training.sanity_check: false)"
        )
    return {**record, "result": "passed"}


def remap_rows(
    live: np.ndarray, live_tokens: list[bytes], fresh: np.ndarray, tokens: list[bytes]
) -> tuple[np.ndarray, int]:
    """An embedding whose rows follow their tokens from the live vocabulary to this one: a token in both keeps its
    live row, a new token its fresh row; the out-of-vocabulary rows after the tokens map in order.

    Returns:
        The rows, and how many of them came from the live embedding.
    """
    rows, where = fresh.copy(), {token: i for i, token in enumerate(live_tokens)}
    pairs = [(i, where[t]) for i, t in enumerate(tokens) if t in where]
    oov = min(len(fresh) - len(tokens), len(live) - len(live_tokens))
    pairs += [(len(tokens) + j, len(live_tokens) + j) for j in range(oov)]
    if pairs:
        new, old = map(list, zip(*pairs, strict=True))
        rows[new] = live[old]
    return rows, len(pairs)


def _vocabulary(path: Path | str | None) -> list[bytes] | None:
    if not path or not Path(path).is_file():
        return None
    with Path(path).open("rb") as fh:
        return [line.rstrip(b"\n") for line in fh]


def warm_start(model: Any, live: SlotRecord | None, tft_output: Any) -> dict[str, Any]:
    """Set ``model``'s weights to the live model's when the architectures match; returns whether, or why not.

    They match with the same inputs in the same order and the same layers with weights (by name and class), of
    the same shapes, except that an embedding over a vocabulary may have other rows: each row follows its token
    from the live model's vocabulary (in its SavedModel's assets) to this one.
    """
    import tf_keras as keras

    if live is None:
        return {"used": False, "reason": "no live model yet"}
    source = keras.models.load_model(live.model_uri, compile=False)
    record: dict[str, Any] = {"used": False, "live_version": live.version}

    def inputs(m: Any) -> list[str]:
        return [layer.name for layer in m.layers if isinstance(layer, keras.layers.InputLayer)]

    def weighted(m: Any) -> dict[str, Any]:
        return {layer.name: layer for layer in m.layers if layer.weights}

    ours, theirs = weighted(model), weighted(source)
    feature_of = {node: feature for feature, node in node_names(list(model.input)).items()}  # by input layer
    if inputs(model) != inputs(source):
        return {**record, "reason": f"inputs {inputs(model)} here, {inputs(source)} in the live model"}
    if list(ours) != list(theirs):
        return {**record, "reason": f"layers with weights {list(ours)} here, {list(theirs)} in the live model"}
    weights, carried = {}, {}
    for name, layer in ours.items():
        old, shapes = theirs[name], [tuple(w.shape) for w in layer.weights]
        embedded = isinstance(layer, keras.layers.Embedding)
        feature = feature_of[layer.inbound_nodes[0].inbound_layers.name] if embedded else None
        path = feature and tft_output.vocabulary_file_by_name(feature)  # named as TFT cleans names: "a-b" for "a b"
        vocabulary = _vocabulary(path)
        live_vocabulary = path and _vocabulary(Path(live.model_uri) / "assets" / Path(path).name)
        if type(old) is not type(layer):
            return {**record, "reason": f"layer {name} is a {type(layer).__name__} here, a {type(old).__name__} live"}
        if vocabulary and live_vocabulary and old.output_dim == layer.output_dim:
            rows, carried[feature] = remap_rows(
                old.get_weights()[0], live_vocabulary, layer.get_weights()[0], vocabulary
            )
            weights[name] = [rows]
        elif shapes == [tuple(w.shape) for w in old.weights]:
            weights[name] = old.get_weights()
        else:
            return {
                **record,
                "reason": f"layer {name} has weights {shapes} here, "
                f"{[tuple(w.shape) for w in old.weights]} in the live model",
            }
    for name, values in weights.items():
        ours[name].set_weights(values)
    return {**record, "used": True, "reason": "the architectures match", "embedding_rows_carried": carried}


def _reset(seed: int) -> None:
    """Fresh Keras state and seeds: layer names restart (a re-run in the same process exports the same config)
    and every random op starts from ``seed``."""
    import tf_keras as keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def fit(config: Config, transformed: TransformOutput, seed: int, live: SlotRecord | None = None) -> Fitted:
    """Train on the transformed train split as ``training`` says (``live``: the model to warm-start from).

    Raises:
        SanityCheckFailed: a fresh model could not fit one batch (``training.sanity_check``).
        PipelineError: early stopping is configured but the transform held no rows out of the train split.
    """
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    schema, params = config.data_schema, config.training
    tf.config.experimental.enable_op_determinism()
    tft_output = tft.TFTransformOutput(str(transformed.tft_dir))
    features = model_inputs(tft_output, schema)
    weights = class_weights(params.class_weight, schema.label, transformed.train_raw)
    # recorded by class name (the card, MLflow); Keras takes them by class id
    details: dict[str, Any] = {"class_weights": weights and {schema.label.classes[i]: w for i, w in weights.items()}}
    validation = None
    if transformed.validation_raw.exists():
        rows = pd.read_parquet(transformed.validation_raw)
        validation = validation_data(rows, tft_output, schema)
        details["validation"] = {"rows": len(rows), "fingerprint": fingerprint_frame(rows)}
    elif params.early_stopping is not None:
        raise PipelineError(
            f"training.early_stopping watches the validation split, and the transform output {transformed.uri} "
            "held no rows out of the train split"
        )
    if params.sanity_check:
        _reset(seed)
        batch = next(iter(train_dataset(transformed, tft_output, schema.label.name, SANITY_ROWS, seed)))
        probe = build_model(features, params.model_copy(update=SANITY_MODEL), len(schema.label.classes))
        details["sanity_check"] = sanity_check(probe, *batch)
    _reset(seed)
    model = build_model(features, params, len(schema.label.classes))
    details["warm_start"] = (
        warm_start(model, live, tft_output) if params.warm_start else {"used": False, "reason": "warm_start is off"}
    )
    callbacks = []
    if params.early_stopping is not None:
        stopping = params.early_stopping
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping.monitor,
                mode="min" if stopping.monitor == "val_loss" else "max",
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                restore_best_weights=True,
            )
        )
    history = model.fit(
        train_dataset(transformed, tft_output, schema.label.name, params.batch_size, seed),
        epochs=params.epochs,
        validation_data=validation,
        class_weight=weights,
        callbacks=callbacks,
        verbose=2,
    ).history
    trained = len(history["loss"])
    details.update(epochs_trained=trained, best_epoch=trained - 1, stopped_epoch=None)
    if callbacks:
        details.update(best_epoch=callbacks[0].best_epoch, stopped_epoch=callbacks[0].stopped_epoch or None)
    return Fitted(model, {k: [float(v) for v in values] for k, values in history.items()}, details)


def decide_threshold(config: Config, transformed: TransformOutput, model_dir: Path) -> dict[str, Any]:
    """Choose the decision threshold (``training.threshold``) on the held-out validation rows and write it
    into the model's folder, so it travels with the model; returns the record."""
    setting, schema = config.training.threshold, config.data_schema
    if schema.label.is_multiclass:
        record = multiclass_threshold(setting)
        write_json_atomic(model_dir / THRESHOLD_FILE, record)
        log.info("decision threshold: %s", record["reason"])
        return record
    y, p = np.zeros(0, dtype=int), np.zeros(0)
    if setting.strategy != "fixed" and transformed.validation_raw.exists():
        rows = pd.read_parquet(transformed.validation_raw)
        y = (rows[schema.label.name] == schema.label.positive).to_numpy(dtype=int)
        p = score(model_dir, rows, schema)
    record = choose_threshold(y, p, setting)
    write_json_atomic(model_dir / THRESHOLD_FILE, record)
    log.info("decision threshold %s: %s", record["threshold"], record["reason"])
    return record


def input_example(path: Path, schema: Schema) -> pd.DataFrame:
    """The first rows of a raw split, as the model's serving signature takes them (its raw feature columns)."""
    import pyarrow.parquet as pq

    columns = [name for name in column_kinds(schema) if name != schema.label.name]
    batch = next(pq.ParquetFile(path).iter_batches(batch_size=INPUT_EXAMPLE_ROWS, columns=columns))
    return batch.to_pandas()


def log_training(ctx: RunContext, transformed: TransformOutput, fitted: Fitted, seed: int, model_dir: Path) -> str:
    """Log the training run to MLflow in a few calls; returns the run's id.

    Tags: code version, config hash (``start_run``) and the warm start; params: ``training`` flattened, the seed,
    the window, the class weights used and the decision threshold; per-epoch metrics (step = epoch: ``train_*``
    on the training rows, ``val_*`` on the validation split), the kept epoch's as ``final_*`` with ``best_epoch``
    and ``epochs_trained``; the data's fingerprints as dataset inputs; the split report; the model.
    """
    import mlflow

    details, schema = fitted.details, ctx.config.data_schema
    fingerprints = transformed.metadata().get("split_fingerprints", {})
    sources = {"train": transformed.train_raw, "test": transformed.test_raw, "validation": transformed.validation_raw}
    datasets = {name: (sources[name], fp) for name, fp in fingerprints.items() if name in sources}
    if "validation" in details:
        datasets["validation"] = (transformed.validation_raw, details["validation"]["fingerprint"])
    with start_run(ctx) as run:
        warm = details["warm_start"]
        mlflow.set_tag("warm_start", f"from {warm['live_version']}" if warm["used"] else f"not used: {warm['reason']}")
        mlflow.log_params(
            flat_params(
                {
                    **ctx.config.training.model_dump(mode="json"),
                    "seed": seed,
                    "window_days": ctx.window,
                    "class_weights": details["class_weights"] or "none",
                    "decision_threshold": details["decision_threshold"]["threshold"],
                }
            )
        )
        names = {k: k if k.startswith("val_") else f"train_{k}" for k in fitted.history}
        for epoch in range(details["epochs_trained"]):
            mlflow.log_metrics({names[k]: v[epoch] for k, v in fitted.history.items()}, step=epoch)
        kept = details["best_epoch"]
        mlflow.log_metrics(
            {
                **{f"final_{names[k]}": v[kept] for k, v in fitted.history.items()},
                "best_epoch": kept,
                "epochs_trained": details["epochs_trained"],
            }
        )
        log_datasets(datasets)
        if transformed.split_report_path.exists():
            mlflow.log_artifact(str(transformed.split_report_path))
        inputs = {name: "float" if kind == "numeric" else "string" for name, kind in column_kinds(schema).items()}
        inputs.pop(schema.label.name)
        classes = len(schema.label.classes) if schema.label.is_multiclass else None
        log_saved_model(model_dir, inputs, OUTPUT, input_example(transformed.train_raw, schema), classes)
    return run.info.run_id


def train_model(ctx: RunContext, transform_uri: str) -> str:
    """Train, export the raw-feature SavedModel and log the run to MLflow; returns the train output's URI.

    Each retrain attempt uses a different seed (``training.seed + attempt - 1``).

    Raises:
        SanityCheckFailed: a fresh model could not fit one batch of training rows (``training.sanity_check``).
    """
    import tensorflow_transform as tft

    transformed = require(TransformOutput(transform_uri))
    params = ctx.config.training
    seed = params.seed + ctx.attempt - 1
    live = live_version(ctx.config) if params.warm_start else None
    with ctx.open_stage(StageName.TRAIN) as out:
        model_dir = TrainOutput(out.path).model_dir
        fitted = fit(ctx.config, transformed, seed, live)
        export_serving_model(
            fitted.model, tft.TFTransformOutput(str(transformed.tft_dir)), ctx.config.data_schema, model_dir
        )
        fitted.details["decision_threshold"] = decide_threshold(ctx.config, transformed, model_dir)
        run_id = log_training(ctx, transformed, fitted, seed, model_dir)
        out.finish(
            fingerprint_model(model_dir),
            inputs={"transform": transformed},
            seed=seed,
            history=fitted.history,
            **fitted.details,
            mlflow_run_id=run_id,
            model_uri=str(TrainOutput(out.uri).model_dir),
        )
    return out.uri
