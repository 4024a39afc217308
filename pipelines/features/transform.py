"""Transform: split the snapshot, analyze the train split with Beam + TFT, transform it.

The split (``pipelines.features.splits``) is by default a hash of each row's source (date, line), so a
row keeps its side of the split in every run whose window contains it: yesterday's test rows never leak
into today's training; small data can be stratified by label and chosen slices instead. By default
numeric features are z-scored (missing values land on the mean), categorical ones go through a
vocabulary with one out-of-vocabulary bucket (missing is a token of its own); each feature's config
can choose min-max, log or quantile buckets, vocabulary limits and what a missing value becomes, the
schema adds hashed crosses, or names the user's own preprocessing_fn. Data reaches TFT as Arrow
RecordBatches through tfx-bsl's TensorAdapter: faster than instance dicts, and it exits cleanly.

Outputs: ``train_raw.parquet`` and ``test_raw.parquet`` (raw rows of each split), ``split.json`` (rows,
label and slice shares per split), transformed train examples as TFRecords, and the TFT output (``tft/``:
transform graph, vocabularies, schemas).
"""

from __future__ import annotations

import functools
import importlib
import logging
import operator
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.artifacts import FrameDigest, fingerprint_json, write_json_atomic
from pipelines.core.config import Config, ConfigError, Feature, Label, Schema
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.outputs import (
    SNAPSHOT_BATCH_ROWS,
    IngestOutput,
    StaleInput,
    TransformOutput,
    ValidationOutput,
    require,
)
from pipelines.features.beam_overhead import beam_overhead_removed
from pipelines.features.encoding import arrow_schema, column_kinds, to_record_batches
from pipelines.features.splits import Tally, report_summary, split_rows, streams, tallied_report, tally
from pipelines.features.splits import in_test_split as in_test_split  # re-exported: tests import it from here

log = logging.getLogger(__name__)

TRANSFORMED_TRAIN = "train"
# Transformed train examples per file, in process: training reads several files at once, in an order shuffled each
# epoch (pipelines.model.train.train_dataset), so that its bounded shuffle buffer mixes rows from the whole window.
FILE_ROWS = 4_096
MISSING_TOKEN = "__MISSING__"
SPLIT_ROW_GROUP = 65_536  # rows per Parquet row group of a split: TFT reads one RecordBatch per row group
# The transform phase reads the train split again instead of holding every batch between analysis and transform.
REREAD_FOR_TRANSFORM = True
# The schema's own transforms are traced as a TF1 graph: the same outputs (to float rounding) in a quarter less time
# (benchmarks/transform_throughput.py); a user's preprocessing_fn runs in TF2, as TFT recommends.
TF1_GRAPH = True
# Vocabularies of features with declared values counted and written by one analyzer (``_declared_vocabulary_ids``):
# the same files as one ``tft.vocabulary`` each, in a fraction of the time (benchmarks/transform_throughput.py).
PACKED_VOCABULARIES = True
IN_PROCESS_RUNNERS = {"fnapi", "direct", "bundlebaseddirect", "switchingdirect"}  # lower case, without "Runner"
# Flags put before beam.options for an in-process runner. Beam checks the type hints of each of the thousand transforms
# TFT's analyzers expand into as it builds the pipeline: a second of every run (benchmarks/transform_throughput.py),
# spent checking a pipeline that TFT writes, not the user. A distributed runner gets beam.options alone.
IN_PROCESS_FLAGS = ["--no_pipeline_type_check"]


