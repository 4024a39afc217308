"""Score raw rows with an exported model through its serving signature (raw tf.Examples in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Schema
from pipelines.features.encoding import encode_examples
from pipelines.model.signature import EXAMPLES_INPUT, OUTPUT, SIGNATURE


def load_scorer(model_dir: str | Path) -> Any:
    """The exported model's serving function (examples -> {probability})."""
    import tensorflow as tf

    return tf.saved_model.load(str(model_dir)).signatures[SIGNATURE]


def predict_with(serve: Any, df: pd.DataFrame, schema: Schema, batch_size: int = 4096) -> np.ndarray:
    """Positive-class probabilities for ``df``'s rows, in order, from a loaded serving function."""
    import tensorflow as tf

    examples = encode_examples(df, schema)
    chunks = [
        serve(**{EXAMPLES_INPUT: tf.constant(examples[i : i + batch_size])})[OUTPUT].numpy()
        for i in range(0, len(examples), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def score(model_dir: str | Path, df: pd.DataFrame, schema: Schema, batch_size: int = 4096) -> np.ndarray:
    """Positive-class probabilities for ``df``'s rows, in order (loads the model first)."""
    return predict_with(load_scorer(model_dir), df, schema, batch_size)
