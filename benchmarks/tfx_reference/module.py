"""TFX's Transform and Trainer code for the reference pipeline (``pipeline.py``): the job of our transform and train.

The features, label, buckets and training settings come from the spec ``pipeline_scale.py`` writes from our config
(``custom_config["spec"]`` of the Transform and the Trainer): z-scores of the numbers, an
embedded bucket id where the config has quantile buckets, vocabularies with one out-of-vocabulary bucket, the label
as 0/1; the same network (embeddings, dense layers, sigmoid), optimizer, batch size and epochs, with early stopping
on the eval split when the config stops early.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

MISSING = "__MISSING__"
LABEL = "label_xf"
BUCKET = "_bucket"


def _dense(values: Any, default: Any) -> Any:
    """A [batch] tensor from a dense or a sparse [batch, 1] input, ``default`` where a value is missing."""
    if isinstance(values, tf.SparseTensor):
        values = tf.sparse.to_dense(tf.sparse.reset_shape(values, [values.dense_shape[0], 1]), default_value=default)
    return tf.reshape(values, [-1])


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    spec = custom_config["spec"]
    outputs = {}
    for name in spec["numeric"]:
        values = tf.cast(_dense(inputs[name], 0), tf.float32)
        outputs[name] = tft.scale_to_z_score(values)
        if name in spec["buckets"]:
            outputs[name + BUCKET] = tft.bucketize(values, spec["buckets"][name])
    for name in spec["categorical"]:
        values = _dense(inputs[name], MISSING)
        outputs[name] = tft.compute_and_apply_vocabulary(values, num_oov_buckets=1, vocab_filename=name)
    outputs[LABEL] = tf.cast(tf.equal(_dense(inputs[spec["label"]], ""), spec["positive"]), tf.int64)
    return outputs


def _model(spec: dict[str, Any], output: tft.TFTransformOutput) -> Any:
    inputs, encoded = {}, []
    for name in spec["numeric"]:
        inputs[name] = keras.Input(shape=(), name=name, dtype="float32")
        encoded.append(keras.layers.Reshape((1,))(inputs[name]))
    ids = {name: output.vocabulary_size_by_name(name) + 1 for name in spec["categorical"]}
    ids.update({name + BUCKET: count + 1 for name, count in spec["buckets"].items()})
    for name, count in ids.items():
        inputs[name] = keras.Input(shape=(), name=name, dtype="int64")
        encoded.append(keras.layers.Embedding(count, spec["embedding_dim"])(inputs[name]))
    x = keras.layers.Concatenate()(encoded)
    for units in spec["hidden_units"]:
        x = keras.layers.Dense(units, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(
        optimizer=keras.optimizers.Adam(spec["learning_rate"]),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model


def _signatures(model: Any, output: tft.TFTransformOutput, label: str) -> dict[str, Any]:
    """serving_default (raw tf.Examples in, score out) and transform_features (for the Evaluator's label)."""
    model.tft_layer = output.transform_features_layer()
    raw = output.raw_feature_spec()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples: Any) -> dict[str, Any]:
        features = model.tft_layer(tf.io.parse_example(examples, {k: v for k, v in raw.items() if k != label}))
        return {"outputs": model(features)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples: Any) -> dict[str, Any]:
        return model.tft_layer(tf.io.parse_example(examples, raw))

    return {"serving_default": serve, "transform_features": transform_features}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    spec = fn_args.custom_config["spec"]
    tf.keras.utils.set_random_seed(spec["seed"])
    output = tft.TFTransformOutput(fn_args.transform_output)

    def dataset(files: list[str]) -> Any:
        options = tfxio.TensorFlowDatasetOptions(batch_size=spec["batch_size"], label_key=LABEL)
        return fn_args.data_accessor.tf_dataset_factory(files, options, output.transformed_metadata.schema)

    model = _model(spec, output)
    epochs, stopping = spec["epochs"], spec["early_stopping"]
    watched, callbacks = {}, []
    if stopping is not None:  # ours holds out part of the train split; TFX's usual wiring watches the eval split
        watched = {"validation_data": dataset(fn_args.eval_files), "validation_steps": fn_args.eval_steps}
        mode = "min" if stopping["monitor"] == "val_loss" else "max"
        callbacks = [keras.callbacks.EarlyStopping(**stopping, mode=mode, restore_best_weights=True)]
    model.fit(
        dataset(fn_args.train_files),
        steps_per_epoch=max(fn_args.train_steps // epochs, 1),
        epochs=epochs,
        callbacks=callbacks,
        verbose=2,
        **watched,
    )
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=_signatures(model, output, spec["label"]))
