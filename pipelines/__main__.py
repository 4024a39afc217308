import gc

from pipelines.cli import main

# A run allocates millions of long-lived objects (TensorFlow, Beam, GX): with Python's default thresholds
# (700, 10, 10) the collector walks them all every few seconds, about 4 s of a 40 s run on all of Adult.
# Collections ten times rarer cost under 1 s and about 0.1 GB more at the peak (benchmarks/pipeline_scale.py).
gc.set_threshold(10_000, 10, 10)
code = main()
# The interpreter's last collections would walk every object again (about 3 s after a run); nothing is left
# to collect that the exit does not free anyway, so skip them.
gc.freeze()
raise SystemExit(code)
