"""Artifact layout, atomic writes and metadata records.

Every stage writes one new directory keyed by the logical date D: ``<root>/runs/<D>/<stage>/``.
It is built in a temporary sibling and renamed into place, so a crash mid-stage leaves the previous
good directory intact and a re-run of D replaces D's artifacts whole. Each directory carries a
``metadata.json``: content fingerprint, the inputs it came from, code version, config hash, run id.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pipelines

METADATA = "metadata.json"


def run_dir(artifact_root: Path, ds: date) -> Path:
    return artifact_root / "runs" / ds.isoformat()


def stage_dir(artifact_root: Path, ds: date, stage: str) -> Path:
    return run_dir(artifact_root, ds) / stage


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``final`` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file in the same folder, fsync it, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def fingerprint_files(root: Path, exclude: tuple[str, ...] = (METADATA,)) -> str:
    """SHA-256 over every file's relative path, size and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        digest.update(f"{rel}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint_json(obj: Any) -> str:
    """SHA-256 of a JSON-serialisable object in canonical form."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_frame(df: Any) -> str:
    """SHA-256 of a DataFrame's content (column names, dtypes and values; not the file bytes)."""
    import pandas as pd

    digest = hashlib.sha256(json.dumps([[c, str(t)] for c, t in df.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


@functools.cache
def code_version() -> str:
    """The package version plus the git commit of the checkout, when there is one."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    return f"{pipelines.__version__}+{sha}"


def write_metadata(
    directory: Path,
    *,
    stage: str,
    ds: date,
    run_id: str,
    config_hash: str,
    fingerprint: str,
    inputs: dict[str, str] | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Write ``metadata.json`` into a stage directory and return the record."""
    record = {
        "stage": stage,
        "ds": ds.isoformat(),
        "run_id": run_id,
        "config_hash": config_hash,
        "code_version": code_version(),
        "fingerprint": fingerprint,
        "inputs": {name: {"uri": uri, "fingerprint": input_fingerprint(uri)} for name, uri in (inputs or {}).items()},
        "created_at": datetime.now(UTC).isoformat(),
        **details,
    }
    write_json_atomic(Path(directory) / METADATA, record)
    return record


def read_metadata(uri: str | Path) -> dict[str, Any]:
    return read_json(Path(uri) / METADATA)


def input_fingerprint(uri: str) -> str | None:
    path = Path(uri) / METADATA
    return read_json(path)["fingerprint"] if path.exists() else None
