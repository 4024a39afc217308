"""Artifacts on object storage: the artifact root may be a URL (``s3://bucket/prefix``, ``gs://``, ``az://``, any
fsspec filesystem), so workers on different machines share one set of artifacts.

The store is the system of record; every process works in a local mirror of it (``storage.cache``, the same
path on every worker, because stage outputs are passed between tasks by their local path). Nothing else in
the pipeline changes: stages read and write local folders, and this module keeps the mirror and the store
in step through three calls:

* **publish** (called by ``artifacts.atomic_dir`` and ``write_json_atomic`` once a folder or file has been
  replaced whole): a folder is uploaded under a fresh version prefix ``<folder>/.v/<token>/`` and then its
  manifest ``<folder>/_manifest.json`` (the token and every file's size) is written *last*. Object stores
  have no rename, so the manifest is the publish: a writer killed mid-upload leaves the old manifest, and
  readers keep seeing the previous good version whole. The superseded version is deleted after the switch.
  A single file is one PUT, which object stores make visible whole or not at all.
* **pull** (``attach``, when a config with a URL root is loaded, so at the start of every task): each
  manifest or file whose ETag differs from the one the mirror last saw is downloaded; a folder is built in a
  temporary sibling and swapped in, like any local write.
* **lease** (around the deployment state and the retraining ledger): a lock object created with an
  exclusive PUT (``If-None-Match: *``) that expires after ``lock_seconds``, so read-modify-write of shared
  state is serialized across machines; the guarded folder is pulled again once the lease is held.

A local artifact root (a plain path) attaches nothing and all three calls do nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.core import artifacts
from pipelines.core.contracts import PipelineError

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
VERSIONS = ".v"
INDEX = ".mirror.json"  # in the cache: the ETag of each unit the mirror holds
LEASE_SUFFIX = ".lease"
LOCAL_ONLY = ("stack",)  # top-level folders that describe this machine's processes, never shared
URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_pulling: ContextVar[bool] = ContextVar("_pulling", default=False)


class StorageError(PipelineError):
    """The artifact store cannot be reached, or holds something this version cannot read."""


def is_url(root: str | Path) -> bool:
    """Whether an artifact root names an object store (``s3://...``) rather than a local folder."""
    return bool(URL.match(str(root)))


def default_cache(url: str) -> Path:
    """Where the mirror of ``url`` lives unless the config says: a path that is the same on every machine."""
    return Path("/var/tmp/continuous-training") / hashlib.sha256(url.encode()).hexdigest()[:12]


@dataclass
class Mirror:
    """A local folder (``cache``) kept in step with the artifact store at ``url``."""

    url: str
    cache: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    lock_seconds: float = 600.0
    last_pulled: list[str] = field(default_factory=list)  # what the latest pull downloaded

    def __post_init__(self) -> None:
        import fsspec

        self.url = self.url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        try:
            self.fs = fsspec.filesystem(protocol, **self.options)
        except (ImportError, ValueError) as exc:
            raise StorageError(
                f"artifact_root {self.url}: no filesystem for {protocol}:// ({exc}); install its fsspec package "
                "(s3fs for s3://, gcsfs for gs://, adlfs for az://)"
            ) from None
        self.root = self.fs._strip_protocol(self.url).rstrip("/")
        self.cache.mkdir(parents=True, exist_ok=True)

    # --- names --------------------------------------------------------------------------------------------
    def key(self, rel: str) -> str:
        """The store key of a path relative to the root."""
        return f"{self.root}/{rel}" if rel else self.root

    def relative(self, local: Path) -> str | None:
        """``local``'s path relative to the cache, or None when it is not shared (outside, temporary, local)."""
        try:
            rel = Path(local).absolute().relative_to(self.cache)
        except ValueError:
            return None
        parts = rel.parts
        if not parts or parts[0] in LOCAL_ONLY or any(p.startswith(".") for p in parts):
            return None
        return rel.as_posix()

    # --- publish ------------------------------------------------------------------------------------------
    def publish(self, local: Path) -> None:
        """Upload a folder (version prefix, then manifest) or a file (one PUT) that was just replaced whole."""
        rel = self.relative(local)
        if rel is None or _pulling.get():
            return
        try:
            etag = self._publish_folder(local, rel) if local.is_dir() else self._publish_file(local, rel)
        except Exception as exc:  # the filesystem's own errors (botocore's are not OSErrors)
            raise StorageError(f"could not publish {rel} to {self.url}: {exc}") from exc
        self._remember({rel: etag})

    def _publish_file(self, local: Path, rel: str) -> str:
        self.fs.put_file(str(local), self.key(rel))
        return _etag(self.fs.info(self.key(rel)))

    def _publish_folder(self, local: Path, rel: str) -> str:
        token = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        files = sorted(p for p in local.rglob("*") if p.is_file())
        names = [p.relative_to(local).as_posix() for p in files]
        base = self.key(f"{rel}/{VERSIONS}/{token}")
        if files:
            self.fs.put([str(p) for p in files], [f"{base}/{n}" for n in names])
        manifest = {
            "token": token,
            "files": {n: p.stat().st_size for n, p in zip(names, files, strict=True)},
            "dirs": sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_dir()),
            "published_at": datetime.now(UTC).isoformat(),
            "by": socket.gethostname(),
        }
        manifest_key = self.key(f"{rel}/{MANIFEST}")
        self.fs.pipe_file(manifest_key, json.dumps(manifest, indent=1).encode())  # the publish
        self._drop_versions(rel, keep=token)
        log.info("published %s (%d files) as version %s", rel, len(files), token)
        return _etag(self.fs.info(manifest_key))

    def _drop_versions(self, rel: str, keep: str) -> None:
        """Delete every version of ``rel`` but ``keep``: the one it replaced, and any a killed writer left."""
        folder = self.key(f"{rel}/{VERSIONS}")
        for entry in self.fs.ls(folder, detail=False, refresh=True) if self.fs.exists(folder) else []:
            if entry.rstrip("/").rsplit("/", 1)[-1] != keep:
                self.fs.rm(entry, recursive=True)

    # --- pull ---------------------------------------------------------------------------------------------
    def pull(self, under: str = "") -> list[str]:
        """Download every unit under ``under`` (a relative prefix) that changed in the store since the last pull.

        Returns:
            The relative paths downloaded.
        """
        index = self._index()
        listing = self.fs.find(self.key(under), detail=True, withdirs=False, refresh=True)
        changed: dict[str, str] = {}
        for key, info in sorted(listing.items()):
            rel = key[len(self.root) :].lstrip("/")
            parts = rel.split("/")
            if VERSIONS in parts or rel.endswith(LEASE_SUFFIX) or parts[0] in LOCAL_ONLY:
                continue
            unit = rel[: -len(MANIFEST) - 1] if parts[-1] == MANIFEST else rel
            if index.get(unit) == _etag(info):
                continue
            try:
                if parts[-1] == MANIFEST:
                    self._download_folder(unit)
                else:
                    self._download_file(unit)
            except FileNotFoundError:  # replaced between the listing and the read: the next pull gets it
                log.info("%s changed while it was read; it is pulled next time", unit)
                continue
            changed[unit] = _etag(info)
        self._remember(changed)
        if changed:
            log.info("pulled %d changed artifact(s) from %s", len(changed), self.url)
        self.last_pulled = sorted(changed)
        return self.last_pulled

    def _download_folder(self, rel: str, attempts: int = 3) -> None:
        """Download the version ``rel``'s manifest names; read the manifest again if a newer publish removed
        that version meanwhile."""
        for attempt in range(attempts):
            try:
                return self._download_version(rel)
            except FileNotFoundError:
                if attempt == attempts - 1:
                    raise

    def _download_version(self, rel: str) -> None:
        manifest = json.loads(self.fs.cat_file(self.key(f"{rel}/{MANIFEST}")))
        base = self.key(f"{rel}/{VERSIONS}/{manifest['token']}")
        token = _pulling.set(True)
        try:
            with artifacts.atomic_dir(self.cache / rel) as tmp:
                for name in manifest["dirs"]:
                    (tmp / name).mkdir(parents=True, exist_ok=True)
                names = list(manifest["files"])
                if names:
                    self.fs.get([f"{base}/{n}" for n in names], [str(tmp / n) for n in names])
                wrong = [n for n in names if (tmp / n).stat().st_size != manifest["files"][n]]
                if wrong:
                    raise StorageError(f"{rel}: downloaded files differ from the manifest in size: {wrong}")
        finally:
            _pulling.reset(token)

    def _download_file(self, rel: str) -> None:
        local = self.cache / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.pull")
        self.fs.get_file(self.key(rel), str(tmp))
        os.replace(tmp, local)

    # --- the mirror's own record --------------------------------------------------------------------------
    def _index(self) -> dict[str, str]:
        path = self.cache / INDEX
        try:
            return artifacts.read_json(path) if path.exists() else {}
        except artifacts.CorruptArtifact:
            return {}  # everything is downloaded again

    def _remember(self, etags: Mapping[str, str]) -> None:
        if etags:
            artifacts.write_json_atomic(self.cache / INDEX, {**self._index(), **etags})

    # --- leases -------------------------------------------------------------------------------------------
    @contextmanager
    def lease(self, local: Path, refresh: str) -> Iterator[None]:
        """Hold the store-wide lock named by ``local`` (a lock file in the cache), then pull ``refresh``."""
        key = self.key(Path(local).absolute().relative_to(self.cache).as_posix() + LEASE_SUFFIX)
        body = json.dumps({"owner": f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"}).encode()
        waited = 0.0
        while not self._take(key, body):
            if waited == 0.0:
                log.info("waiting for the lease %s", key)
            time.sleep(0.2)
            waited += 0.2
        try:
            self.pull(refresh)
            yield
        finally:
            if self.fs.exists(key) and self.fs.cat_file(key) == body:
                self.fs.rm_file(key)

    def _take(self, key: str, body: bytes) -> bool:
        """Create the lease object if nobody holds it; remove a lease older than ``lock_seconds`` first."""
        try:
            self.fs.pipe_file(key, body, mode="create")
            return True
        except OSError as exc:  # a failed If-None-Match (s3fs reports it as EINVAL or FileExistsError)
            if not self.fs.exists(key) and not isinstance(exc, FileExistsError):
                raise StorageError(f"could not take the lease {key}: {exc}") from exc
        try:
            modified = self.fs.info(key, refresh=True).get("LastModified")
        except FileNotFoundError:
            return False  # released in the meantime: try again
        if isinstance(modified, datetime) and datetime.now(UTC) - modified > timedelta(seconds=self.lock_seconds):
            log.warning("lease %s is older than %g s (its holder died): taking it over", key, self.lock_seconds)
            self.fs.rm_file(key)
        return False


def _etag(info: Mapping[str, Any]) -> str:
    """What changes when an object is replaced: its ETag, or its modification time and size."""
    tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return f"{tag}:{info.get('size')}"


_MIRRORS: dict[Path, Mirror] = {}


def attach(url: str, cache: Path | None, options: Mapping[str, Any], lock_seconds: float) -> Mirror:
    """Mirror ``url`` into ``cache`` (once per process) and pull what changed; later writes are published."""
    cache = Path(cache or default_cache(url)).absolute()
    mirror = _MIRRORS.get(cache)
    if mirror is None or mirror.url != url.rstrip("/"):
        mirror = _MIRRORS[cache] = Mirror(url, cache, dict(options), lock_seconds)
        if _publish not in artifacts.REPLACED:
            artifacts.REPLACED.append(_publish)
    try:
        mirror.pull()
    except StorageError:
        raise
    except Exception as exc:  # the filesystem's own errors (botocore's are not OSErrors)
        raise StorageError(f"cannot read the artifact store {url}: {exc}") from exc
    return mirror


def mirror_of(local: Path) -> Mirror | None:
    """The mirror whose cache holds ``local``, if any."""
    local = Path(local).absolute()
    return next((m for cache, m in _MIRRORS.items() if local.is_relative_to(cache)), None)


def _publish(local: Path) -> None:
    mirror = mirror_of(local)
    if mirror is not None:
        mirror.publish(Path(local))


def refresh(local: Path) -> list[str]:
    """Pull what changed in the store under ``local`` (a folder or file of a mirror); nothing for a local root."""
    mirror = mirror_of(local)
    return [] if mirror is None else mirror.pull(Path(local).absolute().relative_to(mirror.cache).as_posix())


@contextmanager
def lease(lock: Path, refresh: Path) -> Iterator[None]:
    """Hold the cross-machine lease for ``lock`` and pull ``refresh`` first (nothing for a local root)."""
    mirror = mirror_of(lock)
    if mirror is None:
        yield
        return
    rel = Path(refresh).absolute().relative_to(mirror.cache).as_posix()
    with mirror.lease(lock, rel):
        yield
