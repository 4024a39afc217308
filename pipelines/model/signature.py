"""The serving-signature contract of every exported model, shared by training, scoring and serving.

A model takes a batch of serialized raw ``tf.Example`` protos as ``examples`` and returns the
positive-class ``probability`` per example from its ``serving_default`` signature. TensorFlow
Serving's REST API speaks the same contract.
"""

from __future__ import annotations

SIGNATURE = "serving_default"
EXAMPLES_INPUT = "examples"
OUTPUT = "probability"
