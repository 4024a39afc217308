"""Data stages: ingest the window, validate it, check it for drift; and the demo data."""
