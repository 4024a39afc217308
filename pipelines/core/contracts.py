"""The protocol between stages: stage names, statuses, verdicts and the gate's typed record.

Every value that one stage writes and another reads is spelled here once, as an enum or a frozen
record, so no module re-types another's strings. The JSON on disk stays plain (enums are ``str``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class StageName(StrEnum):
    """Each stage's artifact folder under ``runs/<D>/`` and its CLI verb."""

    INGEST = "ingest"
    DRIFT = "drift"
    VALIDATE = "validate"
    TRANSFORM = "transform"
    TRAIN = "train"
    EVALUATE = "evaluate"
    GATE = "gate"
    PROMOTE = "promote"


class StageKind(StrEnum):
    """How the runners treat a stage: run it, route on it, or run it only on PROMOTE."""

    STEP = "step"
    DECISION = "decision"
    DELIVERY = "delivery"


class Status(StrEnum):
    """Recorded in every stage's metadata. A failed stage keeps its evidence but blocks what follows."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DriftVerdict(StrEnum):
    """The drift check's verdict, per feature (none / drift) and overall (by the share of drifted features).

    "warn" is a share of drifted features worth a look; "drift" means retrain on the recent window.
    """

    NONE = "none"
    WARN = "warn"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"
    NO_REFERENCE = "no_reference"


class ConceptVerdict(StrEnum):
    """Whether the live model still performs on new labelled rows as it did offline (see ``evaluation.concept``)."""

    STABLE = "stable"
    DRIFT = "concept_drift"
    INSUFFICIENT_DATA = "insufficient_data"
    NO_LIVE_MODEL = "no_live_model"
    UNKNOWN = "unknown"  # the live model's offline performance is not on record: nothing to compare with


class Action(StrEnum):
    """What the gate decides for a candidate."""

    PROMOTE = "PROMOTE"
    HOLD = "HOLD"
    RETRAIN = "RETRAIN"
    INSUFFICIENT_EVIDENCE = "INSUFFICIENT_EVIDENCE"  # too few rows to decide: held, and said so


class CheckKind(StrEnum):
    """Evidence (enough rows), quality (the candidate alone), comparison (against live), fairness (between groups)."""

    EVIDENCE = "evidence"
    QUALITY = "quality"
    COMPARISON = "comparison"
    FAIRNESS = "fairness"


class NoteKind(StrEnum):
    """Things the gate saw but did not gate on."""

    SMALL_SLICE = "small_slice"
    UNDEFINED_METRIC = "undefined_metric"
    NO_LIVE_MODEL = "no_live_model"
    DRIFT = "drift"
    CONCEPT_DRIFT = "concept_drift"
    WARNING = "warning"  # a failed check of a family the policy only warns on (``gate.warn_only``)


@dataclass(frozen=True)
class Check:
    """One gate check with what was measured against what was required."""

    name: str
    passed: bool
    detail: str
    kind: CheckKind
    family: str = ""  # floors, baseline, non_inferiority, slices, fairness (what ``gate.warn_only`` names)


@dataclass(frozen=True)
class Note:
    """A remark attached to a decision that did not change it."""

    kind: NoteKind
    detail: str


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: the action, its reasons, every check and note, and whether it was forced."""

    action: Action
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    forced: bool = False
    forced_by: str | None = None  # who forced a promotion, and why
    force_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """Read back what ``to_dict`` wrote."""
        return cls(
            action=Action(data["action"]),
            reasons=list(data["reasons"]),
            checks=[
                Check(c["name"], c["passed"], c["detail"], CheckKind(c["kind"]), c.get("family", ""))
                for c in data.get("checks", [])
            ],
            notes=[Note(NoteKind(n["kind"]), n["detail"]) for n in data.get("notes", [])],
            forced=bool(data.get("forced", False)),
            forced_by=data.get("forced_by"),
            force_reason=data.get("force_reason"),
        )


@dataclass(frozen=True)
class GateRecord:
    """What ``decision.json`` holds: the decision, the attempt, and the live version it was compared with.

    Promotion refuses a record whose ``live_version`` is no longer live (runs overlapped).
    """

    decision: Decision
    attempt: int
    live_version: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.decision.to_dict(), "attempt": self.attempt, "live_version": self.live_version}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateRecord:
        """Read back what ``to_dict`` wrote."""
        return cls(Decision.from_dict(data), int(data["attempt"]), data.get("live_version"))


class PipelineError(RuntimeError):
    """A stage refused to go on; the message says why and what to do."""
