"""When a candidate the gate passed may still not go live: backfills, and data older than the live model's.

A backfill replays past dates; left alone it would promote each old candidate in turn and push the
newest model out of both slots. So a backfill run gates and records, but switches the live model only
if the operator asked (``promote_in_backfill``) or forced the run. Outside backfills, a candidate
trained on a window ending before the live model's does not replace it unless forced.
"""

from __future__ import annotations

from datetime import date

from pipelines.core.context import RunContext
from pipelines.core.deployment_state import SlotRecord


def switch_refusal(ctx: RunContext, live: SlotRecord | None, forced: bool = False) -> str | None:
    """Why D's candidate must not replace ``live`` although the gate passed it, or None if it may.

    Args:
        ctx: the run (its date D, whether it is a backfill and what the operator allowed).
        live: the model live now (None before the first promotion).
        forced: the gate's decision was an operator override.
    """
    if forced or ctx.force:
        return None
    if ctx.backfill and not ctx.promote_in_backfill:
        return (
            f"backfill run for {ctx.ds}: the decision is recorded but the live model is not switched "
            f"(set the promote_in_backfill param to allow it)"
        )
    if live is not None and ctx.ds < date.fromisoformat(live.ds):
        return (
            f"the candidate was trained on data up to {ctx.ds}, older than the live model's ({live.ds}): "
            f"not switched (force the run to override)"
        )
    return None
