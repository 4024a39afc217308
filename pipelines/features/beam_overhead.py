"""Costs a small Beam job pays per transform, per DoFn or per bundle in Beam's Python SDK (and in Python's garbage
collector), taken out while the transform stage runs its pipeline.

TFT's analyzers expand into about a thousand Beam transforms and five hundred DoFns, run as two dozen bundles whose
elements are whole batches, so what Beam does per transform, DoFn or bundle dominates a small job
(``benchmarks/transform_throughput.py --sizes 1 --tune``, TFT on Adult's 48,842 rows: 3.2 s with these costs,
1.5 s without them, in one run; the outputs are identical). Each is a process-wide setting:

* **State and timer specs.** Beam finds a DoFn's user state and timers by inspecting the signature of every
  method it has (``userstate.get_dofn_specs``), and asks again each time the pipeline is built, translated and
  run: four times per DoFn, 60,000 ``inspect.signature`` calls in all. The answer depends only on the functions
  behind the DoFn's bound methods, so it is kept per tuple of those functions.
* **Argument lists.** Beam reads the arguments of each DoFn method from its signature
  (``core.get_function_args_defaults``) whenever it wraps a DoFn: 3,000 times a run. They depend only on the
  function (for a bound method, the function behind it), so they are kept per function.
* **Submodules of pickled functions.** To pickle a function, cloudpickle looks for the submodules it may use by
  going through every module loaded (``_find_imported_submodules``): six thousand names once TensorFlow is loaded,
  for each package each of 600 functions refers to. The names are kept sorted between imports, so only those under
  the package and one of the function's names are looked at; the list found is the same, in the same order.
* **Compression of pickled functions.** Beam compresses every pickled DoFn with bz2 at its highest level (0.3 ms
  each, even for a kilobyte) and the in-process worker decompresses, unpickles, pickles and compresses each again
  for every bundle it sets up: 1,000 bz2 calls a run on 400 distinct payloads. bz2 gives the same bytes for the
  same input, so each result is kept: what goes out (to a distributed runner too) is byte for byte Beam's own.
* **The in-process runner's state cache.** The FnApiRunner's embedded worker caches side inputs in a 100 MB
  cache that weighs every value by walking its object graph (``objsize``). Beam's own SDK harness has that
  cache off by default; here it is off as well (side inputs are read from the same process either way).
* **Option views.** Each applied transform asks the pipeline's options for a view of one options class
  (``PipelineOptions.view_as``), and each view builds an argparse parser of every flag of that class and
  parses the flags again: a thousand parsers. Views of one options object share its values, so one view per
  object and class is kept and handed out again.
* **Element sizes.** For its mean-byte-count metric, each operation measures the size of the first ten
  elements it emits, and about ten in every N after them, by encoding them: a batch of Python objects is pickled
  whole only to be counted (34 MB of token columns for Adult). Outputs are no longer weighed (a counted metric
  only; element counts and the data itself are untouched). An operation that checks its output's types at run
  time (``--performance_runtime_type_check``) keeps its sampling, which does that check.
* **The state sampler's stop.** Each bundle starts a thread that samples which step is running, sleeping up to
  200 ms between samples, and the bundle waits for that sleep to end when it finishes: a tenth of each bundle's
  time, 70 ms for a long one. The sampler sleeps at most ``SAMPLING_PERIOD_MS`` here, so the wait is short.

* **Full garbage collections.** Beam and TFT allocate millions of objects, so Python's cyclic garbage collector
  runs often, and each full pass walks every object alive: most of them are the modules of TensorFlow and Keras,
  loaded before the pipeline and kept to the end (an eighth of a small job's time). The objects alive when the block
  starts are frozen (``gc.freeze``), so a pass looks only at what was allocated since, and handed back to the
  collector when it ends (``gc.unfreeze``). A process that had frozen objects already (a worker forked by
  Airflow's LocalExecutor inherits them, kept out of the collector's way so that memory stays shared) keeps them,
  and those of the block, frozen.

``beam_overhead_removed`` sets them for the pipeline's run and puts Beam's and Python's own back afterwards, also
on an error.
Beam 2.77 is pinned; the tests of the transform stage compare its outputs with and without them.
"""

from __future__ import annotations

import bisect
import bz2
import contextlib
import gc
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

SAMPLING_PERIOD_MS = 5  # the state sampler's longest sleep (Beam's default: 200 ms)


