"""What the Models view shows, read back from the artifacts and the deployment state (read-only).

The Airflow plugin (``plugins/ml_models``) renders this; nothing here imports Airflow or writes a file.

* ``load_use_case``: a registered use case (``pipelines.core.usecases``: the YAML files of the configs
  folder, by name), the default one when none is named.
* ``overview``: every run date D with its gate decision and key metrics, which version each slot holds
  and which is live, the deployment history with who and why, and where each run's pages are.
* ``artifact_path`` / ``locate``: map a path relative to a use case's artifact root to the file, and a
  stage URI (an XCom) back to its use case and relative path, refusing anything outside the root.

Every reader tolerates what a run may leave: a missing or damaged file becomes a note on its row, never
an exception, so one bad run does not hide the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pipelines.core import usecases
from pipelines.core.artifacts import METADATA, read_json
from pipelines.core.config import Config, ConfigError
from pipelines.core.contracts import PipelineError, StageName
from pipelines.core.deployment_state import DeployError, DeploymentState, read_state

KEY_METRICS = ("accuracy", "f1", "roc_auc")
CARD = "card/run_card.html"  # pipelines.reporting.card writes runs/<D>/card/run_card.html
# Each stage folder's page, relative to runs/<D>/ (the files the stages write; see pipelines.core.outputs).
PAGES = {
    "card": CARD,
    "data_docs": f"{StageName.VALIDATE}/data_docs/index.html",
    "drift": f"{StageName.DRIFT}/drift.html",
    "decision": f"{StageName.GATE}/decision.json",
    "evaluation": f"{StageName.EVALUATE}/evaluation.json",
}


class OutsideArtifactRoot(PipelineError):
    """A requested path lies outside the use case's artifact root (``..``, an absolute path, a symlink out)."""


def load_use_case(name: str | None) -> tuple[str, Config]:
    """The named registered use case and its config (``adult`` when ``name`` is empty, else the first one).

    Raises:
        PipelineError: no such use case; the message lists the registered ones and where they come from.
        ConfigError: its YAML is invalid.
    """
    names = usecases.registered()
    if not name:
        name = usecases.DEFAULT_USE_CASE if usecases.DEFAULT_USE_CASE in names or not names else names[0]
    return name, usecases.load_use_case(name)


def artifact_path(config: Config, relative: str) -> Path:
    """The file or folder at ``relative`` under the config's artifact root, resolved (symlinks too).

    Raises:
        OutsideArtifactRoot: the path is absolute or escapes the root.
        FileNotFoundError: nothing is there.
    """
    root = config.artifact_root.resolve()
    if Path(relative).is_absolute() or "\\" in relative or "\x00" in relative:
        raise OutsideArtifactRoot(f"{relative!r} is not a path relative to the artifact root")
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise OutsideArtifactRoot(f"{relative!r} points outside the artifact root {root}")
    if not target.exists():
        raise FileNotFoundError(f"{relative} does not exist under {root}")
    return target


def locate(uri: str, configs: dict[str, Config]) -> tuple[str, str] | None:
    """The use case whose artifact root holds ``uri`` and the path relative to that root, or None."""
    target = Path(uri).resolve()
    for name, config in configs.items():
        root = config.artifact_root.resolve()
        if root in target.parents:
            return name, target.relative_to(root).as_posix()
    return None


def run_relative(uri: str, configs: dict[str, Config]) -> tuple[str, str] | None:
    """For a stage URI (or a file in a stage folder) ``runs/<D>/<stage>[/...]``: its use case and ``runs/<D>``."""
    found = locate(uri, configs)
    if not found:
        return None
    name, relative = found
    parts = relative.split("/")
    if len(parts) < 2 or parts[0] != "runs":
        return None
    return name, f"runs/{parts[1]}"


def mlflow_run_id(config: Config, relative_stage: str) -> str | None:
    """The MLflow run id recorded by the train stage folder at ``relative_stage``, if there is one."""
    try:
        return read_json(artifact_path(config, relative_stage) / METADATA).get("mlflow_run_id")
    except (OSError, PipelineError, AttributeError):
        return None


