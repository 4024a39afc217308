"""Evaluation: metrics with confidence intervals, overall and per slice."""
