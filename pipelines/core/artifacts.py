"""Artifact layout, atomic writes, locks and metadata records.

Every stage writes one new directory keyed by the logical date D: ``<root>/runs/<D>/<stage>/``.
It is built in a temporary sibling and renamed into place, so a crash mid-stage leaves the previous
good directory intact and a re-run of D replaces D's artifacts whole. Each directory carries a
``metadata.json``: status, content fingerprint, the inputs it came from (with their fingerprints),
code version, config hash, run id. Fingerprints hash content only, never a path or a time.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pipelines
from pipelines.core.contracts import PipelineError, Status

METADATA = "metadata.json"
# Called with each folder or file once it has been replaced whole (an object-store mirror publishes it there:
# see pipelines.core.storage).
REPLACED: list[Callable[[Path], None]] = []


class CorruptArtifact(PipelineError):
    """A file the pipeline wrote cannot be read back (truncated or edited by hand)."""


def run_dir(artifact_root: Path, ds: date) -> Path:
    """Where every output of D lives: ``<artifact_root>/runs/<D>``."""
    return artifact_root / "runs" / ds.isoformat()


def stage_dir(artifact_root: Path, ds: date, stage: str) -> Path:
    """Where ``stage`` keeps its output for D: ``<artifact_root>/runs/<D>/<stage>``."""
    return run_dir(artifact_root, ds) / stage


@contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive advisory lock on ``path`` (created if missing), released when the block ends or the
    process dies; it serializes writers across processes on one machine.

    Yields:
        True once the lock is held; with ``wait=False``, False at once if another process holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _siblings(final: Path) -> tuple[Path, Path, Path]:
    """The lock, temporary and previous-version paths that ``atomic_dir`` keeps beside ``final``."""
    lock, tmp, old = (final.with_name(f".{final.name}.{suffix}") for suffix in ("lock", "tmp", "old"))
    return lock, tmp, old


def _tidy(final: Path) -> None:
    """With ``final``'s lock held: undo a swap that was cut between its two renames, drop debris."""
    _, tmp, old = _siblings(final)
    if old.exists() and not final.exists():
        os.rename(old, final)
    for debris in (tmp, old):
        shutil.rmtree(debris, ignore_errors=True)


def remove_debris(final: Path) -> bool:
    """Remove what killed writers of ``final`` left behind, unless a writer is at work; True if tidied."""
    with file_lock(_siblings(final)[0], wait=False) as held:
        if held:
            _tidy(final)
        return held


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` only if the block succeeds.

    Writers of the same ``final`` take turns (a lock beside it), so the temporary directory has a
    fixed name: whatever a killed writer left there is removed first, and nothing a stage writes
    embeds a random path. A kill between the two renames of the swap is repaired on the next entry.
    """
    lock, tmp, old = _siblings(final)
    with file_lock(lock):
        _tidy(final)
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _replaced(final)


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
    _replaced(path)


def _replaced(path: Path) -> None:
    for hook in REPLACED:
        hook(path)


def read_json(path: Path) -> Any:
    """Read a JSON file the pipeline wrote.

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptArtifact: it exists but is not valid JSON; the message names the file.
    """
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptArtifact(f"{path} is not valid JSON ({exc}): it was truncated or edited by hand") from None


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
    digest = FrameDigest()
    digest.update(df)
    return digest.hexdigest()


class FrameDigest:
    """``fingerprint_frame`` of rows that arrive in parts: pandas' row hashes depend on each row alone, so the
    digest of the parts in order is the digest of their concatenation (the dtypes are the first part's)."""

    def __init__(self) -> None:
        self._digest: Any = None

    def update(self, df: Any) -> None:
        """Add the next part's rows."""
        import pandas as pd

        if self._digest is None:
            self._digest = hashlib.sha256(json.dumps([[c, str(t)] for c, t in df.dtypes.items()]).encode())
        self._digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())

    def hexdigest(self) -> str:
        """The fingerprint of every row added so far."""
        return self._digest.hexdigest()


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
    status: Status = Status.SUCCEEDED,
    **details: Any,
) -> dict[str, Any]:
    """Write ``metadata.json`` into a stage directory and return the record.

    Each input is recorded with its fingerprint at this moment, so a reader can tell later whether
    the input has been replaced since (see ``pipelines.core.outputs``).
    """
    record = {
        "stage": stage,
        "status": str(status),
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
    """The ``metadata.json`` record of the stage directory ``uri``."""
    return read_json(Path(uri) / METADATA)


def input_fingerprint(uri: str | Path) -> str | None:
    """The fingerprint recorded in the metadata at ``uri``, or None if it has none."""
    path = Path(uri) / METADATA
    return read_json(path)["fingerprint"] if path.exists() else None