@dataclass
class RunRow:
    """One run date D: what the gate decided, the candidate's key metrics, and what became of it."""

    ds: str
    action: str | None = None
    forced: bool = False
    forced_by: str | None = None
    reasons: list[str] = field(default_factory=list)
    candidate: dict[str, float | None] = field(default_factory=dict)
    live: dict[str, float | None] = field(default_factory=dict)
    compared_with: str | None = None
    versions: list[str] = field(default_factory=list)  # the deployment versions made from this run
    pages: dict[str, str] = field(default_factory=dict)  # name -> path relative to the artifact root
    problems: list[str] = field(default_factory=list)


@dataclass
class Overview:
    """Everything the Models page shows for one use case."""

    use_case: str
    artifact_root: str
    tracking_uri: str
    state: DeploymentState | None
    runs: list[RunRow]
    problems: list[str] = field(default_factory=list)

    @property
    def live_version(self) -> str | None:
        """The version in the live slot, or None."""
        record = self.state.live_record if self.state else None
        return record.version if record else None

    def slot_of(self, version: str) -> str | None:
        """The slot holding ``version`` (``blue``/``green``), or None."""
        if not self.state:
            return None
        return next((str(s) for s, r in self.state.slots.items() if r and r.version == version), None)

    def can_roll_back(self) -> tuple[bool, str]:
        """Whether a rollback has somewhere to go, and to what (or why not)."""
        if not self.state or not self.state.live_record:
            return False, "nothing is live yet"
        stack = self.state.live_stack
        if len(stack) < 2:
            return False, f"no version was live before {self.state.live_record.version}"
        return True, stack[-2]


def _metrics(block: dict[str, Any] | None) -> dict[str, float | None]:
    return {m: (block or {}).get(m) for m in KEY_METRICS}


def _run_row(config: Config, run: Path, versions: dict[str, list[str]]) -> RunRow:
    row = RunRow(ds=run.name, versions=versions.get(run.name, []))
    relative = f"runs/{run.name}"
    for name, page in PAGES.items():
        if (run / page).exists():
            row.pages[name] = f"{relative}/{page}"
    if (run / StageName.TRAIN / METADATA).exists():
        row.pages["train"] = f"{relative}/{StageName.TRAIN}"
    try:
        if "decision" in row.pages:
            record = read_json(run / PAGES["decision"])
            row.action, row.reasons = record.get("action"), list(record.get("reasons", []))
            row.forced, row.forced_by = bool(record.get("forced")), record.get("forced_by")
            row.compared_with = record.get("live_version")
        if "evaluation" in row.pages:
            overall = read_json(run / PAGES["evaluation"]).get("overall", {})
            row.candidate, row.live = _metrics(overall.get("candidate")), _metrics(overall.get("live"))
    except (OSError, PipelineError, AttributeError, TypeError) as exc:
        row.problems.append(f"cannot read this run's reports: {exc}")
    if "decision" not in row.pages:
        row.problems.append("no gate decision (the run stopped before the gate; see its run card)")
    return row


def overview(config: Config, use_case: str) -> Overview:
    """The Models page's content for ``config``: runs newest first, the deployment state and its history."""
    problems: list[str] = []
    try:
        state: DeploymentState | None = read_state(config)
    except DeployError as exc:
        state, problems = None, [str(exc)]
    versions: dict[str, list[str]] = {}
    if state:
        records = [r for r in state.slots.values() if r] + [None]
        for event in state.history:
            if event.ds and event.version not in versions.get(event.ds, []):
                versions.setdefault(event.ds, []).append(event.version)
        for record in records:
            if record and record.version not in versions.get(record.ds, []):
                versions.setdefault(record.ds, []).append(record.version)
    runs_dir = config.artifact_root / "runs"
    runs = []
    if runs_dir.is_dir():
        for run in sorted((p for p in runs_dir.iterdir() if p.is_dir() and _is_date(p.name)), reverse=True):
            runs.append(_run_row(config, run, versions))
    return Overview(use_case, str(config.artifact_root), config.tracking_uri, state, runs, problems)


def _is_date(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


def load_all() -> dict[str, Config]:
    """Every registered use case's config that loads (a broken YAML is left out, not fatal)."""
    configs = {}
    for name in usecases.registered():
        try:
            configs[name] = usecases.load_use_case(name)
        except (ConfigError, PipelineError):
            continue
    return configs
