"""Command handlers: milestones from people, and planning/cancelling from allocation events.

Each handler loads the shipment, applies the rule in the domain, queues the events and updates
the shipments table in the same transaction. Events are appended before the table is touched,
so every writer takes the store's commit-order lock first and writers never wait on each other
in opposite orders.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from services.delivery import tables
from services.delivery.access import MILESTONE_RULES, authorize_on
from services.delivery.commands import (
    Arrive,
    Delay,
    Depart,
    Dispatch,
    Handover,
    Inspect,
    Milestone,
    Receive,
    ReportLoss,
)
from services.delivery.domain import Shipment
from services.delivery.tables import Allocation
from shared.catalogue import hubs
from shared.commands import CommandContext, CommandResult
from shared.contracts.deliveries import registry
from shared.domain import Metadata, NotFound
from shared.eventstore import Repository, Transaction

REPOSITORY = Repository(Shipment, registry)


def shipment_id_for(allocation_id: str) -> str:
    """One shipment per approved allocation, so a redelivered approval finds the same one."""
    return f"SHP-{allocation_id}"


# -- milestones -------------------------------------------------------------------------------


async def record_milestone(ctx: CommandContext[None], command: Milestone) -> CommandResult:
    """Any milestone: a missing shipment is 404 and another hub's or nation's 403 before a stale
    If-Match is 412, so the version tells nothing to whom may not act on the shipment."""
    shipment = await REPOSITORY.get(ctx.tx, command.shipment_id)
    if shipment is None:
        raise NotFound(f"There is no shipment {command.shipment_id}.")
    authorize_on(ctx.principal, MILESTONE_RULES[command.MILESTONE], shipment)
    ctx.check_version(shipment.version)
    _apply(shipment, command)
    event_id = await _save(ctx.tx, shipment, ctx.meta)
    return CommandResult(id=shipment.id, version=shipment.version, event_id=event_id)


def _apply(shipment: Shipment, command: Milestone) -> None:
    match command:
        case Dispatch():
            shipment.dispatch(command.mode, command.carrier_ref, command.serials)
        case Arrive():
            shipment.arrive()
        case Inspect():
            shipment.inspect(command.result, command.notes)
        case Depart():
            shipment.depart()
        case Handover():
            shipment.hand_over(
                command.received_good, command.damaged, command.short, command.serials
            )
        case Receive():
            shipment.receive()
        case Delay():
            shipment.delay(command.reason, command.new_eta, command.reported_on)
        case ReportLoss():
            shipment.report_loss(command.quantity, command.reason, command.serials)
        case _:
            assert_never(command)


async def _save(tx: Transaction, shipment: Shipment, meta: Metadata) -> str | None:
    REPOSITORY.save(tx, shipment, meta)
    stored = await tx.flush()
    await tables.save_shipment(tx.conn, shipment)
    return str(stored[-1].event_id) if stored else None


# -- from allocation events -------------------------------------------------------------------


async def plan_approved(tx: Transaction, allocation_id: str, meta: Metadata) -> None:
    """An approved allocation becomes a planned shipment, once its donor and item are known."""
    allocation = await tables.find_allocation(tx.conn, allocation_id)
    if allocation is None:
        raise LookupError(f"allocation {allocation_id} was approved but never proposed")
    if allocation.status not in ("proposed", "approved"):
        return  # planned already (a redelivered approval), or rejected/cancelled
    await tables.set_allocation_status(tx.conn, allocation_id, "approved", approval=meta)
    await _plan_if_ready(tx, allocation, meta)


async def plan_waiting(
    tx: Transaction, meta: Metadata, *, pledge_id: str | None = None, item_code: str | None = None
) -> None:
    """Plan the approved allocations that were waiting for this pledge's donor or this item."""
    for allocation in await tables.waiting_allocations(
        tx.conn, pledge_id=pledge_id, item_code=item_code
    ):
        await _plan_if_ready(tx, allocation, _caused_by_approval(allocation, meta))


def _caused_by_approval(allocation: Allocation, meta: Metadata) -> Metadata:
    """A shipment planned once its donor or item is known is still the approval's follow-up:
    it names the `allocation.approved` event as cause and keeps that event's correlation."""
    if allocation.approval_event_id is None:
        return meta  # approved before the approval was kept (migration 0005)
    return replace(
        meta,
        correlation_id=allocation.approval_correlation_id or allocation.approval_event_id,
        causation_id=allocation.approval_event_id,
    )


async def _plan_if_ready(tx: Transaction, allocation: Allocation, meta: Metadata) -> None:
    donor = await tables.donor_of(tx.conn, allocation.pledge_id)
    eum_class = await tables.eum_class_of(tx.conn, allocation.item_code)
    if donor is None or eum_class is None:
        return  # planned when `pledge.announced` / `catalogue.item_added` arrives
    hub = hubs().get(allocation.hub)
    if hub is None:
        raise LookupError(f"allocation {allocation.allocation_id}: unknown hub {allocation.hub}")
    shipment_id = shipment_id_for(allocation.allocation_id)
    if await REPOSITORY.get(tx, shipment_id) is None:
        shipment = Shipment.plan(
            shipment_id,
            allocation_id=allocation.allocation_id,
            requirement_id=allocation.requirement_id,
            pledge_id=allocation.pledge_id,
            donor=donor,
            item_code=allocation.item_code,
            quantity=allocation.quantity,
            hub=hub.code,
            handover_point=hub.handover_point,
            eum_class=eum_class,
            endorsed_by_decision=allocation.endorsed_by_decision,
            confirmed_by_decision=allocation.confirmed_by_decision,
        )
        await _save(tx, shipment, meta)
    await tables.set_allocation_status(tx.conn, allocation.allocation_id, "planned", shipment_id)


async def cancel_for_allocation(
    tx: Transaction, allocation_id: str, reason: str, meta: Metadata
) -> None:
    """Cancel the allocation's shipment if it has not left; else record the refusal."""
    allocation = await tables.find_allocation(tx.conn, allocation_id)
    if allocation is None or allocation.status == "cancelled":
        return
    if allocation.shipment_id is not None:
        shipment = await REPOSITORY.get(tx, allocation.shipment_id)
        if shipment is not None:
            shipment.respond_to_cancellation(reason)
            await _save(tx, shipment, meta)
    await tables.set_allocation_status(tx.conn, allocation_id, "cancelled")
