"""The registered use cases: the YAML files of one configs folder, chosen by name, never by path.

Whoever may trigger a run picks a use case by its name (the file stem: ``configs/adult.yaml`` is
``adult``); a run can therefore never be pointed at an arbitrary file, or at an ``artifact_root`` of
the caller's choosing. The folder is ``<repo>/configs`` unless ``CT_CONFIGS_DIR`` names another one;
``*.expectations.yaml`` files sit beside the configs and are not use cases. Listing the names reads
file names only, so an orchestrator can offer them as choices cheaply (the Airflow DAG lists the
same folder at parse time without importing this package; a DAG test checks that both agree).

Also here: what a run for date D would read (``check_window``, so a run that would process nothing
fails first, with the dates that do exist) and how a data-arrival event names its use case and D.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipelines.core.config import DEFAULT_CONFIG, PROJECT_ROOT, Config, load_config
from pipelines.core.contracts import PipelineError

CONFIGS_DIR_ENV = "CT_CONFIGS_DIR"
DEFAULT_USE_CASE = DEFAULT_CONFIG.stem
EXPECTATIONS_SUFFIX = ".expectations.yaml"
NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a use case names tasks and asset URIs: other file names are not use cases


def configs_dir() -> Path:
    """The folder of registered use cases: ``$CT_CONFIGS_DIR``, else ``<repo>/configs``."""
    return Path(os.environ.get(CONFIGS_DIR_ENV) or PROJECT_ROOT / "configs").expanduser()


def registered(folder: Path | None = None) -> list[str]:
    """The use-case names in ``folder`` (default ``configs_dir()``), sorted: YAML file stems, without expectations."""
    folder = configs_dir() if folder is None else folder
    if not folder.is_dir():
        return []
    return sorted(
        p.name.removesuffix(".yaml")
        for p in folder.glob("*.yaml")
        if p.is_file() and not p.name.endswith(EXPECTATIONS_SUFFIX) and NAME.fullmatch(p.name.removesuffix(".yaml"))
    )


def config_path(name: str | None, folder: Path | None = None) -> Path:
    """The YAML of the registered use case ``name`` (None or empty: ``adult``).

    Raises:
        PipelineError: ``name`` is a path, or no YAML of that name is in the folder; the message lists
            the registered names and says how to add one.
    """
    folder = configs_dir() if folder is None else folder
    name = name or DEFAULT_USE_CASE
    names = registered(folder)
    if name not in names:
        what = "a path, not a use-case name" if ("/" in name or "\\" in name or name.endswith(".yaml")) else "unknown"
        raise PipelineError(
            f"use case {name!r} is {what}: the registered use cases are {names} (the YAML files in {folder}). "
            f"Pick one of them, or add <name>.yaml to that folder ({CONFIGS_DIR_ENV} selects another folder)."
        )
    return folder / f"{name}.yaml"


def load_use_case(name: str | None, folder: Path | None = None) -> Config:
    """The validated config of the registered use case ``name``."""
    return load_config(config_path(name, folder))


def partition_days(config: Config) -> list[date]:
    """The days that have a partition under the config's data root, oldest first."""
    data = config.data
    prefix, _, suffix = data.partition_pattern.partition("{date}")
    days = set()
    for path in data.root.glob(data.partition_pattern.replace("{date}", "*")):
        text = path.relative_to(data.root).as_posix()
        try:
            days.add(date.fromisoformat(text[len(prefix) : len(text) - len(suffix)]))
        except ValueError:
            continue
    return sorted(days)


def check_window(config: Config, ds: date, days: int) -> None:
    """Refuse a run whose window (the ``days`` days ending at ``ds``) holds no partition: it would process nothing.

    Raises:
        PipelineError: naming the window, where partitions are looked for and the days that do have one.
    """
    window = [ds - timedelta(days=k) for k in reversed(range(days))]
    if any(config.data.partition(day).exists() for day in window):
        return
    present = partition_days(config)
    where = config.data.root / config.data.partition_pattern
    have = (
        f"partitions exist from {present[0]} to {present[-1]} ({len(present)} days): pick a date D in that range"
        if present
        else "there is no partition at all: load the data first (python -m pipelines data ...)"
    )
    raise PipelineError(
        f"nothing to process for {config.name} at D={ds}: no partition in the window {window[0]}..{window[-1]} "
        f"({where}); {have}"
    )


def request_from_events(events: Iterable[Mapping[str, Any]]) -> tuple[str, date]:
    """The use case and date D of a run started by data-arrival events: those of the latest event.

    Each event is ``{"extra": {"use_case": ..., "ds": "YYYY-MM-DD", ...}, "timestamp": ...}``, as the
    ingestion DAG emits them.

    Raises:
        PipelineError: no event, or the latest one does not name a use case and an ISO date.
    """
    ordered = sorted(events, key=lambda e: str(e.get("timestamp") or ""))
    if not ordered:
        raise PipelineError("the run was started by data events, but none reached it")
    extra = ordered[-1].get("extra") or {}
    try:
        return str(extra["use_case"]), date.fromisoformat(str(extra["ds"]))
    except (KeyError, ValueError):
        raise PipelineError(
            f"the data event {extra!r} does not say which partition arrived: its extra needs "
            '{"use_case": "<name>", "ds": "YYYY-MM-DD"} (as the ingestion DAG emits it)'
        ) from None


def new_partition(config: Config, announced: date | None) -> date | None:
    """The newest day with a partition, if it is newer than ``announced`` (the last one announced); else None."""
    days = partition_days(config)
    if not days or (announced is not None and days[-1] <= announced):
        return None
    return days[-1]
