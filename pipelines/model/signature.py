"""The serving-signature contract of every exported model, shared by training, scoring and serving.

A model takes a batch of serialized raw ``tf.Example`` protos as ``examples`` and returns the
positive-class ``probability`` per example from its ``serving_default`` signature (for a multi-class
label: each class's probability, ``[examples, classes]`` in the order of ``label.values``). TensorFlow
Serving's REST API speaks the same contract. The model's folder also holds its decision threshold
(``decision_threshold.json``), so wherever the model goes, its cut goes with it.
"""

from __future__ import annotations

import json
from pathlib import Path

SIGNATURE = "serving_default"
EXAMPLES_INPUT = "examples"
OUTPUT = "probability"
THRESHOLD_FILE = "decision_threshold.json"  # in the model's folder: the threshold travels with the model
DEFAULT_THRESHOLD = 0.5


def read_threshold(model_dir: str | Path) -> float:
    """The model's decision threshold (a score at or above it is a positive); 0.5 for a model without one, and
    for a multi-class model, which has none (its class is the most probable one)."""
    path = Path(model_dir) / THRESHOLD_FILE
    value = json.loads(path.read_text())["threshold"] if path.exists() else None
    return DEFAULT_THRESHOLD if value is None else float(value)
