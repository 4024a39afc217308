"""Score raw rows with an exported model through its serving signature (raw tf.Examples in).

Rows are encoded and scored a batch at a time, so the serialized examples and the input tensor never
hold more than ``batch_size`` rows, whatever the number of rows scored; only the output (one float per
row) grows with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Schema
from pipelines.features.encoding import encode_examples
from pipelines.model.signature import EXAMPLES_INPUT, OUTPUT, SIGNATURE

BATCH_SIZE = 4096


def load_scorer(model_dir: str | Path) -> Any:
    """The exported model's serving function (examples -> {probability})."""
    import tensorflow as tf

    return tf.saved_model.load(str(model_dir)).signatures[SIGNATURE]


def predict_with(serve: Any, df: pd.DataFrame, schema: Schema, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Positive-class probabilities for ``df``'s rows, in order, from a loaded serving function.

    Raises:
        ValueError: ``batch_size`` is not positive, or the model returns a different number of scores
            than it was given rows (a serving signature that does not map one example to one score).
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of rows, got {batch_size}")
    out = np.empty(len(df), dtype=np.float32)
    for start in range(0, len(df), batch_size):
        examples = encode_examples(df.iloc[start : start + batch_size], schema)
        scores = np.asarray(serve(**{EXAMPLES_INPUT: tf.constant(examples)})[OUTPUT]).reshape(-1)
        if len(scores) != len(examples):
            raise ValueError(
                f"the model's {SIGNATURE!r} signature returned {len(scores)} scores for {len(examples)} rows: "
                f"export it so that {OUTPUT!r} holds one probability per example"
            )
        out[start : start + len(examples)] = scores
    return out


def score(model_dir: str | Path, df: pd.DataFrame, schema: Schema, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Positive-class probabilities for ``df``'s rows, in order (loads the model first)."""
    return predict_with(load_scorer(model_dir), df, schema, batch_size)
