"""Raw-feature encoding shared by the transform (training) and scoring (serving).

Rows travel as Arrow RecordBatches of list columns (empty when a value is missing), the layout TFT's
TensorAdapter reads, and as tf.Example protos with variable-length features at serving time. Both
sides use these functions, so training and serving cannot disagree on how a raw row is encoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Schema


def column_kinds(schema: Schema) -> dict[str, str]:
    """Each raw column the model reads (audit-only features are not), and its kind; the label is read
    as a string like a categorical."""
    return {**{f.name: f.kind for f in schema.model_features}, schema.label.name: "categorical"}


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


def encode_examples(df: pd.DataFrame, schema: Schema) -> list[bytes]:
    """Serialize the rows' raw feature values as tf.Example protos (missing values left out)."""
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    kinds = column_kinds(schema)
    kinds.pop(schema.label.name)
    table = pa.Table.from_pandas(df[list(kinds)], preserve_index=False)
    return [e for batch in to_record_batches(table, kinds) for e in example_coder.RecordBatchToExamples(batch)]
