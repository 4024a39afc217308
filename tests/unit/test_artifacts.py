"""Atomic directory and JSON writes, content fingerprints and metadata records."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import entries

from pipelines.core.artifacts import (
    METADATA,
    atomic_dir,
    fingerprint_files,
    fingerprint_frame,
    read_json,
    read_metadata,
    stage_dir,
    write_json_atomic,
    write_metadata,
)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot be printed")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def old_dir(tmp_path):
    final = tmp_path / "runs" / "2026-01-03" / "ingest"
    (final / "sub").mkdir(parents=True)
    (final / "a.txt").write_text("old a")
    (final / "sub" / "b.txt").write_text("old b")
    return final


def test_stage_dir_layout(tmp_path):
    assert stage_dir(tmp_path, date(2026, 1, 3), "train") == tmp_path / "runs" / "2026-01-03" / "train"


def test_atomic_dir_creates_a_new_directory(tmp_path):
    final = tmp_path / "deep" / "er" / "stage"

    with atomic_dir(final) as out:
        assert out != final and not final.exists()  # nothing visible until the block succeeds
        (out / "x.txt").write_text("x")

    assert tree(final) == {"x.txt": b"x"}
    assert entries(final.parent) == ["stage"]


def test_atomic_dir_replaces_an_existing_directory_whole(old_dir):
    with atomic_dir(old_dir) as out:
        (out / "c.txt").write_text("new c")

    assert tree(old_dir) == {"c.txt": b"new c"}
    assert entries(old_dir.parent) == ["ingest"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "interrupt"])
def test_atomic_dir_failure_keeps_the_old_directory(old_dir, error):
    before = tree(old_dir)

    with pytest.raises(type(error)), atomic_dir(old_dir) as out:
        (out / "a.txt").write_text("half-written")
        raise error

    assert tree(old_dir) == before
    assert entries(old_dir.parent) == ["ingest"]


def test_write_json_atomic_writes_sorted_json(tmp_path):
    path = tmp_path / "new" / "state.json"

    write_json_atomic(path, {"b": 1, "a": [1, 2], "when": date(2026, 1, 3)})

    assert read_json(path) == {"a": [1, 2], "b": 1, "when": "2026-01-03"}
    assert list(json.loads(path.read_text())) == ["a", "b", "when"]


def test_write_json_atomic_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"live": "blue"})
    before = path.read_bytes()

    with pytest.raises(RuntimeError, match="cannot be printed"):
        write_json_atomic(path, {"live": "green", "zzz": Unprintable()})

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_json_atomic_failure_on_a_new_file_leaves_nothing(tmp_path):
    path = tmp_path / "state.json"

    with pytest.raises(RuntimeError):
        write_json_atomic(path, [Unprintable()])

    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "model"
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"\x08\x01graph")
    (root / "variables" / "data").write_bytes(b"weights" * 100)
    return root


def test_fingerprint_files_ignores_metadata(files):
    before = fingerprint_files(files)

    (files / METADATA).write_text('{"created_at": "now"}')

    assert fingerprint_files(files) == before
    assert len(before) == 64


def test_fingerprint_files_changes_when_a_byte_changes(files):
    before = fingerprint_files(files)
    data = bytearray((files / "variables" / "data").read_bytes())
    data[350] ^= 1

    (files / "variables" / "data").write_bytes(bytes(data))

    assert fingerprint_files(files) != before


def test_fingerprint_files_depends_on_paths_not_location(files, tmp_path):
    before = fingerprint_files(files)
    copy = tmp_path / "elsewhere" / "copy"
    copy.mkdir(parents=True)
    for rel, content in tree(files).items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(content)

    assert fingerprint_files(copy) == before
    (copy / "extra.txt").write_bytes(b"")
    assert fingerprint_files(copy) != before  # even an empty file counts
    (copy / "extra.txt").unlink()
    (copy / "saved_model.pb").rename(copy / "renamed.pb")
    assert fingerprint_files(copy) != before


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [39.0, 50.0, np.nan],
            "sex": pd.Series(["Male", "Female", None], dtype="str"),
            "_source_row": np.array([2, 3, 4], dtype="int64"),
        }
    )


def test_fingerprint_frame_is_stable():
    assert fingerprint_frame(frame()) == fingerprint_frame(frame())
    assert fingerprint_frame(frame()) == fingerprint_frame(frame().set_axis([7, 8, 9]))  # index ignored


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(age=[39.0, 50.0, 51.0]),
        lambda df: df.assign(sex=pd.Series(["Male", "Male", None], dtype="str")),
        lambda df: df.assign(_source_row=df["_source_row"].astype("float64")),
        lambda df: df.rename(columns={"age": "years"}),
        lambda df: df.iloc[::-1].reset_index(drop=True),
        lambda df: df.head(2),
    ],
    ids=["value", "category", "dtype", "column-name", "row-order", "row-count"],
)
def test_fingerprint_frame_is_content_sensitive(change):
    assert fingerprint_frame(change(frame())) != fingerprint_frame(frame())


def test_write_metadata_records_inputs_and_their_fingerprints(tmp_path):
    upstream = tmp_path / "ingest"
    write_metadata(upstream, stage="ingest", ds=date(2026, 1, 3), run_id="r", config_hash="c", fingerprint="f1")
    no_metadata = tmp_path / "raw"
    no_metadata.mkdir()

    record = write_metadata(
        tmp_path / "drift",
        stage="drift",
        ds=date(2026, 1, 3),
        run_id="r",
        config_hash="c",
        fingerprint="f2",
        inputs={"snapshot": str(upstream), "raw": str(no_metadata)},
        verdict="stable",
    )

    assert read_metadata(tmp_path / "drift") == record
    assert record["inputs"] == {
        "snapshot": {"uri": str(upstream), "fingerprint": "f1"},
        "raw": {"uri": str(no_metadata), "fingerprint": None},
    }
    assert (record["stage"], record["ds"], record["fingerprint"], record["verdict"]) == (
        "drift",
        "2026-01-03",
        "f2",
        "stable",
    )
    assert record["code_version"].startswith("0.1.0+")


def test_fingerprint_files_cannot_be_forged_by_moving_bytes_between_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "a").write_bytes(b"x")
    (a / "b").write_bytes(b"y")
    (b / "a").write_bytes(b"xb\0y")  # the first folder's path-and-content stream, squeezed into one file

    assert fingerprint_files(a) != fingerprint_files(b)
