"""The transform stage with real Beam + TFT, the stable train/test split, and the Beam runner options (the
preprocessing_fn's transforms are in test_preprocessing.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import ADULT_CONFIG, ingest_and_validate

from pipelines.core.config import Beam, Config, ConfigError, load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, IngestOutput, StaleInput, TransformOutput
from pipelines.features import transform
from pipelines.features.encoding import column_kinds, to_record_batches
from pipelines.features.transform import analyze_and_transform, beam_options, in_test_split, transform_features

CONFIG = load_config(ADULT_CONFIG)
SCHEMA = CONFIG.data_schema


def keyed(n: int, day: str = "2026-01-01") -> pd.DataFrame:
    return pd.DataFrame({SOURCE_DS: [day] * n, SOURCE_ROW: np.arange(2, n + 2)})


def test_split_has_the_configured_fraction_and_is_stable_per_row():
    rows = pd.concat([keyed(5000, "2026-01-01"), keyed(5000, "2026-01-02")], ignore_index=True)
    mask = in_test_split(rows, 0.2, seed=0)
    assert mask.mean() == pytest.approx(0.2, abs=0.015)
    # A row's side does not depend on which other rows are in the window.
    later_window = rows.iloc[5000:].reset_index(drop=True)
    assert (in_test_split(later_window, 0.2, seed=0) == mask[5000:]).all()
    assert (in_test_split(rows, 0.2, seed=1) != mask).any()


def test_record_batches_turn_nulls_into_empty_lists():
    table = pa.table({"age": [39.0, None], "sex": ["Male", None], "income": [">50K", "<=50K"]})
    kinds = {"age": "numeric", "sex": "categorical", "income": "categorical"}
    (batch,) = list(to_record_batches(table, kinds))
    assert batch.schema.field("age").type == pa.list_(pa.float32())
    assert batch.schema.field("sex").type == pa.list_(pa.large_binary())
    assert batch.column("age").to_pylist() == [[39.0], []]
    assert batch.column("sex").to_pylist() == [[b"Male"], []]


# Each runner's flags as docs/operations.md gives them, and where Beam keeps them (none of these runners runs here).
RUNNER_FLAGS = {
    "FlinkRunner": (
        ["--flink_master=localhost:8081", "--environment_type=LOOPBACK", "--parallelism=2"],
        {"FlinkRunnerOptions": {"flink_master": "localhost:8081", "parallelism": 2},
         "PortableOptions": {"environment_type": "LOOPBACK"}},
    ),
    "SparkRunner": (
        ["--spark_master_url=spark://localhost:7077", "--environment_type=LOOPBACK"],
        {"SparkRunnerOptions": {"spark_master_url": "spark://localhost:7077"},
         "PortableOptions": {"environment_type": "LOOPBACK"}},
    ),
    "DataflowRunner": (
        ["--project=my-project", "--region=europe-west1", "--temp_location=gs://my-bucket/beam-tmp"],
        {"GoogleCloudOptions": {"project": "my-project", "region": "europe-west1",
                                "temp_location": "gs://my-bucket/beam-tmp"}},
    ),
}  # fmt: skip


def with_runner(runner: str, options: list[str] | None = None) -> Config:
    return CONFIG.model_copy(update={"beam": Beam(runner=runner, options=options or [])})


@pytest.mark.parametrize("runner", sorted(RUNNER_FLAGS))
def test_runner_options_reach_beam_unchanged(runner):
    from apache_beam.options import pipeline_options

    flags, expected = RUNNER_FLAGS[runner]
    options = beam_options(with_runner(runner, flags))

    assert options.view_as(pipeline_options.StandardOptions).runner == runner
    for view, values in expected.items():
        seen = options.view_as(getattr(pipeline_options, view))
        assert {key: getattr(seen, key) for key in values} == values
    everything = options.get_all_options()
    assert all(everything[key] == value for values in expected.values() for key, value in values.items())


@pytest.mark.parametrize(
    "runner", ["flink", "DirectRunner", "apache_beam.runners.portability.flink_runner.FlinkRunner"]
)
def test_beam_runner_names_beam_accepts_pass(runner):
    from apache_beam.options.pipeline_options import StandardOptions

    assert beam_options(with_runner(runner)).view_as(StandardOptions).runner == runner


def test_an_unknown_runner_is_refused_before_the_pipeline_starts(tmp_path):
    out = TransformOutput(tmp_path)
    with pytest.raises(ConfigError, match="beam.runner: unknown runner 'FlinkRuner'; Beam knows .*FlinkRunner"):
        analyze_and_transform(out, with_runner("FlinkRuner", ["--flink_master=localhost:8081"]))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("runner", "flags", "checked"),
    [
        ("FnApiRunner", [], False),  # in process: Beam's construction-time type checks are off
        ("DirectRunner", ["--direct_num_workers=2"], False),
        ("FlinkRunner", ["--flink_master=localhost:8081"], True),  # a distributed runner gets the flags unchanged
    ],
)
def test_type_checks_are_off_in_process_only(runner, flags, checked):
    from apache_beam.options.pipeline_options import TypeOptions

    assert beam_options(with_runner(runner, flags)).view_as(TypeOptions).pipeline_type_check is checked


def test_transform_stage_writes_disjoint_splits_and_the_transform_graph(small_adult):
    import tensorflow_transform as tft

    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot_uri, validation_uri = ingest_and_validate(ctx)
    snapshot = IngestOutput(snapshot_uri).read_snapshot()

    out = TransformOutput(transform_features(ctx, snapshot_uri, validation_uri))

    train, test = pd.read_parquet(out.train_raw), pd.read_parquet(out.test_raw)
    assert len(train) + len(test) == len(snapshot)
    keys = lambda df: set(zip(df[SOURCE_DS], df[SOURCE_ROW], strict=True))  # noqa: E731
    assert not keys(train) & keys(test)
    assert len(test) / len(snapshot) == pytest.approx(ctx.config.data.test_fraction, abs=0.03)
    assert (out.tft_dir / "transform_fn" / "saved_model.pb").exists()
    spec = tft.TFTransformOutput(str(out.tft_dir)).transformed_feature_spec()
    buckets = {f.bucket_output for f in SCHEMA.model_features if f.bucket_output}
    assert buckets == {"capital_gain_bucket", "capital_loss_bucket"}
    assert set(spec) == set(SCHEMA.columns) | buckets  # the Adult config: each column scaled or encoded, 2 bucketed
    assert out.path == ctx.stage_dir(StageName.TRANSFORM)
    assert set(column_kinds(SCHEMA)) == set(SCHEMA.columns)


def test_transform_refuses_a_snapshot_that_failed_validation_or_was_never_validated(small_adult):
    from pipelines.core.artifacts import read_metadata, write_json_atomic

    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot_uri, validation_uri = ingest_and_validate(ctx)
    meta = read_metadata(validation_uri)
    write_json_atomic(Path(validation_uri) / "metadata.json", {**meta, "status": "failed"})

    with pytest.raises(StaleInput, match="validate output .* is marked failed"):
        transform_features(ctx, snapshot_uri, validation_uri)
    with pytest.raises(StaleInput, match="no validate output at .*: run `validate` first"):
        transform_features(ctx, snapshot_uri, str(ctx.config.artifact_root / "nowhere"))
    assert not ctx.stage_dir(StageName.TRANSFORM).exists()


def test_transformed_examples_are_the_same_in_every_run_and_with_beams_own_overhead(small_adult, tmp_path, monkeypatch):
    """In process, each bundle's batches are encoded and written straight to files of their own, FILE_ROWS examples
    each: two runs on the same rows give the same examples in the same order, every train row once, and nothing
    temporary is left. A third run with Beam's overhead left in (``beam_overhead_removed`` off) gives the same
    examples and vocabularies."""
    import contextlib

    import pyarrow.parquet as pq
    import tensorflow as tf

    ctx = RunContext.create(small_adult, "2026-01-03")
    train = pq.read_table(TransformOutput(transform_features(ctx, *ingest_and_validate(ctx))).train_raw)
    monkeypatch.setattr(transform, "FILE_ROWS", 700)
    runs, vocabularies = [], []
    for name in ("one", "two", "beam as shipped"):
        if name == "beam as shipped":
            monkeypatch.setattr(transform, "beam_overhead_removed", contextlib.nullcontext)
        out = TransformOutput(tmp_path / name)
        out.path.mkdir()
        pq.write_table(train, out.train_raw, row_group_size=1_000)
        analyze_and_transform(out, ctx.config)
        files = sorted(out.transformed_dir.iterdir())
        assert files and all(p.name.startswith("train-") and p.suffix == ".tfrecord" for p in files)
        sizes = [sum(1 for _ in tf.data.TFRecordDataset(str(p))) for p in files]
        assert len(files) == -(-train.num_rows // 700) and set(sizes[:-1]) == {700} and 0 < sizes[-1] <= 700
        examples = [tf.train.Example.FromString(e.numpy()) for p in files for e in tf.data.TFRecordDataset(str(p))]
        runs.append([{k: list(v.float_list.value or v.int64_list.value) for k, v in e.features.feature.items()}
                     for e in examples])  # fmt: skip
        assets = out.tft_dir / "transform_fn" / "assets"
        vocabularies.append({p.name: p.read_text() for p in assets.iterdir()})

    assert len(runs[0]) == train.num_rows
    assert runs[0] == runs[1] == runs[2]
    assert len(vocabularies[0]) == 8 and vocabularies[0] == vocabularies[1] == vocabularies[2]


@pytest.mark.parametrize(
    ("runner", "sink"),
    [("FnApiRunner", False), ("DirectRunner", False), ("FlinkRunner", True), ("DataflowRunner", True)],
)
def test_a_distributed_runner_writes_through_beams_file_sink(runner, sink):
    import apache_beam as beam

    from pipelines.features.transform import write_examples

    write = write_examples("/tmp/x/train", beam_options(with_runner(runner)))
    parts = getattr(write, "_parts", [write])  # a chain of transforms keeps its parts there
    assert any(isinstance(part, beam.io.WriteToTFRecord) for part in parts) is sink
