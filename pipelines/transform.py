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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.artifacts import atomic_dir, fingerprint_json
from pipelines.config import Config, Schema
from pipelines.context import RunContext

log = logging.getLogger(__name__)

STAGE = "transform"
TRAIN_RAW = "train_raw.parquet"
TEST_RAW = "test_raw.parquet"
TFT_DIR = "tft"
TRANSFORMED = "transformed"
TRANSFORMED_TRAIN = "train"
MISSING_TOKEN = "__MISSING__"


def in_test_split(df: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """True for rows in the test split: a stable hash of (seed, source date, source line)."""
    from pipelines.ingest import SOURCE_DS, SOURCE_ROW

    keys = (f"{seed}/{d}/{r}".encode() for d, r in zip(df[SOURCE_DS], df[SOURCE_ROW], strict=True))
    buckets = np.fromiter(
        (int.from_bytes(hashlib.blake2b(k, digest_size=8).digest(), "big") % 10_000 for k in keys),
        dtype=np.int64,
        count=len(df),
    )
    return buckets < round(fraction * 10_000)


def column_kinds(schema: Schema) -> dict[str, str]:
    """Each raw column's kind; the label is read as a string like a categorical."""
    return {**{f.name: f.kind for f in schema.features}, schema.label.name: "categorical"}


def arrow_schema(kinds: dict[str, str]) -> Any:
    """Arrow schema of the RecordBatches fed to TFT: every column a list (empty when missing)."""
    import pyarrow as pa

    value = {"numeric": pa.float32(), "categorical": pa.large_binary()}
    return pa.schema([pa.field(name, pa.list_(value[kind])) for name, kind in kinds.items()])


def to_record_batches(table: Any, kinds: dict[str, str]) -> Iterator[Any]:
    """Turn a flat Arrow table (one value or null per cell) into TFXIO-style list-column batches."""
    import pyarrow as pa
    import pyarrow.compute as pc

    target = arrow_schema(kinds)
    for batch in table.select(list(kinds)).to_batches():
        columns = []
        for field in target:
            column = batch.column(field.name).cast(field.type.value_type)
            valid = pc.is_valid(column)
            offsets = np.concatenate([[0], np.cumsum(valid.to_numpy(zero_copy_only=False))]).astype(np.int32)
            columns.append(pa.ListArray.from_arrays(pa.array(offsets), column.filter(valid)))
        yield pa.RecordBatch.from_arrays(columns, schema=target)


def raw_feature_spec(schema: Schema, with_label: bool = True) -> dict[str, Any]:
    """The tf.Example parsing spec of raw data: every column variable-length, so it may be missing."""
    import tensorflow as tf

    dtype = {"numeric": tf.float32, "categorical": tf.string}
    kinds = column_kinds(schema)
    if not with_label:
        kinds.pop(schema.label.name)
    return {name: tf.io.VarLenFeature(dtype[kind]) for name, kind in kinds.items()}


def make_preprocessing_fn(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The TFT preprocessing function implied by the schema (label optional, as at serving time)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    def dense(sparse: Any, default: Any) -> Any:
        shaped = tf.SparseTensor(sparse.indices, sparse.values, [sparse.dense_shape[0], 1])
        return tf.squeeze(tf.sparse.to_dense(shaped, default_value=default), axis=1)

    def preprocessing_fn(inputs: dict[str, Any]) -> dict[str, Any]:
        outputs = {}
        for name in schema.numeric:
            outputs[name] = dense(tft.scale_to_z_score(inputs[name]), 0.0)
        for name in schema.categorical:
            outputs[name] = tft.compute_and_apply_vocabulary(
                dense(inputs[name], MISSING_TOKEN), num_oov_buckets=1, vocab_filename=name
            )
        label = schema.label
        if label.name in inputs:
            outputs[label.name] = tf.cast(tf.equal(dense(inputs[label.name], ""), label.positive), tf.int64)
        return outputs

    return preprocessing_fn


def beam_options(config: Config) -> Any:
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions([f"--runner={config.beam.runner}", *config.beam.options])


def analyze_and_transform(train_parquet: Path, out: Path, config: Config) -> None:
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
    temp = out / ".beam-tmp"
    with beam.Pipeline(options=beam_options(config)) as pipeline, tft_beam.Context(temp_dir=str(temp)):
        batches = (
            pipeline
            | "ReadTrainRows" >> beam.io.ReadFromParquetBatched(str(train_parquet), columns=list(kinds))
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
                str(out / TRANSFORMED / TRANSFORMED_TRAIN), file_name_suffix=".tfrecord", num_shards=1
            )
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(out / TFT_DIR))
    shutil.rmtree(temp, ignore_errors=True)


def transform(ctx: RunContext, snapshot_uri: str) -> str:
    """Split the snapshot and run TFT; returns the URI of the transform directory for D."""
    from pipelines.artifacts import fingerprint_frame
    from pipelines.ingest import read_snapshot

    data = ctx.config.data
    snapshot = read_snapshot(snapshot_uri)
    is_test = in_test_split(snapshot, data.test_fraction, data.split_seed)
    train, test = snapshot[~is_test].reset_index(drop=True), snapshot[is_test].reset_index(drop=True)
    final = ctx.stage_dir(STAGE)
    with atomic_dir(final) as out:
        train.to_parquet(out / TRAIN_RAW, index=False)
        test.to_parquet(out / TEST_RAW, index=False)
        log.info(
            "transform: %d train rows, %d test rows; running TFT on %s",
            len(train),
            len(test),
            ctx.config.beam.runner,
        )
        analyze_and_transform(out / TRAIN_RAW, out, ctx.config)
        split_fingerprints = {"train": fingerprint_frame(train), "test": fingerprint_frame(test)}
        ctx.write_metadata(
            out,
            STAGE,
            fingerprint_json(split_fingerprints),
            inputs={"snapshot": snapshot_uri},
            train_rows=len(train),
            test_rows=len(test),
            split_fingerprints=split_fingerprints,
            beam_runner=ctx.config.beam.runner,
        )
    return str(final)