@contextlib.contextmanager
def beam_overhead_removed() -> Iterator[None]:
    """Within the block, Beam's Python SDK skips the per-transform, per-DoFn and per-bundle costs the module lists."""
    from apache_beam.internal import cloudpickle_pickler
    from apache_beam.internal.cloudpickle import cloudpickle
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.runners.worker import bundle_processor, statesampler
    from apache_beam.transforms import core, userstate

    shipped: list[tuple[Any, str, Any]] = []

    def swap(owner: Any, name: str, value: Any) -> None:
        shipped.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    swap(userstate, "get_dofn_specs", _specs_per_methods(userstate.get_dofn_specs))
    swap(core, "get_function_args_defaults", _arguments_per_function(core.get_function_args_defaults))
    swap(cloudpickle, "_find_imported_submodules", _SubmoduleIndex())
    swap(cloudpickle_pickler, "bz2", _RememberedBz2())
    swap(worker_handlers, "STATE_CACHE_SIZE_MB", 0)
    swap(PipelineOptions, "view_as", _one_view_per_class(PipelineOptions.view_as))
    swap(bundle_processor.BundleProcessor, "__init__", _unweighed(bundle_processor.BundleProcessor.__init__))
    swap(statesampler, "StateSampler", _short_sleeps(statesampler.StateSampler))
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()
        for owner, name, value in reversed(shipped):
            setattr(owner, name, value)


def _specs_per_methods(inspect_specs: Callable[[Any], tuple[set, set]]) -> Callable[[Any], tuple[set, set]]:
    """``get_dofn_specs`` asked once per DoFn class and set of functions behind the DoFn's bound methods.

    Beam gets every attribute in ``dir(dofn)`` to find them, which runs the properties of ``DoFn`` that inspect the
    source of ``process``. When the class tells which of its attributes give a bound method (``_method_names``),
    only the instance's own attributes are looked at; otherwise every attribute is, as Beam does.
    """
    specs: dict[tuple[Any, ...], tuple[set, set]] = {}
    classes: dict[type, frozenset[str] | None] = {}

    def dofn_specs(dofn: Any) -> tuple[set, set]:
        cls, own = type(dofn), getattr(dofn, "__dict__", None)
        if cls not in classes:
            classes[cls] = _method_names(cls)
        names = classes[cls]
        if names is None or own is None:
            methods = (getattr(dofn, name, None) for name in dir(dofn))
            key = (cls, *(m.__func__ for m in methods if isinstance(m, types.MethodType)))
        else:  # what the instance's own attributes add or hide; the class's methods go with the class
            own_methods = ((n, v) for n, v in own.items() if n in names or isinstance(v, types.MethodType))
            key = (cls, *((n, v.__func__ if isinstance(v, types.MethodType) else None) for n, v in own_methods))
        if key not in specs:
            specs[key] = inspect_specs(dofn)
        return specs[key]

    return dofn_specs


# Attributes whose value on an instance is never a bound method: the interpreter's own descriptors.
_NOT_METHODS = (
    staticmethod,
    types.BuiltinFunctionType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MethodDescriptorType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
)


def _method_names(cls: type) -> frozenset[str] | None:
    """The names of ``cls``'s attributes that give a bound method on an instance (its functions and class methods),
    or None when the class cannot tell: a property or descriptor of its own (``DoFn``'s properties give flags),
    slots, or its own ``__dir__`` or ``__getattribute__``."""
    from apache_beam.transforms.core import DoFn

    if cls.__dir__ is not object.__dir__ or cls.__getattribute__ is not object.__getattribute__:
        return None
    names, beams = set(), vars(DoFn)
    for name in dir(cls):
        value = inspect.getattr_static(cls, name)
        if isinstance(value, (types.FunctionType, classmethod, types.MethodType)):
            names.add(name)
        elif hasattr(type(value), "__get__") and not isinstance(value, _NOT_METHODS) and value is not beams.get(name):
            return None
    return frozenset(names)


def _arguments_per_function(read: Callable[[Any], tuple[list, list]]) -> Callable[[Any], tuple[list, list]]:
    """``get_function_args_defaults`` asked once per function (a bound method's: the function behind it), the
    lists copied for each caller."""
    known: dict[Any, tuple[list, list]] = {}

    def arguments(fn: Any) -> tuple[list, list]:
        key = ("bound", fn.__func__) if isinstance(fn, types.MethodType) else fn
        try:
            if key not in known:
                known[key] = read(fn)
        except TypeError:  # an unhashable callable
            return read(fn)
        names, defaults = known[key]
        return list(names), list(defaults)

    return arguments


