"""What one run of the pipeline is about: the config, the logical date D and the run's identity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines import artifacts
from pipelines.config import Config, load_config


class PipelineError(RuntimeError):
    """A stage refused to go on; the message says why and where to look."""


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
    """

    config: Config
    ds: date
    run_id: str
    attempt: int = 1
    window_days: int | None = None
    force: bool = False

    @classmethod
    def create(
        cls,
        config: str | Path | Config,
        ds: date | datetime | str,
        run_id: str | None = None,
        **options: Any,
    ) -> RunContext:
        config = config if isinstance(config, Config) else load_config(config)
        if isinstance(ds, datetime):
            ds = ds.date()
        elif not isinstance(ds, date):
            ds = date.fromisoformat(str(ds)[:10])
        options = {k: v for k, v in options.items() if v is not None}
        return cls(config=config, ds=ds, run_id=run_id or f"local__{ds.isoformat()}", **options)

    @property
    def window(self) -> int:
        return self.window_days or self.config.data.window_days

    def stage_dir(self, stage: str) -> Path:
        return artifacts.stage_dir(self.config.artifact_root, self.ds, stage)

    def write_metadata(self, directory: Path, stage: str, fingerprint: str, **details: Any) -> dict[str, Any]:
        return artifacts.write_metadata(
            directory,
            stage=stage,
            ds=self.ds,
            run_id=self.run_id,
            config_hash=self.config.fingerprint,
            fingerprint=fingerprint,
            attempt=self.attempt,
            **details,
        )
