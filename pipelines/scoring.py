"""Score raw rows with an exported model through its serving signature (raw tf.Examples in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Schema


def encode_examples(df: pd.DataFrame, schema: Schema) -> list[bytes]:
    """Serialize the rows' raw feature values as tf.Example protos (missing values left out)."""
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    from pipelines.transform import column_kinds, to_record_batches

    kinds = column_kinds(schema)
    kinds.pop(schema.label.name)
    table = pa.Table.from_pandas(df[list(kinds)], preserve_index=False)
    return [e for batch in to_record_batches(table, kinds) for e in example_coder.RecordBatchToExamples(batch)]


def load_scorer(model_dir: str | Path) -> Any:
    """The exported model's serving function (examples -> {probability})."""
    import tensorflow as tf

    from pipelines.train import SIGNATURE

    return tf.saved_model.load(str(model_dir)).signatures[SIGNATURE]


def score(model_dir: str | Path, df: pd.DataFrame, schema: Schema, batch_size: int = 4096) -> np.ndarray:
    """Positive-class probabilities for ``df``'s rows, in order."""
    import tensorflow as tf

    from pipelines.train import EXAMPLES_INPUT, OUTPUT

    serve = load_scorer(model_dir)
    examples = encode_examples(df, schema)
    chunks = [
        serve(**{EXAMPLES_INPUT: tf.constant(examples[i : i + batch_size])})[OUTPUT].numpy()
        for i in range(0, len(examples), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
