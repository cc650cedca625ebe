"""The allocation service's command handlers: a planner's decisions on proposals, and a full
re-plan. The plan itself changes through `Planning.replan` (planning.py), `ctx.deps` here."""

from __future__ import annotations

from dataclasses import asdict, replace

from services.allocation import planning_state
from services.allocation.commands import Approve, Reject, RunPlan
from services.allocation.domain import Allocation
from services.allocation.planning import Planning, planning_lock, repository, save
from shared.commands import CommandContext, CommandResult
from shared.domain import NotFound


async def _load(ctx: CommandContext[Planning], allocation_id: str) -> Allocation:
    allocation = await repository.get(ctx.tx, allocation_id)
    if allocation is None:
        raise NotFound(f"allocation {allocation_id} does not exist")
    ctx.check_version(allocation.version)
    return allocation


async def approve(ctx: CommandContext[Planning], command: Approve) -> CommandResult:
    allocation = await _load(ctx, command.allocation_id)
    allocation.approve(ctx.principal.actor)
    await save(ctx.tx, allocation, ctx.meta)
    return CommandResult(allocation.id, allocation.version)


async def reject(ctx: CommandContext[Planning], command: Reject) -> CommandResult:
    """Reject, then re-plan the family without that pairing (the freed need is re-matched)."""
    tx = ctx.tx
    # Planning lock before the flush below takes the store's commit-order lock: every planning
    # step takes the two in this order, so none waits for the other in a cycle.
    await planning_lock(tx)
    allocation = await _load(ctx, command.allocation_id)
    allocation.reject(command.reason)
    await save(tx, allocation, ctx.meta)
    rejected = str((await tx.flush())[-1].event_id)
    await ctx.deps.replan(
        tx,
        [allocation.item_code],
        cause=f"allocation {allocation.id} rejected",
        seed=rejected,
        meta=replace(ctx.meta, causation_id=rejected),
    )
    return CommandResult(allocation.id, allocation.version, rejected)


async def run_plan(ctx: CommandContext[Planning], command: RunPlan) -> CommandResult:
    """Re-plan every family with anything open (POST /plan/run)."""
    codes = await planning_state.open_item_codes(ctx.tx.conn)
    summary = await ctx.deps.replan(
        ctx.tx,
        codes,
        cause=f"plan run {command.run_id} by {ctx.principal.actor}",
        seed=command.run_id,
        meta=replace(ctx.meta, correlation_id=command.run_id),
    )
    stored = await ctx.tx.flush()
    body = {
        "id": command.run_id,
        "version": 1,
        "event_id": str(stored[-1].event_id) if stored else None,
        **asdict(summary),
    }
    return CommandResult(command.run_id, 1, body=body)
