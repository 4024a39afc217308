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
    """Positive-class probabilities for ``df``'s rows, in order, from a loaded serving function; for a multi-class
    label an array [rows, classes] of each class's probability (columns in the order of ``label.values``).

    Raises:
        ValueError: ``batch_size`` is not positive, or the model returns a different number of scores
            than it was given rows (a serving signature that does not map one example to one score).
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of rows, got {batch_size}")
    classes = len(schema.label.classes) if schema.label.is_multiclass else None
    out = np.empty(len(df) if classes is None else (len(df), classes), dtype=np.float32)
    for start in range(0, len(df), batch_size):
        examples = encode_examples(df.iloc[start : start + batch_size], schema)
        scores = np.asarray(serve(**{EXAMPLES_INPUT: tf.constant(examples)})[OUTPUT])
        scores = scores.reshape(-1) if classes is None else scores.reshape(len(scores), -1)
        if len(scores) != len(examples) or (classes is not None and scores.shape[1] != classes):
            each = "one probability" if classes is None else f"{classes} class probabilities"
            raise ValueError(
                f"the model's {SIGNATURE!r} signature returned {scores.shape} scores for {len(examples)} rows: "
                f"export it so that {OUTPUT!r} holds {each} per example"
            )
        out[start : start + len(examples)] = scores
    return out


def score(model_dir: str | Path, df: pd.DataFrame, schema: Schema, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Positive-class probabilities for ``df``'s rows, in order (loads the model first)."""
    return predict_with(load_scorer(model_dir), df, schema, batch_size)
