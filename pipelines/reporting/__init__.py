"""Reporting: human-readable accounts of runs, read back from their artifacts."""
