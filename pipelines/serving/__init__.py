"""Serving: model servers per deployment slot (TensorFlow Serving's REST API, raw features in)."""
