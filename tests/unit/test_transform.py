"""Transform with real Beam + TFT on in-memory rows, and the stable train/test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import ADULT_CONFIG, ingest_and_validate

from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, IngestOutput, StaleInput, TransformOutput
from pipelines.features.encoding import column_kinds, to_record_batches
from pipelines.features.transform import MISSING_TOKEN, analyze_and_transform, in_test_split, transform_features

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


def test_preprocessing_on_in_memory_rows(tmp_path, adult_frame):
    import tensorflow as tf
    import tensorflow_transform as tft

    rows = adult_frame.head(400).copy()
    rows["age"] = pd.to_numeric(rows["age"])
    for name in SCHEMA.numeric:
        rows[name] = pd.to_numeric(rows[name])
    rows.loc[:19, "age"] = np.nan
    rows.loc[20:29, "workclass"] = None
    out = TransformOutput(tmp_path)
    rows[SCHEMA.columns].to_parquet(out.train_raw, index=False)

    analyze_and_transform(out, CONFIG)

    output = tft.TFTransformOutput(str(out.tft_dir))
    spec = output.transformed_feature_spec()
    assert set(spec) == set(SCHEMA.columns)
    files = [str(p) for p in out.transformed_dir.glob("*.tfrecord")]
    batch = next(iter(tf.data.TFRecordDataset(files).batch(1000).map(lambda x: tf.io.parse_example(x, spec))))
    values = {k: v.numpy() for k, v in batch.items()}
    assert len(values["age"]) == len(rows)
    # z-score: present ages have mean 0 and std 1; missing ones sit at the mean (0).
    present = values["age"][values["age"] != 0]
    assert abs(present.mean()) < 0.1 and present.std() == pytest.approx(1.0, abs=0.1)
    assert np.isclose(values["age"], 0.0).sum() >= 20
    # Vocabulary indices stay within the vocabulary plus one OOV bucket; missing is its own token.
    vocab = output.vocabulary_by_name("workclass")
    assert MISSING_TOKEN.encode() in vocab
    assert values["workclass"].max() <= len(vocab) and values["workclass"].min() >= 0
    # The label is 1 exactly for the configured positive value.
    expected = (rows["income"] == ">50K").to_numpy(dtype=int)
    assert sorted(values["income"].tolist()) == sorted(expected.tolist())


def test_transform_stage_writes_disjoint_splits_and_the_transform_graph(small_adult):
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
