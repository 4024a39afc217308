"""What one run of the pipeline is about: the config, the logical date D and the run's identity."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines.core import artifacts
from pipelines.core.config import Config, load_config
from pipelines.core.contracts import PipelineError, StageName, Status


@dataclass(frozen=True)
class RunContext:
    """Passed to every stage. Nothing in it depends on the wall clock, so re-running D is repeatable.

    Attributes:
        config: the validated use-case config.
        ds: the logical date D; the run reads the partitions of the window ending at D.
        run_id: the orchestrator's run id (Airflow's, or ``local__<D>`` from the CLI).
        attempt: 1 for the first training of D, 2.. for automatic retrains.
        window_days: overrides ``config.data.window_days`` when set.
        force: promote even when the gate holds the candidate (recorded as an operator override).
        force_reason: why the operator forces (recorded in the decision).
        operator: who started the run (Airflow's triggering user, or the CLI's OS user), recorded with a
            forced decision.
        backfill: the run replays a past date (an Airflow backfill): it gates and records, but does not
            switch the live model unless ``promote_in_backfill`` (or ``force``) says so.
        promote_in_backfill: the operator allows this backfill run to switch the live model.
        trigger: why the run was started (a monitoring alarm, new data, the schedule, an operator),
            stamped into every stage's metadata and shown on the run card.
    """

    config: Config
    ds: date
    run_id: str
    attempt: int = 1
    window_days: int | None = None
    force: bool = False
    force_reason: str | None = None
    operator: str | None = None
    backfill: bool = False
    promote_in_backfill: bool = False
    trigger: str | None = None

    def __post_init__(self) -> None:
        if self.window_days is not None and (isinstance(self.window_days, bool) or self.window_days < 1):
            raise PipelineError(f"window_days must be a whole number of days, 1 or more; got {self.window_days!r}")
        if self.attempt < 1:
            raise PipelineError(f"attempt must be 1 or more; got {self.attempt!r}")

    @classmethod
    def create(
        cls,
        config: str | Path | Config | None,
        ds: date | datetime | str,
        run_id: str | None = None,
        **options: Any,
    ) -> RunContext:
        """A context from a config (path, object, or None for the default) and a date (or datetime, or ISO string)."""
        config = config if isinstance(config, Config) else load_config(config)
        if isinstance(ds, datetime):
            ds = ds.date()
        elif not isinstance(ds, date):
            ds = date.fromisoformat(str(ds)[:10])
        options = {k: v for k, v in options.items() if v is not None}
        return cls(config=config, ds=ds, run_id=run_id or f"local__{ds.isoformat()}", **options)

    @property
    def window(self) -> int:
        """Days in the training window: the override, or the config's."""
        return self.config.data.window_days if self.window_days is None else self.window_days

    def stage_dir(self, stage: StageName) -> Path:
        """Where ``stage`` keeps its output for D: ``<artifact_root>/runs/<D>/<stage>``."""
        return artifacts.stage_dir(self.config.artifact_root, self.ds, stage)

    def write_metadata(self, directory: Path, stage: str, fingerprint: str, **details: Any) -> dict[str, Any]:
        """Write ``directory``'s metadata record, stamped with this run's date, id, attempt and config."""
        return artifacts.write_metadata(
            directory,
            stage=stage,
            ds=self.ds,
            run_id=self.run_id,
            config_hash=self.config.fingerprint,
            fingerprint=fingerprint,
            attempt=self.attempt,
            **({"trigger": self.trigger} if self.trigger else {}),
            **details,
        )

    @contextmanager
    def open_stage(self, stage: StageName) -> Iterator[StageWriter]:
        """The one write sequence of every stage: a temporary folder, the files, metadata last, rename.

        Example::

            with ctx.open_stage(StageName.DRIFT) as out:
                write_json_atomic(DriftOutput(out.path).report_path, report)
                out.finish(fingerprint_json(report), inputs={"snapshot": snapshot.uri})
            return out.uri
        """
        with artifacts.atomic_dir(self.stage_dir(stage)) as tmp:
            writer = StageWriter(self, stage, tmp)
            yield writer
            if writer.record is None:
                raise RuntimeError(f"stage {stage} wrote no metadata: call finish() inside the block")


@dataclass
class StageWriter:
    """A stage's output while it is being written: files go into ``path``; ``finish`` records metadata."""

    ctx: RunContext
    stage: StageName
    path: Path
    record: dict[str, Any] | None = field(default=None, init=False)

    @property
    def uri(self) -> str:
        """Where the output will be once the block has succeeded."""
        return str(self.ctx.stage_dir(self.stage))

    def finish(
        self,
        fingerprint: str,
        inputs: Mapping[str, Any] | None = None,
        status: Status = Status.SUCCEEDED,
        **details: Any,
    ) -> dict[str, Any]:
        """Write the metadata record; ``inputs`` maps names to upstream outputs (handles or URIs)."""
        uris = {name: str(getattr(value, "uri", value)) for name, value in (inputs or {}).items()}
        self.record = self.ctx.write_metadata(self.path, self.stage, fingerprint, inputs=uris, status=status, **details)
        return self.record


def check_run_conf(conf: Mapping[str, Any], declared: Iterable[str]) -> None:
    """Refuse a run request (an Airflow ``dag_run.conf``) that names options the pipeline does not have.

    Raises:
        PipelineError: naming each unknown key and the known ones (a typo would otherwise run with defaults).
    """
    known = sorted(declared)
    unknown = sorted(set(conf) - set(known))
    if unknown:
        raise PipelineError(f"unknown run option(s) {unknown}: the options are {known}")
