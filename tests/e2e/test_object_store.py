"""The pipeline with its artifact root on a real S3-compatible server on 127.0.0.1 (moto in server mode).

Workers on different machines share nothing but the store: each keeps a local mirror at the same path. The
test plays two machines by emptying the mirror between them, so everything the second one reads must come
from the store.
"""

from __future__ import annotations

import shutil
from datetime import date

import boto3
from conftest import SMALL, deep_merge, write_config
from dag_runs import parse, register
from dag_runs import run as run_dag

from pipelines.core import artifacts, storage
from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import Action, StageName
from pipelines.core.deployment_state import read_state
from pipelines.core.outputs import GateOutput
from pipelines.data.demo import write_partitions
from pipelines.reporting.card import card_path, write_card
from pipelines.runner import BY_NAME, DELIVERY_STAGE, run_stage

D1, D2 = date(2026, 1, 3), date(2026, 1, 4)
FIRST_MACHINE = (StageName.INGEST, StageName.DRIFT, StageName.VALIDATE, StageName.TRANSFORM)
SECOND_MACHINE = (StageName.TRAIN, StageName.EVALUATE, StageName.GATE)


def store_keys(bucket: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="ct/")
    return sorted(item["Key"][3:] for page in pages for item in page.get("Contents", []))


def test_a_run_split_across_two_machines_and_a_dag_run_share_artifacts_only_through_the_store(
    s3_bucket, tmp_path, adult_frame, airflow_db, monkeypatch
):
    mirror = tmp_path / "mirror"
    shared = {
        "artifact_root": f"s3://{s3_bucket}/ct",
        "storage": {"cache": str(mirror)},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},  # stands in for a shared MLflow server
    }
    path = write_config(tmp_path, deep_merge(SMALL, shared))
    write_partitions(adult_frame, load_config(path), date(2026, 1, 1), rows_per_day=800, days=4)

    # D1, machine one: the data stages.
    ctx = RunContext.create(path, D1)
    assert ctx.config.artifact_root == mirror and ctx.config.artifact_store == f"s3://{s3_bucket}/ct"
    for name in FIRST_MACHINE:
        run_stage(ctx, BY_NAME[name])
    shutil.rmtree(mirror)

    # D1, machine two: training onwards, from what the store holds (the same paths, an empty mirror).
    ctx = RunContext.create(path, D1)
    assert sorted(p.name for p in artifacts.run_dir(mirror, D1).iterdir() if not p.name.endswith(".lock")) == sorted(
        FIRST_MACHINE
    )
    uris = {name: run_stage(ctx, BY_NAME[name]) for name in SECOND_MACHINE}  # each checks its inputs are current
    assert GateOutput(uris[StageName.GATE]).record().decision.action is Action.PROMOTE
    run_stage(ctx, DELIVERY_STAGE)
    write_card(ctx.config, D1)
    first_live = read_state(ctx.config).live_record.version
    shutil.rmtree(mirror)

    # D2 through the training DAG (dag.test) on a third, empty machine: gated against D1's live model.
    register(tmp_path / "configs", "case", path)
    dagrun, states = run_dag(parse(monkeypatch, tmp_path / "configs"), D2, config="case")
    assert dagrun.state == "success", states
    decision = GateOutput(artifacts.stage_dir(mirror, D2, "gate")).record()
    assert decision.live_version == first_live

    # What any machine sees afterwards: every stage of both days published once, whole, with its card.
    shutil.rmtree(mirror)
    config = load_config(path)
    keys = store_keys(s3_bucket)
    for ds in (D1, D2):
        for stage in (*FIRST_MACHINE, *SECOND_MACHINE):
            folder = f"runs/{ds}/{stage}"
            assert f"{folder}/{storage.MANIFEST}" in keys
            assert len({k.split("/")[4] for k in keys if k.startswith(f"{folder}/.v/")}) == 1, folder
            assert (
                artifacts.read_metadata(artifacts.stage_dir(config.artifact_root, ds, stage))["status"] == "succeeded"
            )
        assert card_path(config, ds).exists()
    assert read_state(config).live_record is not None
    assert not [k for k in keys if k.endswith(storage.LEASE_SUFFIX) or "/.tmp" in k or k.endswith(".lock")]