def load_preprocessing_fn(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The user's preprocessing function at ``package.module:fn`` (or ``package.module.fn``).

    Raises:
        ConfigError: the module or the function cannot be imported, or it is not callable.
    """
    module, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"schema.preprocessing_fn: cannot import {path!r}: {exc}") from exc
    if not callable(fn):
        raise ConfigError(f"schema.preprocessing_fn: {path!r} is a {type(fn).__name__}, not a function")
    return fn


def _dense(sparse: Any, default: Any) -> Any:
    """One value per row from a raw column of zero or one value per row, ``default`` where it is missing."""
    import tensorflow as tf

    shaped = tf.SparseTensor(sparse.indices, sparse.values, [sparse.dense_shape[0], 1])
    return tf.squeeze(tf.sparse.to_dense(shaped, default_value=default), axis=1)


def _numeric_outputs(feature: Feature, raw: Any) -> dict[str, Any]:
    """The scaled value and/or the quantile bucket ids of one numeric feature.

    Missing values are imputed (the train mean, or ``feature.impute``) before scaling, in the graph; the
    analyzers see only the values present, so imputing the mean leaves the z-scores of the others unchanged.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    present, transform = raw.values, feature.transform or "zscore"
    # A z-score's mean and variance come from one analyzer, whose mean is also the fill: tft.mean and tft.var would
    # be three analyzers, 0.1 s of TFT's fixed cost per feature (benchmarks/transform_throughput.py).
    moments = _mean_and_var(present) if transform == "zscore" else None
    if feature.impute is not None:
        fill = tf.constant(feature.impute, tf.float32)
    else:
        fill = moments[0] if moments else tft.mean(present)
    value = _dense(raw, fill)
    outputs = {}
    if feature.bucket_output:
        boundaries = tft.quantiles(present, feature.buckets, epsilon=min(1.0 / feature.buckets, 0.01))
        outputs[feature.bucket_output] = tft.apply_buckets(value, boundaries)
    if transform == "bucketize":
        return outputs
    if transform == "log":
        present, value = (tf.math.log1p(tf.maximum(x, 0.0)) for x in (present, value))
    if transform == "minmax":
        low, high = tft.min(present), tft.max(present)
        outputs[feature.name] = (value - low) / tf.where(high > low, high - low, 1.0)
    else:
        mean, variance = moments or _mean_and_var(present)
        deviation, std = value - mean, tf.sqrt(variance)
        outputs[feature.name] = tf.where(std > 0, deviation / std, deviation)
    return outputs


def _mean_and_var(values: Any) -> tuple[Any, Any]:
    """The mean and the population variance of ``values`` over the dataset, from one TFT analyzer: the one behind
    ``tft.var`` (TFT keeps it private; ``tft.var`` returns only its second half)."""
    from tensorflow_transform import analyzers

    return analyzers._mean_and_var(values)


def _hashed_cross(keys: list[Any], hash_buckets: int) -> Any:
    """Bucket ids of the joined values, with their range recorded in the output schema (as the vocabularies and
    quantile buckets record theirs), so the trainer knows how many ids to embed."""
    import tensorflow as tf
    import tensorflow_transform as tft
    from tensorflow_transform import schema_inference

    ids = tft.hash_strings(tf.strings.join(keys, separator="\x1f"), hash_buckets)
    schema_inference.set_tensor_schema_override(ids, tf.constant(0, tf.int64), tf.constant(hash_buckets - 1, tf.int64))
    return ids


def _configured_outputs(schema: Schema, inputs: dict[str, Any]) -> dict[str, Any]:
    """The per-feature transforms and crosses of the schema."""
    import tensorflow as tf

    outputs, keys, together = {}, {}, []
    for feature in schema.model_features:
        name = feature.name
        if feature.kind == "numeric":
            outputs.update(_numeric_outputs(feature, inputs[name]))
            if feature.bucket_output:
                keys[name] = tf.strings.as_string(outputs[feature.bucket_output])
        else:
            keys[name] = _dense(inputs[name], feature.impute if feature.impute is not None else MISSING_TOKEN)
            if _counted_together(feature):
                together.append(feature)
                outputs[name] = None  # set below by the one analyzer; the entry keeps the schema's order
            else:
                outputs[name] = _vocabulary_ids(feature, keys[name])
    if together:
        outputs.update(_declared_vocabulary_ids(together, [keys[f.name] for f in together]))
    for cross in schema.crosses:
        outputs[cross.name] = _hashed_cross([keys[n] for n in cross.features], cross.hash_buckets)
    return outputs


def _counted_together(feature: Feature) -> bool:
    """Whether a categorical feature's vocabulary is counted in the one analyzer of ``_declared_vocabulary_ids``:
    it declares its values and takes every token (no ``top_k``, no ``frequency_threshold``)."""
    every_token = feature.top_k is None and feature.frequency_threshold is None
    return PACKED_VOCABULARIES and bool(feature.values) and every_token


def _vocabulary_ids(feature: Feature, tokens: Any) -> Any:
    """Vocabulary ids of a categorical feature's tokens from ``tft.vocabulary`` (most frequent first, ties by value
    descending; its ``top_k`` and ``frequency_threshold``), with the feature's out-of-vocabulary buckets."""
    import tensorflow_transform as tft

    return tft.compute_and_apply_vocabulary(
        tokens,
        top_k=feature.top_k,
        frequency_threshold=feature.frequency_threshold,
        num_oov_buckets=feature.num_oov_buckets or 1,
        vocab_filename=feature.name,
    )


def _declared_vocabulary_ids(features: list[Feature], tokens: list[Any]) -> dict[str, Any]:
    """Vocabulary ids of categorical features that declare their values, every vocabulary counted and written by
    one analyzer (``_vocabularies_analyzer``), with each feature's out-of-vocabulary buckets.

    Each ``tft.vocabulary`` is a Beam pipeline of a dozen stages and a file sink of its own: 0.17 s of TFT's fixed
    cost per feature (benchmarks/transform_throughput.py). Such a feature meets few distinct tokens (its declared
    values, missing, and the few others validation let through), so exact counts of all of them fit one combiner.
    The files are the ones ``tft.vocabulary`` writes, under the same names (a test compares both).
    """
    import tensorflow as tf
    import tensorflow_transform as tft
    from tensorflow_transform import analyzers

    names = [analyzers.sanitized_vocab_filename(f.name) for f in features]
    files = tft.experimental.ptransform_analyzer(
        tokens,
        _vocabularies_analyzer(names),
        output_dtypes=[tf.string] * len(names),
        output_shapes=[[]] * len(names),
        output_asset_default_values=[b"TEMPORARY_ASSET_VALUE"] * len(names),  # read while tracing, as TFT's own
        name="declared_vocabularies",
    )
    return {
        feature.name: tft.apply_vocabulary(keys, file, num_oov_buckets=feature.num_oov_buckets or 1)
        for feature, keys, file in zip(features, tokens, files, strict=True)
    }


def _vocabularies_analyzer(names: list[str]) -> Any:
    """A PTransform for ``tft.experimental.ptransform_analyzer``: exact token counts of each input over the dataset,
    then one vocabulary file per input named ``names[i]``, as ``tft.vocabulary`` writes it: most frequent first, ties
    by value descending, without the empty token and tokens with a line break (TFT leaves those out), TFT's dummy
    token when nothing is left. Its outputs are the files' paths."""
    import apache_beam as beam
    import tensorflow as tf
    from tensorflow_transform import analyzers
    from tensorflow_transform.beam.experimental import PTransformAnalyzer

    class CountTokens(beam.CombineFn):
        def create_accumulator(self) -> list[Counter]:
            return [Counter() for _ in names]

        def add_input(self, counters: list[Counter], batch: tuple[Any, ...]) -> list[Counter]:
            for counter, column in zip(counters, batch, strict=True):
                counter.update(column.tolist())  # hashed in C: faster than sorting Python bytes objects (np.unique)
            return counters

        def merge_accumulators(self, accumulators: Any) -> list[Counter]:
            merged, *others = accumulators
            for other in others:
                for counter, more in zip(merged, other, strict=True):
                    counter.update(more)
            return merged

        def extract_output(self, counters: list[Counter]) -> list[Counter]:
            return counters

    class WriteVocabularies(PTransformAnalyzer):
        def expand(self, batches: Any) -> tuple[Any, ...]:
            folder = os.path.join(self.base_temp_dir, f"vocabularies-{uuid.uuid4().hex}")

            def write(counters: list[Counter]) -> list[bytes]:
                tf.io.gfile.makedirs(folder)
                paths = []
                for name, counter in zip(names, counters, strict=True):
                    kept = [(n, t) for t, n in counter.items() if t and b"\n" not in t and b"\r" not in t]
                    ordered = sorted(kept, reverse=True) or [analyzers.get_empy_vocabulary_dummy_value(tf.string)]
                    path = os.path.join(folder, name)
                    with tf.io.gfile.GFile(path, "wb") as file:
                        file.write(b"".join(token + b"\n" for _, token in ordered))
                    paths.append(path.encode())
                return paths

            written = batches | "Count" >> beam.CombineGlobally(CountTokens()) | "Write" >> beam.Map(write)
            return tuple(written | f"Path{i}" >> beam.Map(operator.itemgetter(i)) for i in range(len(names)))

    return WriteVocabularies()


def make_preprocessing_fn(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The TFT preprocessing function: the user's own (``schema.preprocessing_fn``) or the per-feature
    transforms and crosses the schema configures, plus the label when it is among the inputs (it is not at
    serving time).

    Raises:
        ConfigError: ``schema.preprocessing_fn`` cannot be imported or is not callable.
    """
    import tensorflow as tf

    if schema.preprocessing_fn:
        features = load_preprocessing_fn(schema.preprocessing_fn)
    else:
        features = functools.partial(_configured_outputs, schema)
    label = schema.label

    def preprocessing_fn(inputs: dict[str, Any]) -> dict[str, Any]:
        outputs = dict(features(dict(inputs)))
        if label.name in inputs and label.name not in outputs:
            outputs[label.name] = _label_ids(tf, _dense(inputs[label.name], ""), label)
        return outputs

    return preprocessing_fn


def _label_ids(tf: Any, values: Any, label: Label) -> Any:
    """The label as int64 class ids: 1 for the positive value and 0 otherwise (binary), or the value's index in
    ``label.values`` (multi-class; validation has refused other values, which would get 0)."""
    if not label.is_multiclass:
        return tf.cast(tf.equal(values, label.positive), tf.int64)
    hits = tf.cast(tf.stack([tf.equal(values, v) for v in label.classes], axis=-1), tf.int64)
    return tf.reduce_sum(hits * tf.range(len(label.classes), dtype=tf.int64), axis=-1)


def beam_options(config: Config) -> Any:
    """Beam pipeline options from the config: ``--runner`` and every flag of ``beam.options``, unchanged.

    Raises:
        ConfigError: ``beam.runner`` is neither a runner Beam knows nor a dotted class path.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = config.beam.runner
    known = {name.lower() for name in StandardOptions.KNOWN_RUNNER_NAMES}
    if "." not in runner and runner.lower() not in known and f"{runner.lower()}runner" not in known:
        raise ConfigError(
            f"beam.runner: unknown runner {runner!r}; Beam knows {', '.join(StandardOptions.KNOWN_RUNNER_NAMES)} "
            "or the dotted path of a PipelineRunner subclass"
        )
    defaults = IN_PROCESS_FLAGS if _runner_name(runner) in IN_PROCESS_RUNNERS else []
    return PipelineOptions([f"--runner={runner}", *defaults, *config.beam.options])


def _runner_name(runner: str | None) -> str:
    """A runner's name in lower case, without "Runner": the key of ``IN_PROCESS_RUNNERS``."""
    return (runner or "DirectRunner").lower().removesuffix("runner")


def analyze_and_transform(out: TransformOutput, config: Config) -> None:
    """Run the Beam pipeline: read the train split, analyze + transform it, write TFRecords and TFT."""
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_metadata.proto.v0 import schema_pb2
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
    temp, options = out.beam_temp, beam_options(config)
    context = tft_beam.Context(
        temp_dir=str(temp),
        use_deep_copy_optimization=REREAD_FOR_TRANSFORM,
        force_tf_compat_v1=TF1_GRAPH and not schema.preprocessing_fn,
    )
    with beam_overhead_removed(), beam.Pipeline(options=options) as pipeline, context:
        batches = (
            pipeline
            | "ReadTrainRows" >> beam.io.ReadFromParquetBatched(str(out.train_raw), columns=list(kinds))
            | "ToRecordBatches" >> beam.FlatMap(to_record_batches, kinds)
        )
        (transformed, _), transform_fn = (batches, adapter) | "AnalyzeAndTransform" >> (
            tft_beam.AnalyzeAndTransformDataset(make_preprocessing_fn(schema), output_record_batches=True)
        )
        train = str(out.transformed_dir / TRANSFORMED_TRAIN)
        _ = transformed | "WriteTransformedTrain" >> write_examples(train, options)
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(out.tft_dir))
    shutil.rmtree(temp, ignore_errors=True)


def write_examples(prefix: str, options: Any) -> Any:
    """The write of the transformed batches (TFT's ``(RecordBatch, passthrough)`` pairs) as tf.Examples to
    ``<prefix>-*.tfrecord``.

    On a distributed runner, each batch's examples go through Beam's file sink (temporary files, then a rename once
    every bundle is done), sharded as the runner sees fit. In process, each batch is encoded and written straight
    into its bundle's own files of ``FILE_ROWS`` examples: no shuffle of every example into one shard, and no trip
    through Beam per example (the in-process runner fails the pipeline on an error instead of retrying a bundle, so
    no bundle is written twice; with one worker the train split is one bundle, so its files, in name order, hold the
    split's rows in order). Training reads several files at a time in an order shuffled each epoch, so its shuffle
    buffer mixes rows from across the window however large the window is.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import StandardOptions

    if _runner_name(options.view_as(StandardOptions).runner) not in IN_PROCESS_RUNNERS:
        return encoded_examples() | beam.io.WriteToTFRecord(prefix, file_name_suffix=".tfrecord")
    return _write_bundles(prefix)


def encoded_examples() -> Any:
    """Each transformed batch's rows as serialized tf.Examples, one element per example."""
    import apache_beam as beam
    from tfx_bsl.coders import example_coder

    return "EncodeExamples" >> beam.FlatMapTuple(lambda batch, _: example_coder.RecordBatchToExamples(batch))


def _write_bundles(prefix: str) -> Any:
    """A ParDo writing each bundle's transformed batches as tf.Examples to ``<prefix>-<uuid>-<n>.tfrecord``, a file
    of at most ``FILE_ROWS`` examples each (under a temporary name until it is full or the bundle is done)."""
    import apache_beam as beam

    class WriteBundle(beam.DoFn):
        def start_bundle(self) -> None:
            self.writer, self.files, self.rows = None, 0, 0
            self.bundle = f"{prefix}-{uuid.uuid4().hex}"

        def process(self, transformed: tuple[Any, Any]) -> None:
            from tfx_bsl.coders import example_coder

            for example in example_coder.RecordBatchToExamples(transformed[0]):
                if self.writer is None:
                    self._open()
                self.writer.write(example)
                self.rows += 1
                if self.rows == FILE_ROWS:
                    self._close()

        def finish_bundle(self) -> None:
            if self.writer is not None:
                self._close()

        def _open(self) -> None:
            import tensorflow as tf

            Path(prefix).parent.mkdir(parents=True, exist_ok=True)
            self.path = f"{self.bundle}-{self.files:06d}"
            self.writer, self.files, self.rows = tf.io.TFRecordWriter(f"{self.path}.tmp"), self.files + 1, 0

        def _close(self) -> None:
            self.writer.close()
            os.replace(f"{self.path}.tmp", f"{self.path}.tfrecord")
            self.writer = None

    return beam.ParDo(WriteBundle())


class _SplitFile:
    """One split's Parquet file, appended batch by batch, and its ``fingerprint_frame`` computed as it grows."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(path, schema)
        self._digest = FrameDigest()

    def append(self, rows: pd.DataFrame) -> None:
        """Append ``rows`` as a row group."""
        self._digest.update(rows)
        if len(rows):
            table = pa.Table.from_pandas(rows, schema=self._writer.schema, preserve_index=False)
            self._writer.write_table(table, row_group_size=SPLIT_ROW_GROUP)

    def close(self) -> str:
        """Write the footer; returns the content fingerprint of every row appended."""
        self._writer.close()
        return self._digest.hexdigest()


def write_splits(
    snapshot: IngestOutput, out: TransformOutput, config: Config, batch_rows: int = SNAPSHOT_BATCH_ROWS
) -> tuple[dict[str, Tally], dict[str, str]]:
    """Write the raw train, validation and test splits of the snapshot, and count them for the split report.

    The hash split streams: the snapshot is split ``batch_rows`` rows at a time, each batch appended to the three
    files, so memory holds one batch. The stratified split orders each stratum over the whole window, so it reads the
    snapshot whole (it is meant for small data). No validation file is left when that split is empty.

    Returns:
        Each split's ``Tally`` and the content fingerprints of train, test and (when it has rows) validation.
    """
    schema = pq.read_schema(snapshot.snapshot).remove_metadata()
    paths = {"train": out.train_raw, "validation": out.validation_raw, "test": out.test_raw}
    files = {name: _SplitFile(path, schema) for name, path in paths.items()}
    tallies: dict[str, Tally] = {}
    for batch in snapshot.iter_snapshot(batch_rows=batch_rows) if streams(config) else [snapshot.read_snapshot()]:
        for name, rows in split_rows(batch, config)._asdict().items():
            files[name].append(rows)
            counted = tally(rows, config)
            tallies[name] = tallies[name] + counted if name in tallies else counted
    fingerprints = {name: file.close() for name, file in files.items()}
    if not tallies["validation"].rows:
        out.validation_raw.unlink()
        del fingerprints["validation"]
    return tallies, {name: fingerprints[name] for name in ("train", "test", "validation") if name in fingerprints}


def transform_features(ctx: RunContext, snapshot_uri: str, validation_uri: str) -> str:
    """Split the validated snapshot and run TFT; returns the URI of the transform output for D.

    Raises:
        StaleInput: the snapshot did not pass validation (or validation ran on another snapshot).
        ConfigError: an unknown ``beam.runner`` or a ``schema.preprocessing_fn`` that cannot be imported (before
            any work).
    """
    beam_options(ctx.config)  # both raise before any work on a config error
    make_preprocessing_fn(ctx.config.data_schema)
    snapshot = require(IngestOutput(snapshot_uri))
    validation = require(ValidationOutput(validation_uri))
    if validation.metadata()["inputs"]["snapshot"]["fingerprint"] != snapshot.metadata()["fingerprint"]:
        raise StaleInput(f"validation at {validation_uri} checked another snapshot: re-run `validate` first")
    with ctx.open_stage(StageName.TRANSFORM) as out:
        written = TransformOutput(out.path)
        tallies, split_fingerprints = write_splits(snapshot, written, ctx.config)
        report = tallied_report(tallies, ctx.config)
        write_json_atomic(written.split_report_path, report)
        log.info(
            "transform: %d train rows, %d test rows; running TFT on %s",
            tallies["train"].rows,
            tallies["test"].rows,
            ctx.config.beam.runner,
        )
        analyze_and_transform(written, ctx.config)
        out.finish(
            fingerprint_json(split_fingerprints),
            inputs={"snapshot": snapshot, "validation": validation},
            train_rows=tallies["train"].rows,
            test_rows=tallies["test"].rows,
            validation_rows=tallies["validation"].rows,
            split_fingerprints=split_fingerprints,
            split=report_summary(report),
            beam_runner=ctx.config.beam.runner,
        )
    return out.uri
