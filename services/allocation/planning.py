"""The planning step the command handlers and the consumer share.

`Planning.replan` is the one way the plan changes: it takes the planning lock, loads each
affected item family, runs the pure planner and stores what it decided (allocation events,
shortfall events, and the tables that follow them) in the caller's transaction.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from services.allocation import planning_state, tables
from services.allocation.domain import Allocation, HubRule, Plan, Planner, Policy
from services.allocation.settings import AllocationSettings
from shared.catalogue import hubs
from shared.contracts.allocations import ShortfallRecorded
from shared.contracts.allocations import registry as allocation_events
from shared.domain import Metadata
from shared.eventstore import Repository, Transaction

AUTO_APPROVER = "auto-approve"
# Allocation ids are derived from what caused them, so a retried step makes the same ids.
_IDS = uuid.UUID("5b0c6a57-4d0e-4a53-9a55-a110ca7e0001")

repository = Repository(Allocation, allocation_events)


def shortfall_stream(requirement_id: str) -> str:
    return f"shortfall-{requirement_id}"


@dataclass
class PlanSummary:
    families: int = 0
    proposed: int = 0
    approved: int = 0
    cancelled: int = 0
    shortfalls: int = 0


class Planning:
    def __init__(self, settings: AllocationSettings) -> None:
        self.policy = Policy(lead_days=settings.handover_lead_days)
        self.hubs = HubRule(hubs().values())
        self.auto_approve = settings.auto_approve

    async def replan(
        self, tx: Transaction, item_codes: Iterable[str], *, cause: str, seed: str, meta: Metadata
    ) -> PlanSummary:
        """Re-plan the families of `item_codes`; `seed` makes the new allocation ids."""
        await planning_lock(tx)
        graph = await planning_state.item_graph(tx.conn)
        planner = Planner(graph, self.hubs, self.policy)
        families = {graph.family_key(code): graph.family(code) for code in item_codes}
        summary = PlanSummary(families=len(families))
        for key in sorted(families):
            family = await planning_state.family_state(tx.conn, families[key])
            plan = planner.plan(family, cause)
            await self._store(tx, plan, f"{seed}/{key}", meta, summary)
        return summary

    async def _store(
        self, tx: Transaction, plan: Plan, seed: str, meta: Metadata, summary: PlanSummary
    ) -> None:
        for cancellation in plan.cancellations:
            allocation = await repository.get(tx, cancellation.allocation_id)
            if allocation is None:
                raise LookupError(f"allocation {cancellation.allocation_id} has no stream")
            allocation.cancel(cancellation.reason)
            await save(tx, allocation, meta)
            summary.cancelled += 1
        for index, proposal in enumerate(plan.proposals):
            allocation_id = "AL-" + uuid.uuid5(_IDS, f"{seed}/{index}").hex[:20]
            allocation = Allocation.propose(allocation_id, proposal)
            if proposal.approved_by is not None:
                allocation.approve(proposal.approved_by)
            elif self.auto_approve:
                allocation.approve(AUTO_APPROVER)
            await save(tx, allocation, meta)
            summary.proposed += 1
            summary.approved += int(allocation.status == "approved")
        for shortfall in plan.shortfalls:
            stream = shortfall_stream(shortfall.requirement_id)
            version = await tx.store.stream_version(tx.conn, stream)
            event = ShortfallRecorded(**asdict(shortfall))
            tx.append(stream, version, [allocation_events.encode(event, meta)])
            await tables.save_shortfall(tx.conn, shortfall)
            summary.shortfalls += 1


async def planning_lock(tx: Transaction) -> None:
    """One planning step at a time per store: two steps planning the same free quantity at once
    would over-allocate it. Take it before the transaction's first flush (which takes the
    store's commit-order lock), so the two locks are always taken in the same order.
    (Where writers are serialised already, as on SQLite, the lock is no lock.)"""
    key = zlib.crc32(f"aidline.allocation.planning.{tx.store.db.schema}".encode())
    await tx.store.db.dialect.lock_transaction(tx.conn, key)


async def save(tx: Transaction, allocation: Allocation, meta: Metadata) -> None:
    """The allocation's new events and its row (tables.allocations), in one transaction."""
    repository.save(tx, allocation, meta)
    await tables.save_allocation(tx.conn, allocation)
