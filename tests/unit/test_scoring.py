"""Scoring goes through a real SavedModel's serving signature in bounded batches, keeping the rows' order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG

from pipelines.core.config import load_config
from pipelines.features.encoding import raw_feature_spec
from pipelines.model.scoring import load_scorer, predict_with, score
from pipelines.model.signature import EXAMPLES_INPUT, OUTPUT, SIGNATURE

SCHEMA = load_config(ADULT_CONFIG).data_schema


@pytest.fixture(scope="module")
def batch_reporter(tmp_path_factory):
    """A SavedModel whose "probability" for a row is 1000 x (rows in its batch) + the row's age: it tells
    how the rows reached it."""
    import tensorflow as tf

    spec = raw_feature_spec(SCHEMA, with_label=False)

    class Reporter(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
        def serve(self, examples):
            age = tf.reshape(tf.sparse.to_dense(tf.io.parse_example(examples, spec)["age"]), [-1])
            return {OUTPUT: 1000.0 * tf.cast(tf.shape(examples)[0], tf.float32) + age}

    module = Reporter()
    path = tmp_path_factory.mktemp("model") / "reporter"
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})
    return path


def rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    columns = {f.name: rng.integers(17, 91, n).astype(float) for f in SCHEMA.model_features if f.kind == "numeric"}
    columns |= {f.name: "x" for f in SCHEMA.model_features if f.kind == "categorical"}
    return pd.DataFrame(columns)


def test_rows_are_scored_in_batches_of_at_most_batch_size_in_order(batch_reporter):
    frame = rows(2500)

    out = score(batch_reporter, frame, SCHEMA, batch_size=1000)

    assert out.shape == (2500,) and out.dtype == np.float32
    np.testing.assert_array_equal(out % 1000, frame["age"].to_numpy())  # every row, in order
    np.testing.assert_array_equal(out // 1000, np.repeat([1000, 1000, 500], [1000, 1000, 500]))


def test_no_rows_give_no_scores_and_a_bad_batch_size_is_refused(batch_reporter):
    serve = load_scorer(batch_reporter)

    assert predict_with(serve, rows(0), SCHEMA).shape == (0,)
    with pytest.raises(ValueError, match="batch_size must be a positive number of rows, got 0"):
        predict_with(serve, rows(3), SCHEMA, batch_size=0)