class _SubmoduleIndex:
    """cloudpickle's ``_find_imported_submodules``: the loaded submodules of each package among a function's globals
    whose every name after the package's is one the function's code uses, in the order they were loaded. The loaded
    names are kept sorted until a module is loaded or removed, so only those under the package and a name the code
    uses are looked at."""

    def __init__(self) -> None:
        self._state: tuple[int, Any] = (-1, None)
        self._sorted: list[str] = []
        self._order: dict[str, int] = {}

    def __call__(self, code: types.CodeType, top_level_dependencies: Any) -> list[types.ModuleType]:
        modules = sys.modules
        state = (len(modules), next(reversed(modules.keys()), None))  # a load or a removal changes one of them
        if state != self._state:
            names = [name for name in list(modules) if name is not None]  # older pytest puts None in sys.modules
            self._state, self._sorted = state, sorted(names)
            self._order = {name: i for i, name in enumerate(names)}
        used = set(code.co_names)
        subimports = []
        for module in top_level_dependencies:
            if isinstance(module, types.ModuleType) and getattr(module, "__package__", None):
                prefix = module.__name__ + "."
                found = [name for first in used for name in self._under(prefix + first)]
                found = [name for name in found if not set(name[len(prefix) :].split(".")) - used]
                subimports += [modules[name] for name in sorted(found, key=self._order.__getitem__)]
        return subimports

    def _under(self, name: str) -> list[str]:
        """``name`` and the loaded names below it."""
        below = name + "."
        start = bisect.bisect_left(self._sorted, below)
        end = bisect.bisect_left(self._sorted, name + "/")  # "/" sorts right after "."
        return ([name] if name in self._order else []) + self._sorted[start:end]


class _RememberedBz2:
    """The ``bz2`` of Beam's pickler with each result kept: the same input gives the same bytes, so a payload
    compressed once is not compressed again, and one compressed here is decompressed without bz2."""

    def __init__(self) -> None:
        self._compressed: dict[tuple[bytes, int], bytes] = {}
        self._plain: dict[bytes, bytes] = {}

    def compress(self, data: bytes, compresslevel: int = 9) -> bytes:
        key = (bytes(data), compresslevel)
        if key not in self._compressed:
            self._compressed[key] = bz2.compress(data, compresslevel)
            self._plain[self._compressed[key]] = key[0]
        return self._compressed[key]

    def decompress(self, data: bytes) -> bytes:
        key = bytes(data)
        if key not in self._plain:
            self._plain[key] = bz2.decompress(data)
        return self._plain[key]


def _one_view_per_class(view_as: Callable[[Any, type], Any]) -> Callable[[Any, type], Any]:
    """``PipelineOptions.view_as`` building one view per options object and class, handed out again after."""
    views: dict[tuple[int, type], tuple[Any, Any]] = {}  # (id of options, class) -> (options, view)

    def one_view(options: Any, cls: type) -> Any:
        key = (id(options), cls)
        if key not in views:
            views[key] = (options, view_as(options, cls))  # holding the options keeps its id from being reused
        return views[key][1]

    return one_view


def _unweighed(new_processor: Callable[..., None]) -> Callable[..., None]:
    """``BundleProcessor.__init__`` whose operations count their outputs without sampling their sizes."""

    def unweighed_processor(processor: Any, *args: Any, **kwargs: Any) -> None:
        new_processor(processor, *args, **kwargs)
        for operation in processor.ops.values():
            for receiver in operation.receivers:
                counters = receiver.opcounter
                if not counters.output_type_constraints:  # else it samples to check types at run time
                    counters.coder_impl = None  # Beam's own switch: no coder, no size sampling

    return unweighed_processor


def _short_sleeps(sampler: type) -> type:
    """A state sampler that sleeps at most ``SAMPLING_PERIOD_MS`` between samples."""

    class ShortSleepSampler(sampler):  # type: ignore[misc, valid-type]
        def __init__(self, prefix: str, counter_factory: Any, sampling_period_ms: int = SAMPLING_PERIOD_MS) -> None:
            super().__init__(prefix, counter_factory, min(sampling_period_ms, SAMPLING_PERIOD_MS))

    return ShortSleepSampler
