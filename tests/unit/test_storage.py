"""The object-store artifact root against a real S3-compatible server on 127.0.0.1 (moto in server mode):
publish and pull, a writer killed mid-upload, leases across processes, and the config's URL root."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import yaml
from conftest import ADULT_CONFIG, REPO

from pipelines.core import artifacts, storage
from pipelines.core.config import ConfigError, load_config

FOLDER = "runs/2026-01-01/train"


def keys(bucket: str, prefix: str = "") -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def manifest(bucket: str, rel: str) -> dict:
    body = boto3.client("s3").get_object(Bucket=bucket, Key=f"ct/{rel}/{storage.MANIFEST}")["Body"].read()
    return json.loads(body)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the writers' lock files and the mirror's own index."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock") and p.name != storage.INDEX
    }


def write_folder(mirror: storage.Mirror, rel: str, files: dict[str, bytes]) -> None:
    with artifacts.atomic_dir(mirror.cache / rel) as tmp:
        for name, data in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        (tmp / "assets").mkdir()  # an empty folder (SavedModels have one) survives the round trip


def test_folders_and_files_round_trip_through_the_store_and_a_rewrite_replaces_the_version(s3_bucket, tmp_path):
    url = f"s3://{s3_bucket}/ct"
    a = storage.attach(url, tmp_path / "a", {}, 600)
    write_folder(a, FOLDER, {"model.bin": b"\x00" * 1000, "variables/v.index": b"weights-1"})
    artifacts.write_json_atomic(a.cache / "deployment" / "state.json", {"live": "blue"})
    artifacts.write_json_atomic(a.cache / "stack" / "stack.json", {"pid": 1})  # this machine's processes only
    first = manifest(s3_bucket, FOLDER)
    assert first["files"] == {"model.bin": 1000, "variables/v.index": 9}
    assert keys(s3_bucket, "ct/stack") == []
    assert not [k for k in keys(s3_bucket) if "/." in k.replace("/.v/", "/")]  # no temporary or lock objects

    b = storage.attach(url, tmp_path / "b", {}, 600)  # another machine
    assert tree(b.cache) == {k: v for k, v in tree(a.cache).items() if not k.startswith("stack/")}
    assert (b.cache / FOLDER / "assets").is_dir()
    assert b.pull() == []  # nothing changed since

    write_folder(a, FOLDER, {"model.bin": b"\x01" * 10})
    assert b.pull() == [FOLDER]
    assert tree(b.cache / FOLDER) == {"model.bin": b"\x01" * 10}
    second = manifest(s3_bucket, FOLDER)
    assert second["token"] != first["token"]
    assert {k.split("/.v/")[1].split("/")[0] for k in keys(s3_bucket, f"ct/{FOLDER}/.v/")} == {second["token"]}


PUBLISH_SLOWLY = """
import sys
from pathlib import Path
from pipelines.core import artifacts, storage
mirror = storage.attach(sys.argv[1], Path(sys.argv[2]), {}, 600)
with artifacts.atomic_dir(mirror.cache / sys.argv[3]) as tmp:
    for i in range(600):
        (tmp / f"shard-{i:03d}.bin").write_bytes(bytes([i % 256]) * 40_000)
"""


def test_a_writer_killed_mid_upload_leaves_the_previous_version_whole(s3_bucket, tmp_path):
    url = f"s3://{s3_bucket}/ct"
    a = storage.attach(url, tmp_path / "a", {}, 600)
    write_folder(a, FOLDER, {"model.bin": b"good model"})
    good = manifest(s3_bucket, FOLDER)

    writer = subprocess.Popen([sys.executable, "-c", PUBLISH_SLOWLY, url, str(a.cache), FOLDER], cwd=REPO)
    deadline = time.monotonic() + 120
    while not [k for k in keys(s3_bucket, f"ct/{FOLDER}/.v/") if good["token"] not in k]:
        assert writer.poll() is None and time.monotonic() < deadline, "the writer ended before it uploaded"
        time.sleep(0.02)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert manifest(s3_bucket, FOLDER) == good, "the manifest changed although the upload was cut"
    assert len(keys(s3_bucket, f"ct/{FOLDER}/.v/")) > 1  # the cut upload's objects are there, unreferenced

    b = storage.attach(url, tmp_path / "b", {}, 600)
    assert tree(b.cache / FOLDER) == {"model.bin": b"good model"}

    write_folder(a, FOLDER, {"model.bin": b"next model"})  # the next publish removes the debris
    assert len({k.split("/.v/")[1].split("/")[0] for k in keys(s3_bucket, f"ct/{FOLDER}/.v/")}) == 1
    assert b.pull() == [FOLDER] and tree(b.cache / FOLDER) == {"model.bin": b"next model"}


COUNT_UNDER_LEASE = """
import sys
from pathlib import Path
from pipelines.core import artifacts, storage
mirror = storage.attach(sys.argv[1], Path(sys.argv[2]), {}, 600)
counter = mirror.cache / "monitoring" / "counter.json"
for _ in range(int(sys.argv[3])):
    with storage.lease(counter.with_suffix(".lock"), refresh=counter):
        n = artifacts.read_json(counter)["n"] if counter.exists() else 0
        artifacts.write_json_atomic(counter, {"n": n + 1})
