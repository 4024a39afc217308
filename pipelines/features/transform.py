"""Transform: split the snapshot, analyze the train split with Beam + TFT, transform it.

The split is a hash of each row's source (date, line), so a row keeps its side of the split in every
run whose window contains it: yesterday's test rows never leak into today's training. Numeric
features are z-scored (missing values land on the mean), categorical ones go through a vocabulary
with one out-of-vocabulary bucket (missing is a token of its own). Data reaches TFT as Arrow
RecordBatches through tfx-bsl's TensorAdapter: faster than instance dicts, and it exits cleanly.

Outputs: ``train_raw.parquet`` and ``test_raw.parquet`` (raw rows of each split), transformed train
examples as TFRecords, and the TFT output (``tft/``: transform graph, vocabularies, schemas).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.artifacts import fingerprint_frame, fingerprint_json
from pipelines.core.config import Config, Schema
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.outputs import (
    SOURCE_DS,
    SOURCE_ROW,
    IngestOutput,
    StaleInput,
    TransformOutput,
    ValidationOutput,
    require,
)
from pipelines.features.encoding import arrow_schema, column_kinds, to_record_batches

log = logging.getLogger(__name__)

TRANSFORMED_TRAIN = "train"
MISSING_TOKEN = "__MISSING__"


def in_test_split(df: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """True for rows in the test split: a stable hash of (seed, source date, source line)."""
    keys = (f"{seed}/{d}/{r}".encode() for d, r in zip(df[SOURCE_DS], df[SOURCE_ROW], strict=True))
    buckets = np.fromiter(
        (int.from_bytes(hashlib.blake2b(k, digest_size=8).digest(), "big") % 10_000 for k in keys),
        dtype=np.int64,
        count=len(df),
    )
    return buckets < round(fraction * 10_000)


def make_preprocessing_fn(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The TFT preprocessing function implied by the schema (label optional, as at serving time)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    def dense(sparse: Any, default: Any) -> Any:
        shaped = tf.SparseTensor(sparse.indices, sparse.values, [sparse.dense_shape[0], 1])
        return tf.squeeze(tf.sparse.to_dense(shaped, default_value=default), axis=1)

    def preprocessing_fn(inputs: dict[str, Any]) -> dict[str, Any]:
        outputs = {}
        for name in schema.model_numeric:
            outputs[name] = dense(tft.scale_to_z_score(inputs[name]), 0.0)
        for name in schema.model_categorical:
            outputs[name] = tft.compute_and_apply_vocabulary(
                dense(inputs[name], MISSING_TOKEN), num_oov_buckets=1, vocab_filename=name
            )
        label = schema.label
        if label.name in inputs:
            outputs[label.name] = tf.cast(tf.equal(dense(inputs[label.name], ""), label.positive), tf.int64)
        return outputs

    return preprocessing_fn


def beam_options(config: Config) -> Any:
    """Beam pipeline options from the config: the runner and any extra flags."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions([f"--runner={config.beam.runner}", *config.beam.options])


def analyze_and_transform(out: TransformOutput, config: Config) -> None:
    """Run the Beam pipeline: read the train split, analyze + transform it, write TFRecords and TFT."""
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.coders import example_coder
    from tfx_bsl.public import tfxio

    schema = config.data_schema
    kinds = column_kinds(schema)
    representations = {
        name: schema_pb2.TensorRepresentation(
            varlen_sparse_tensor=schema_pb2.TensorRepresentation.VarLenSparseTensor(column_name=name)
        )
        for name in kinds
    }
    adapter = tfxio.TensorAdapterConfig(arrow_schema(kinds), representations)
    temp = out.beam_temp
    with beam.Pipeline(options=beam_options(config)) as pipeline, tft_beam.Context(temp_dir=str(temp)):
        batches = (
            pipeline
            | "ReadTrainRows" >> beam.io.ReadFromParquetBatched(str(out.train_raw), columns=list(kinds))
            | "ToRecordBatches" >> beam.FlatMap(to_record_batches, kinds)
        )
        (transformed, _), transform_fn = (batches, adapter) | "AnalyzeAndTransform" >> (
            tft_beam.AnalyzeAndTransformDataset(make_preprocessing_fn(schema), output_record_batches=True)
        )
        _ = (
            transformed
            | "EncodeExamples" >> beam.FlatMapTuple(lambda batch, _: example_coder.RecordBatchToExamples(batch))
            | "WriteTransformedTrain"
            >> beam.io.WriteToTFRecord(
                str(out.transformed_dir / TRANSFORMED_TRAIN), file_name_suffix=".tfrecord", num_shards=1
            )
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(out.tft_dir))
    shutil.rmtree(temp, ignore_errors=True)


def transform_features(ctx: RunContext, snapshot_uri: str, validation_uri: str) -> str:
    """Split the validated snapshot and run TFT; returns the URI of the transform output for D.

    Raises:
        StaleInput: the snapshot did not pass validation (or validation ran on another snapshot).
    """
    snapshot = require(IngestOutput(snapshot_uri))
    validation = require(ValidationOutput(validation_uri))
    if validation.metadata()["inputs"]["snapshot"]["fingerprint"] != snapshot.metadata()["fingerprint"]:
        raise StaleInput(f"validation at {validation_uri} checked another snapshot: re-run `validate` first")
    data = ctx.config.data
    rows = snapshot.read_snapshot()
    is_test = in_test_split(rows, data.test_fraction, data.split_seed)
    train, test = rows[~is_test].reset_index(drop=True), rows[is_test].reset_index(drop=True)
    threshold = ctx.config.training.threshold
    held_out = train.iloc[:0]
    if threshold.strategy != "fixed":  # held out of training to choose the decision threshold on
        held = in_test_split(train, threshold.validation_fraction, data.split_seed + 1)
        train, held_out = train[~held].reset_index(drop=True), train[held].reset_index(drop=True)
    with ctx.open_stage(StageName.TRANSFORM) as out:
        written = TransformOutput(out.path)
        train.to_parquet(written.train_raw, index=False)
        test.to_parquet(written.test_raw, index=False)
        if len(held_out):
            held_out.to_parquet(written.validation_raw, index=False)
        log.info(
            "transform: %d train rows, %d test rows; running TFT on %s", len(train), len(test), ctx.config.beam.runner
        )
        analyze_and_transform(written, ctx.config)
        split_fingerprints = {"train": fingerprint_frame(train), "test": fingerprint_frame(test)}
        out.finish(
            fingerprint_json(split_fingerprints),
            inputs={"snapshot": snapshot, "validation": validation},
            train_rows=len(train),
            test_rows=len(test),
            validation_rows=len(held_out),
            split_fingerprints=split_fingerprints,
            beam_runner=ctx.config.beam.runner,
        )
    return out.uri
