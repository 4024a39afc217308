"""``beam_overhead_removed``: inside the block Beam skips its per-transform, per-DoFn and per-bundle costs and gives
the same answers, bytes and outputs; outside it, everything is Beam's own again (the transform stage's outputs with
and without it are compared in test_transform.py)."""

from __future__ import annotations

import bz2
import gc
import importlib
import sys

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.internal import pickler
from apache_beam.internal.cloudpickle import cloudpickle
from apache_beam.transforms import core, userstate
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from pipelines.features.beam_overhead import beam_overhead_removed


class Counting(beam.DoFn):
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())

    def process(self, element, count=beam.DoFn.StateParam(COUNT)):  # noqa: B008 - how Beam declares state
        yield element


class Plain(beam.DoFn):
    def process(self, element):
        yield element


class Borrowing(beam.DoFn):
    """A DoFn whose instance may take another DoFn's ``process`` (as ``beam.Map`` takes a bound method)."""

    def __init__(self, process=None):
        super().__init__()
        if process is not None:
            self.process = process

    def process(self, element):
        yield element


class WithProperty(Plain):
    """A class whose own property could give a bound method: the class cannot tell, the instance is asked."""

    @property
    def counting(self):
        return Counting().process


def test_beams_overhead_is_removed_only_inside_the_block_and_keeps_each_dofns_state_and_each_option():
    """Specs are remembered per class and set of methods, so DoFns with different state never share an answer, also
    when an instance carries another DoFn's method; an options object hands out one view per class, which writes
    through as Beam's views do; the objects alive before the block are frozen in it; Beam's own functions are back
    after the block, and the frozen objects with the collector, also when it raised."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TypeOptions
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    shipped, cache_mb = userstate.get_dofn_specs, worker_handlers.STATE_CACHE_SIZE_MB
    options = PipelineOptions(["--runner=FnApiRunner", "--no_pipeline_type_check"])
    gc.unfreeze()  # a process with nothing frozen (Airflow's DAG processor, run by other tests here, freezes)
    with pytest.raises(RuntimeError, match="inside"), beam_overhead_removed():
        assert userstate.get_dofn_specs is not shipped and worker_handlers.STATE_CACHE_SIZE_MB == 0
        assert gc.get_freeze_count() > 10_000 and gc.isenabled()  # what was alive is frozen; the collector runs
        view = options.view_as(TypeOptions)
        assert options.view_as(TypeOptions) is view and view.pipeline_type_check is False
        options.view_as(StandardOptions).streaming = True  # a view writes through to the options, as in Beam
        assert options.view_as(StandardOptions).streaming and options.view_as(StandardOptions).runner == "FnApiRunner"
        for _ in range(2):  # the second time from memory
            assert [s.name for s in userstate.get_dofn_specs(Counting())[0]] == ["count"]
            assert userstate.get_dofn_specs(Plain()) == (set(), set())
            assert userstate.is_stateful_dofn(Counting()) and not userstate.is_stateful_dofn(Plain())
            assert userstate.get_dofn_specs(Borrowing()) == (set(), set())
            assert [s.name for s in userstate.get_dofn_specs(Borrowing(Counting().process))[0]] == ["count"]
            assert userstate.get_dofn_specs(Borrowing(lambda element: [element])) == (set(), set())
            assert userstate.get_dofn_specs(WithProperty()) == shipped(WithProperty())
            assert [s.name for s in userstate.get_dofn_specs(WithProperty())[0]] == ["count"]
        raise RuntimeError("inside")
    assert userstate.get_dofn_specs is shipped and worker_handlers.STATE_CACHE_SIZE_MB == cache_mb == 100
    assert gc.get_freeze_count() == 0  # handed back to the collector
    assert options.view_as(TypeOptions) is not options.view_as(TypeOptions)
    assert options.view_as(StandardOptions).streaming  # what was set through a kept view stays set


def test_a_process_that_had_frozen_objects_keeps_them_frozen():
    """A worker forked by Airflow's LocalExecutor inherits frozen objects (kept from the collector so that memory
    stays shared): the block leaves them frozen, where a process without any gets all of its objects back."""
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with beam_overhead_removed():
            assert gc.get_freeze_count() >= before
        assert gc.get_freeze_count() >= before > 0
    finally:
        gc.unfreeze()


def _byte_sizes_and_counts() -> tuple[dict[str, int], dict[str, int]]:
    """Run a small pipeline of object arrays on the in-process runner, checking its output: each PCollection's count
    of sampled byte sizes, and its element count."""
    from apache_beam.metrics import monitoring_infos
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    pipeline = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    columns = [np.array([b"a", b"bb", b""] * n, dtype=object) for n in (1, 5, 20)]
    lengths = pipeline | beam.Create(columns) | "Twice" >> beam.Map(lambda c: np.concatenate([c, c])) | beam.Map(len)
    assert_that(lengths, equal_to([6, 30, 120]))
    result = pipeline.run()
    result.wait_until_finish()
    sizes, counts = {}, {}
    for info in result.monitoring_infos():
        value = monitoring_infos.extract_metric_result_map_value(info)
        if info.urn == monitoring_infos.SAMPLED_BYTE_SIZE_URN:
            sizes[info.labels["PCOLLECTION"]] = value.count
        elif info.urn == monitoring_infos.ELEMENT_COUNT_URN:
            counts[info.labels["PCOLLECTION"]] = value
    return sizes, counts


def test_inside_the_block_elements_are_counted_but_not_weighed_and_the_sampler_stops_at_once():
    """Beam weighs sampled elements by encoding them (a batch of objects is pickled whole); inside the block it
    does not, the elements and their counts are the same, a run-time type check still samples and fails, and the
    state sampler sleeps at most 5 ms; Beam's own are back after the block."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.worker import bundle_processor, statesampler
    from apache_beam.typehints.decorators import TypeCheckError
    from apache_beam.utils.counters import CounterFactory

    shipped_sizes, shipped_counts = _byte_sizes_and_counts()
    shipped_processor, shipped_sampler = bundle_processor.BundleProcessor.__init__, statesampler.StateSampler
    assert sum(shipped_sizes.values()) > 0  # Beam weighs them
    with beam_overhead_removed():
        sizes, counts = _byte_sizes_and_counts()
        assert counts == shipped_counts and sum(counts.values()) > 0
        assert sizes.keys() == shipped_sizes.keys() and sum(sizes.values()) == 0
        assert statesampler.StateSampler("step", CounterFactory()).sampling_period_ms == 5
        checked = PipelineOptions(["--runner=FnApiRunner", "--performance_runtime_type_check"])
        with pytest.raises(TypeCheckError, match="return type"), beam.Pipeline(options=checked) as pipeline:
            _ = pipeline | beam.Create([1, 2]) | beam.Map(str).with_output_types(int)
    assert bundle_processor.BundleProcessor.__init__ is shipped_processor
    assert statesampler.StateSampler is shipped_sampler
    assert statesampler.StateSampler("step", CounterFactory()).sampling_period_ms == 200


