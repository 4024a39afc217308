"""Deployed model versions on disk: ``deployment/models/<version>/``, immutable once complete.

A version folder holds the SavedModel, the raw training rows (the drift reference while the version
is live) and its slot record, so any kept version can be put back into a slot by a rollback. Folders
that are not in a slot and not among the last ``deployment.keep_versions`` live versions (e.g. copies
left by a promotion killed before its switch) are deleted by the next promotion.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from pipelines.core.artifacts import atomic_dir, read_json, remove_debris, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.deployment_state import DeploymentState, SlotRecord, deployment_dir

log = logging.getLogger(__name__)

RECORD = "record.json"  # written last: a folder without it is incomplete


def models_dir(config: Config) -> Path:
    """The folder of all kept model versions."""
    return deployment_dir(config) / "models"


def version_dir(config: Config, version: str) -> Path:
    """The folder of one model version."""
    return models_dir(config) / version


def install(config: Config, record: SlotRecord, model_dir: Path, reference: Path) -> SlotRecord:
    """Copy a model and its reference rows into the version's folder unless it is already complete.

    Returns:
        ``record`` with ``model_uri`` and ``reference_uri`` pointing into the version folder.
    """
    folder = version_dir(config, record.version)
    installed = SlotRecord(
        **{**asdict(record), "model_uri": str(folder / "model"), "reference_uri": str(folder / "reference.parquet")}
    )
    if (folder / RECORD).exists():
        return installed
    with atomic_dir(folder) as tmp:
        shutil.copytree(model_dir, tmp / "model")
        shutil.copy2(reference, tmp / "reference.parquet")
        write_json_atomic(tmp / RECORD, asdict(installed))
    return installed


def installed_record(config: Config, version: str) -> SlotRecord | None:
    """The slot record of a complete version folder, or None if it is gone or incomplete."""
    path = version_dir(config, version) / RECORD
    if not path.exists():
        return None
    return SlotRecord(**read_json(path))


def kept(config: Config) -> list[str]:
    """The complete version folders on disk, oldest name first."""
    folder = models_dir(config)
    return sorted(p.name for p in folder.iterdir() if (p / RECORD).exists()) if folder.exists() else []


def kept_versions(state: DeploymentState, keep: int) -> set[str]:
    """The versions in a slot plus the last ``keep`` distinct versions that went live."""
    kept = {r.version for r in state.slots.values() if r}
    recent: list[str] = []
    for event in reversed(state.history):
        if event.version not in recent:
            recent.append(event.version)
        if len(recent) == keep:
            break
    return kept | set(recent)


def collect_garbage(config: Config, state: DeploymentState, spare: str | None = None) -> list[str]:
    """Delete version folders outside ``kept_versions`` (and not ``spare``); returns what was deleted.

    Call under the state lock, after the switch, so a folder is never deleted while a slot points at it.
    """
    folder = models_dir(config)
    if not folder.exists():
        return []
    keep = kept_versions(state, config.deployment.keep_versions) | {spare}
    removed = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    for debris in folder.glob(".*.tmp"):  # a copy killed mid-way; left alone while its writer is at work
        remove_debris(debris.with_name(debris.name[1 : -len(".tmp")]))
    if removed:
        log.info("removed %d model version(s) no longer kept: %s", len(removed), removed)
    return removed
