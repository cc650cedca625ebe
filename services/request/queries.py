"""Reads: aggregates rehydrated from their streams, a stream's history, the catalogue."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from services.request.domain import decision as decision_ids
from services.request.domain import pledge as pledge_ids
from services.request.domain import requirement as requirement_ids
from services.request.handlers import decisions, load, pledges, requirements
from services.request.schemas import (
    CatalogueItemView,
    DecisionView,
    PledgeView,
    RequirementView,
    StreamEvent,
    StreamOut,
)
from services.request.tables import added_items
from shared.auth import Principal
from shared.auth.visibility import Resource, require_shown, shown_event
from shared.catalogue import Item, base_items
from shared.contracts.requests import registry
from shared.domain import Aggregate, NotFound
from shared.eventstore import EventStore, Repository, Transaction

A = TypeVar("A", bound=Aggregate)
V = TypeVar("V", bound=BaseModel)


async def _load(store: EventStore, repository: Repository[A], prefix: str, aggregate_id: str) -> A:
    async with store.db.engine.connect() as conn:
        return await load(Transaction(conn, store), repository, prefix, aggregate_id)


def _seen(principal: Principal, view: type[V], record: dict[str, Any], what: str) -> V:
    """The record as `principal` may see it (shared.auth.visibility): held-back fields null."""
    return view.model_validate(require_shown(principal, Resource.PLANNING, record, what=what))


async def requirement(
    store: EventStore, principal: Principal, requirement_id: str
) -> RequirementView:
    r = await _load(store, requirements, requirement_ids.PREFIX, requirement_id)
    record = dict(
        id=r.id,
        version=r.version,
        status=r.status,
        item_code=r.item_code,
        unit=r.unit,
        quantity=r.quantity,
        priority=r.priority,
        needed_by=r.needed_by,
        destination=r.destination,
        justification=r.justification,
        decision_id=r.decision_id,
        delivered=r.delivered,
        deliveries=r.deliveries,
        cancel_reason=r.cancel_reason,
    )
    return _seen(principal, RequirementView, record, "This requirement")


async def pledge(store: EventStore, principal: Principal, pledge_id: str) -> PledgeView:
    p = await _load(store, pledges, pledge_ids.PREFIX, pledge_id)
    record = dict(
        id=p.id,
        version=p.version,
        status=p.status,
        donor=p.donor,
        item_code=p.item_code,
        unit=p.unit,
        quantity=p.quantity,
        source=p.source,
        available_from=p.available_from,
        value_eur=p.value_eur,
        source_url=p.source_url,
        decision_id=p.decision_id,
        withdraw_reason=p.withdraw_reason,
    )
    return _seen(principal, PledgeView, record, "This pledge")


async def decision(store: EventStore, principal: Principal, decision_id: str) -> DecisionView:
    d = await _load(store, decisions, decision_ids.PREFIX, decision_id)
    record = dict(
        id=d.id,
        version=d.version,
        meeting_date=d.meeting_date,
        reference=d.reference,
        endorsed=[{"requirement_id": e.requirement_id, "priority": e.priority} for e in d.endorsed],
        confirmed=d.confirmed,
    )
    return _seen(principal, DecisionView, record, "This decision")


async def history(
    store: EventStore, principal: Principal, stream_id: str, after_version: int, limit: int
) -> StreamOut:
    """The stream's events as `principal` may see them (shared.auth.visibility)."""
    async with store.db.engine.connect() as conn:
        version = await store.stream_version(conn, stream_id)
        if version == 0:
            raise NotFound(f"There is no stream {stream_id}.")
        stored = await store.read_stream(conn, stream_id, after_version)
    return StreamOut(
        stream_id=stream_id,
        version=version,
        events=[
            StreamEvent.model_validate(seen)
            for e in stored[:limit]
            if (
                seen := shown_event(
                    principal,
                    e.event_type,
                    {
                        "position": e.position,
                        "stream_version": e.stream_version,
                        "event_id": str(e.event_id),
                        "type": e.event_type,
                        "schema_version": e.schema_version,
                        "recorded_at": e.recorded_at,
                        "actor": e.meta.actor,
                        "correlation_id": e.meta.correlation_id,
                        "causation_id": e.meta.causation_id,
                        "data": registry.upcast(e.event_type, e.schema_version, e.data),
                    },
                    hub=None,
                    donor=None,
                )
            )
        ],
    )


def _view(item: Item, origin: Literal["base", "added"]) -> CatalogueItemView:
    return CatalogueItemView(
        item_code=item.code,
        name=item.name,
        capability=item.capability,
        unit=item.unit,
        eum_class=item.eum_class,
        substitutes=list(item.substitutes),
        origin=origin,
    )


async def items(store: EventStore, capability: str | None) -> list[CatalogueItemView]:
    async with store.db.engine.connect() as conn:
        added = await added_items(conn)
    views = [_view(i, "base") for i in base_items().values()]
    views += [_view(i, "added") for i in added.values()]
    return sorted(
        (v for v in views if capability is None or v.capability == capability),
        key=lambda v: v.item_code,
    )