def test_pickled_functions_are_beams_own_bytes_each_compressed_once(monkeypatch):
    """Inside the block a function pickles to the same bytes as with Beam as shipped, each distinct payload is
    compressed once, a payload pickled there is read back without bz2, and one pickled outside is still read."""
    calls = {"compress": 0, "decompress": 0}
    compress, decompress = bz2.compress, bz2.decompress

    def counted(name, fn):
        def call(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return call

    def double(x, factor=2):
        return x * factor

    outside = pickler.dumps(double)
    monkeypatch.setattr(bz2, "compress", counted("compress", compress))
    monkeypatch.setattr(bz2, "decompress", counted("decompress", decompress))
    with beam_overhead_removed():
        assert pickler.dumps(double) == pickler.dumps(double) == outside
        assert calls == {"compress": 1, "decompress": 0}
        assert pickler.loads(pickler.dumps(double))(3) == 6 and calls["decompress"] == 0
        assert pickler.loads(pickler.dumps(Plain())).process is not None and calls["compress"] == 2
        monkeypatch.setattr(bz2, "compress", compress)
        foreign = compress(b"not pickled in the block")
        assert pickler.desired_pickle_lib.bz2.decompress(foreign) == b"not pickled in the block"
        assert calls["decompress"] == 1
    assert pickler.dumps(double) == outside


def test_argument_lists_are_beams_own_and_each_caller_gets_its_own_copy():
    """Argument names and defaults, remembered per function (a bound method's: the function behind it), are the
    ones Beam reads for methods of different instances, functions, lambdas and builtins; changing a returned list
    changes nothing for the next caller."""
    shipped = core.get_function_args_defaults
    callables = [Counting().process, Counting().process, Plain().process, lambda a, b=3: a, len, np.add, Plain]
    expected = [shipped(fn) for fn in callables]
    with beam_overhead_removed():
        assert core.get_function_args_defaults is not shipped
        for _ in range(2):
            assert [core.get_function_args_defaults(fn) for fn in callables] == expected
        names, defaults = core.get_function_args_defaults(callables[3])
        names.append("changed"), defaults.clear()
        assert core.get_function_args_defaults(callables[3]) == (["a", "b"], [3])
    assert core.get_function_args_defaults is shipped


def test_submodules_found_are_cloudpickles_own_in_order_also_after_an_import(tmp_path, monkeypatch):
    """The submodules a function's pickle names are cloudpickle's own list, in its order, for packages the
    function refers to; a submodule imported after a first look is found too."""
    package = tmp_path / "ovh_pkg"
    (package / "inner").mkdir(parents=True)
    for path in ("__init__.py", "first.py", "second.py", "inner/__init__.py", "inner/deep.py"):
        (package / path).write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    shipped = cloudpickle._find_imported_submodules
    outer = importlib.import_module("ovh_pkg")
    importlib.import_module("ovh_pkg.second")
    importlib.import_module("ovh_pkg.inner")

    uses = "ovh_pkg.second.VALUE, ovh_pkg.first.VALUE, ovh_pkg.inner.deep, np.linalg.norm, sys.path"
    code, globals_ = compile(uses, "<uses>", "eval"), {"ovh_pkg": outer, "np": np, "sys": sys}
    try:
        with beam_overhead_removed():
            found = cloudpickle._find_imported_submodules
            assert found is not shipped
            before = found(code, list(globals_.values()))
            assert before == shipped(code, list(globals_.values()))
            assert [m.__name__ for m in before if m.__name__.startswith("ovh")] == ["ovh_pkg.second", "ovh_pkg.inner"]
            importlib.import_module("ovh_pkg.inner.deep")
            importlib.import_module("ovh_pkg.first")
            after = found(code, list(globals_.values()))
            assert after == shipped(code, list(globals_.values()))
            names = [m.__name__ for m in after if m.__name__.startswith("ovh")]
            assert names == ["ovh_pkg.second", "ovh_pkg.inner", "ovh_pkg.inner.deep", "ovh_pkg.first"]
        assert cloudpickle._find_imported_submodules is shipped
    finally:
        for name in [n for n in sys.modules if n.startswith("ovh_pkg")]:
            del sys.modules[name]