"""


def test_a_lease_serializes_read_modify_write_across_machines(s3_bucket, tmp_path):
    url, rounds = f"s3://{s3_bucket}/ct", 12
    workers = [
        subprocess.Popen([sys.executable, "-c", COUNT_UNDER_LEASE, url, str(tmp_path / name), str(rounds)], cwd=REPO)
        for name in ("machine-1", "machine-2")
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    reader = storage.attach(url, tmp_path / "reader", {}, 600)
    assert artifacts.read_json(reader.cache / "monitoring" / "counter.json") == {"n": 2 * rounds}  # no lost update
    assert not [k for k in keys(s3_bucket) if k.endswith(storage.LEASE_SUFFIX)]


def test_a_lease_left_by_a_dead_holder_is_respected_until_stale_then_taken_over(s3_bucket, tmp_path, caplog):
    mirror = storage.attach(f"s3://{s3_bucket}/ct", tmp_path / "a", {}, lock_seconds=600)
    lock, key = mirror.cache / "deployment" / ".state.lock", "ct/deployment/.state.lock.lease"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=key, Body=b"dead holder")
    assert not mirror._take(mirror.key("deployment/.state.lock.lease"), b"me")  # held, and not stale
    assert keys(s3_bucket, "ct/deployment/") == [key]

    mirror.lock_seconds = 1
    time.sleep(2.1)  # older than lock_seconds, even with the store's one-second timestamps
    with storage.lease(lock, refresh=lock.parent):
        assert "its holder died" in caplog.text
    assert keys(s3_bucket, "ct/deployment/") == []


def url_config(tmp_path: Path, **extra) -> Path:
    raw = yaml.safe_load(ADULT_CONFIG.read_text())
    raw["data"]["root"] = str(tmp_path / "partitions")
    raw["expectations"] = str(ADULT_CONFIG.parent / raw["expectations"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**raw, **extra}))
    return path


def test_a_url_artifact_root_is_mirrored_into_the_configured_cache(s3_bucket, tmp_path):
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="ct/deployment/state.json", Body=b'{"live": null}')
    config = load_config(
        url_config(tmp_path, artifact_root=f"s3://{s3_bucket}/ct/", storage={"cache": str(tmp_path / "mirror")})
    )
    assert config.artifact_store == f"s3://{s3_bucket}/ct"
    assert config.artifact_root == tmp_path / "mirror"
    assert (config.artifact_root / "deployment" / "state.json").read_text() == '{"live": null}'  # pulled on load
    assert config.tracking_uri == f"sqlite:///{tmp_path / 'mirror' / 'mlflow.db'}"


def test_config_refuses_a_hand_set_store_and_says_what_is_wrong_with_a_url(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="artifact_store is set from a URL artifact_root"):
        load_config(url_config(tmp_path, artifact_root="s3://b/ct", artifact_store="s3://other/ct"))
    with pytest.raises(storage.StorageError, match=r"no filesystem for foo://.*install its fsspec package"):
        load_config(url_config(tmp_path, artifact_root="foo://b/ct", storage={"cache": str(tmp_path / "m")}))
    for name, value in {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    options = {"config_kwargs": {"retries": {"max_attempts": 1}}}
    with pytest.raises(storage.StorageError, match=r"cannot read the artifact store s3://b/ct: Could not connect"):
        load_config(
            url_config(tmp_path, artifact_root="s3://b/ct", storage={"cache": str(tmp_path), "options": options})
        )


def test_storage_pull_from_the_cli_names_what_changed(s3_bucket, tmp_path):
    url = f"s3://{s3_bucket}/ct"
    writer = storage.attach(url, tmp_path / "writer", {}, 600)
    write_folder(writer, FOLDER, {"model.bin": b"m"})
    path = url_config(tmp_path, artifact_root=url, storage={"cache": str(tmp_path / "server")})
    cli = [sys.executable, "-m", "pipelines", "storage", "pull", "--config", str(path)]
    first = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, env=os.environ, check=True).stdout
    assert f"{url} -> {tmp_path / 'server'}: 1 changed folder(s) or file(s) pulled" in first
    assert FOLDER in first
    again = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, env=os.environ, check=True).stdout
    assert ": 0 changed" in again


def test_model_servers_follow_the_deployment_state_published_by_another_machine(s3_bucket, tmp_path):
    from pipelines.serving.server import follow_store

    url = f"s3://{s3_bucket}/ct"
    worker = storage.attach(url, tmp_path / "worker", {}, 600)
    config = load_config(url_config(tmp_path, artifact_root=url, storage={"cache": str(tmp_path / "server")}))
    state = config.artifact_root / "deployment" / "state.json"
    assert not state.exists()
    with storage.lease(worker.cache / "deployment" / ".state.lock", refresh=worker.cache / "deployment"):
        artifacts.write_json_atomic(worker.cache / "deployment" / "state.json", {"live": "green"})
    follow_store(config)  # what the model server's watch and the router do every serving.reload_seconds
    assert artifacts.read_json(state) == {"live": "green"}
