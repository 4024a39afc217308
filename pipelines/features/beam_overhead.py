"""Three per-transform costs of Beam's Python SDK, taken out while the transform stage runs its pipeline.

TFT's analyzers expand into about a thousand Beam transforms and five hundred DoFns, so what Beam does once per
transform or DoFn dominates a small job (``benchmarks/transform_throughput.py --sizes 1 --tune``, TFT on Adult's
48,842 rows: 4.6 s with these costs, 2.9 s without them, in one run; the outputs are identical):

* **State and timer specs.** Beam finds a DoFn's user state and timers by inspecting the signature of every
  method it has (``userstate.get_dofn_specs``), and asks again each time the pipeline is built, translated and
  run: four times per DoFn, 60,000 ``inspect.signature`` calls in all. The answer depends only on the functions
  behind the DoFn's bound methods, so it is kept per tuple of those functions.
* **The in-process runner's state cache.** The FnApiRunner's embedded worker caches side inputs in a 100 MB
  cache that weighs every value by walking its object graph (``objsize``). Beam's own SDK harness has that
  cache off by default; here it is off as well (side inputs are read from the same process either way).
* **Option views.** Each applied transform asks the pipeline's options for a view of one options class
  (``PipelineOptions.view_as``), and each view builds an argparse parser of every flag of that class and
  parses the flags again: a thousand parsers. Views of one options object share its values, so one view per
  object and class is kept and handed out again.

They are process-wide settings of Beam, so ``beam_overhead_removed`` sets them for the pipeline's run and puts
Beam's own back afterwards. Beam 2.77 is pinned; the test of the transform stage compares its outputs with
and without them.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def beam_overhead_removed() -> Iterator[None]:
    """Within the block, DoFn state and timer specs are computed once per set of methods, the in-process runner's
    state cache is off, and an options object gives one view per options class."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.transforms import userstate

    inspect_specs, cache_mb, view_as = (
        userstate.get_dofn_specs,
        worker_handlers.STATE_CACHE_SIZE_MB,
        PipelineOptions.view_as,
    )
    specs: dict[tuple[Any, ...], tuple[set, set]] = {}
    views: dict[tuple[int, type], tuple[Any, Any]] = {}  # (id of options, class) -> (options, view)

    def dofn_specs(dofn: Any) -> tuple[set, set]:
        methods = (getattr(dofn, name, None) for name in dir(dofn))
        key = (type(dofn), *(m.__func__ for m in methods if isinstance(m, types.MethodType)))
        if key not in specs:
            specs[key] = inspect_specs(dofn)
        return specs[key]

    def one_view(options: Any, cls: type) -> Any:
        key = (id(options), cls)
        if key not in views:
            views[key] = (options, view_as(options, cls))  # holding the options keeps its id from being reused
        return views[key][1]

    userstate.get_dofn_specs, worker_handlers.STATE_CACHE_SIZE_MB = dofn_specs, 0
    PipelineOptions.view_as = one_view
    try:
        yield
    finally:
        userstate.get_dofn_specs, worker_handlers.STATE_CACHE_SIZE_MB = inspect_specs, cache_mb
        PipelineOptions.view_as = view_as
