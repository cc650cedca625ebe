"""The questions operators ask, answered from the active generation's tables, and the
service's status (the active generation's consumer, the rebuild's progress).

Ledgers, gaps and hub boards are grouped from the per-entity rows when asked (fast at the size
of a coordination campaign, and nothing to keep consistent on the write side).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projection import as_of
from services.projection import tables as t
from services.projection.as_of import LIVE, Tables
from services.projection.domain import changes as change_kinds
from services.projection.domain import execution
from services.projection.domain.model import (
    HANDED_OVER,
    Allocation,
    Decision,
    Pledge,
    Requirement,
    Row,
    Shipment,
)
from services.projection.generations import Generation
from services.projection.rebuild import RebuildProgress
from shared.db.rows import aware

IT = t.items

# The handover and the request service's record are one fact seen twice (see the domain).
RowT = TypeVar("RowT", bound=Row)


def _delivered(R: sa.FromClause) -> sa.ColumnElement[int]:
    return sa.case(
        (R.c.delivered_shipments > R.c.delivered_recorded, R.c.delivered_shipments),
        else_=R.c.delivered_recorded,
    )


item_capability: sa.ColumnElement[str] = sa.func.coalesce(IT.c.capability, "unknown")


def _board_columns(R: sa.FromClause) -> tuple[sa.ColumnElement[Any], ...]:
    return (
        R.c.requirement_id,
        R.c.item_code,
        IT.c.name.label("item_name"),
        item_capability.label("capability"),
        R.c.unit,
        R.c.priority,
        R.c.needed_by,
        R.c.destination,
        R.c.status,
        R.c.requested,
        R.c.pledged,
        R.c.allocated,
        R.c.in_transit,
        _delivered(R).label("delivered"),
        R.c.open_shortfall,
        R.c.submitted_at,
        R.c.updated_at,
    )


CSV_FIELDS = [c.name for c in _board_columns(t.requirements)]
OPEN = ("cancelled", "fulfilled", "delivered")


def _row(row: Any) -> dict[str, Any]:
    return {k: aware(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()}


# -- requirement board -----------------------------------------------------------------------


async def board(
    conn: AsyncConnection,
    *,
    capability: str | None = None,
    status: str | None = None,
    priority: int | None = None,
    limit: int = 1000,
    offset: int = 0,
    tables: Tables = LIVE,
) -> list[dict[str, Any]]:
    if tables.cutoff is not None and not status:
        # As of a date, the order and every filter but the status are the requirements' own
        # fields: page by them first, then sum the figures of that page only.
        page = await _as_of_page(conn, tables.cutoff, capability, priority, limit, offset)
        tables, offset = as_of.narrowed(tables, page), 0
    R = tables.requirements
    query = sa.select(*_board_columns(R)).select_from(
        R.outerjoin(IT, IT.c.item_code == R.c.item_code)
    )
    if capability:
        query = query.where(item_capability == capability)
    if status:
        query = query.where(R.c.status == status)
    if priority:
        query = query.where(R.c.priority == priority)
    query = query.order_by(R.c.priority, R.c.needed_by, R.c.requirement_id)
    return [_row(r) for r in await conn.execute(query.limit(limit).offset(offset))]


async def board_total(
    conn: AsyncConnection,
    *,
    capability: str | None = None,
    status: str | None = None,
    priority: int | None = None,
    tables: Tables = LIVE,
) -> int:
    """How many requirements the board's filters match (the list envelope's `total`)."""
    own = (
        as_of.own_requirements(tables.cutoff)
        if tables.cutoff is not None and not status
        else tables.requirements
    )
    query = sa.select(sa.func.count()).select_from(
        own.outerjoin(IT, IT.c.item_code == own.c.item_code)
    )
    if capability:
        query = query.where(item_capability == capability)
    if status:
        query = query.where(own.c.status == status)
    if priority:
        query = query.where(own.c.priority == priority)
    return int(await conn.scalar(query) or 0)


async def _as_of_page(
    conn: AsyncConnection,
    cutoff: datetime,
    capability: str | None,
    priority: int | None,
    limit: int,
    offset: int,
) -> list[str]:
    own = as_of.own_requirements(cutoff)
    query = sa.select(own.c.requirement_id).select_from(
        own.outerjoin(IT, IT.c.item_code == own.c.item_code)
    )
    if capability:
        query = query.where(item_capability == capability)
    if priority:
        query = query.where(own.c.priority == priority)
    query = query.order_by(own.c.priority, own.c.needed_by, own.c.requirement_id)
    return list((await conn.scalars(query.limit(limit).offset(offset))).all())


async def requirement(
    conn: AsyncConnection, requirement_id: str, tables: Tables = LIVE
) -> dict[str, Any] | None:
    tables = as_of.narrowed(tables, [requirement_id])
    R, A, S = tables.requirements, tables.allocations, tables.shipments
    query = (
        sa.select(*_board_columns(R))
        .select_from(R.outerjoin(IT, IT.c.item_code == R.c.item_code))
        .where(R.c.requirement_id == requirement_id)
    )
    found = (await conn.execute(query)).first()
    if found is None:
        return None
    result = _row(found)
    allocations = await conn.execute(
        sa.select(A).where(A.c.requirement_id == requirement_id).order_by(A.c.proposed_at)
    )
    shipments = await conn.execute(
        sa.select(S).where(S.c.requirement_id == requirement_id).order_by(S.c.planned_at)
    )
    result["allocations"] = [_row(r) for r in allocations]
    result["shipments"] = [_row(r) for r in shipments]
    return result


# -- donor ledger ----------------------------------------------------------------------------


def _unit_value(value_eur: float | None, announced: int) -> float:
    return (value_eur or 0.0) / announced if announced else 0.0


async def donor_ledger(conn: AsyncConnection, nation: str, tables: Tables = LIVE) -> dict[str, Any]:
    P, A, S = tables.pledges, tables.allocations, tables.shipments
    pledges = (await conn.execute(sa.select(P).where(P.c.donor == nation))).all()
    unit_value = {p.pledge_id: _unit_value(p.value_eur, p.announced_quantity) for p in pledges}
    totals: dict[str, float] = defaultdict(float)
    per_item: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(item: str, name: str, quantity: int, pledge_id: str) -> None:
        value = quantity * unit_value.get(pledge_id, 0.0)
        for bucket in (totals, per_item[item]):
            bucket[f"{name}_quantity"] += quantity
            bucket[f"{name}_eur"] += value

    for p in pledges:
        if p.status != "withdrawn":
            add(p.item_code, "pledged", p.quantity, p.pledge_id)
        if p.status == "confirmed":
            add(p.item_code, "confirmed", p.quantity, p.pledge_id)
    approved = await conn.execute(
        sa.select(A.c.item_code, A.c.quantity, A.c.pledge_id)
        .select_from(A.join(P, P.c.pledge_id == A.c.pledge_id))
        .where(P.c.donor == nation, A.c.status == "approved")
    )
    for a in approved:
        add(a.item_code, "allocated", a.quantity, a.pledge_id)
    shipments = await conn.execute(
        sa.select(S, A.c.handover_by)
        .select_from(S.outerjoin(A, A.c.allocation_id == S.c.allocation_id))
        .where(S.c.donor == nation)
    )
    handed, on_time = 0, 0
    for s in shipments:
        if s.status != "planned":
            add(s.item_code, "shipped", s.quantity, s.pledge_id)
        if s.status in HANDED_OVER:
            add(s.item_code, "handed_over", s.received_good, s.pledge_id)
            handed += 1
            at = aware(s.handed_over_at)
            if s.handover_by is None or (at is not None and at.date() <= s.handover_by):
                on_time += 1
    for bucket in (totals, *per_item.values()):
        bucket["backlog_quantity"] = max(
            0.0, bucket["confirmed_quantity"] - bucket["shipped_quantity"]
        )
        bucket["backlog_eur"] = max(0.0, bucket["confirmed_eur"] - bucket["shipped_eur"])
    return {
        "nation": nation,
        "pledges": len(pledges),
        "totals": _rounded(totals),
        "items": {item: _rounded(v) for item, v in sorted(per_item.items())},
        "handed_over_shipments": handed,
        "on_time_rate": round(on_time / handed, 4) if handed else None,
    }


LEDGER_FIGURES = ("pledged", "confirmed", "allocated", "shipped", "handed_over", "backlog")


def _rounded(bucket: dict[str, float]) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for figure in LEDGER_FIGURES:
        out[f"{figure}_quantity"] = int(bucket.get(f"{figure}_quantity", 0))
        out[f"{figure}_eur"] = round(bucket.get(f"{figure}_eur", 0.0), 2)
    return out


# -- capability gaps -------------------------------------------------------------------------


async def capability_gaps(
    conn: AsyncConnection, top: int = 10, tables: Tables = LIVE
) -> dict[str, Any]:
    R, P = tables.requirements, tables.pledges
    DELIVERED = _delivered(R)
    items = {r.item_code: r for r in await conn.execute(sa.select(IT))}
    figures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    needs = await conn.execute(
        sa.select(
            R.c.item_code,
            sa.func.sum(R.c.requested).label("need"),
            sa.func.sum(R.c.allocated).label("allocated"),
            sa.func.sum(DELIVERED).label("delivered"),
        )
        .where(R.c.status != "cancelled")
        .group_by(R.c.item_code)
    )
    for n in needs:
        figures[n.item_code].update(
            need=int(n.need or 0), allocated=int(n.allocated or 0), delivered=int(n.delivered or 0)
        )
    pledged = await conn.execute(
        sa.select(P.c.item_code, sa.func.sum(P.c.quantity).label("pledged"))
        .where(P.c.status != "withdrawn")
        .group_by(P.c.item_code)
    )
    for p in pledged:
        figures[p.item_code]["pledged"] = int(p.pledged or 0)
    capabilities: dict[str, dict[str, Any]] = {}
    for code in sorted(figures):
        item = items.get(code)
        capability = item.capability if item else "unknown"
        entry = capabilities.setdefault(
            capability,
            {"capability": capability, "need": 0, "pledged": 0, "allocated": 0, "delivered": 0,
             "items": []},
        )  # fmt: skip
        f = figures[code]
        row: dict[str, Any] = {
            "item_code": code,
            "name": item.name if item else code,
            **{k: f.get(k, 0) for k in ("need", "pledged", "allocated", "delivered")},
        }
        row["unpledged"] = max(0, row["need"] - row["pledged"])
        row["unmet"] = max(0, row["need"] - row["delivered"])
        entry["items"].append(row)
        for k in ("need", "pledged", "allocated", "delivered"):
            entry[k] += row[k]
    for entry in capabilities.values():
        entry["unpledged"] = max(0, entry["need"] - entry["pledged"])
        entry["unmet"] = max(0, entry["need"] - entry["delivered"])
    uncovered = R.c.requested - R.c.allocated
    critical = await conn.execute(
        sa.select(*_board_columns(R), uncovered.label("uncovered"))
        .select_from(R.outerjoin(IT, IT.c.item_code == R.c.item_code))
        .where(R.c.priority == 1, R.c.status.not_in(OPEN), uncovered > 0)
        .order_by(uncovered.desc(), R.c.needed_by, R.c.requirement_id)
        .limit(top)
    )
    return {
        "capabilities": sorted(capabilities.values(), key=lambda c: -int(c["unmet"])),
        "top_unmet_critical": [_row(r) for r in critical],
        "over_time": await _over_time(conn, items, tables),
    }


async def _over_time(
    conn: AsyncConnection, items: dict[str, Any], tables: Tables
) -> dict[str, list[dict[str, Any]]]:
    """Cumulative pledged and delivered quantities per capability, by day."""
    P, S = tables.pledges, tables.shipments
    day_pledged = sa.func.date(P.c.announced_at)
    pledged = await conn.execute(
        sa.select(P.c.item_code, day_pledged.label("day"), sa.func.sum(P.c.quantity).label("q"))
        .where(P.c.status != "withdrawn", P.c.announced_at.is_not(None))
        .group_by(P.c.item_code, day_pledged)
    )
    day_handed = sa.func.date(S.c.handed_over_at)
    delivered = await conn.execute(
        sa.select(S.c.item_code, day_handed.label("day"), sa.func.sum(S.c.received_good).label("q"))
        .where(S.c.status.in_(HANDED_OVER), S.c.handed_over_at.is_not(None))
        .group_by(S.c.item_code, day_handed)
    )
    daily: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for index, rows in ((0, pledged), (1, delivered)):
        for r in rows:
            capability = items[r.item_code].capability if r.item_code in items else "unknown"
            daily[capability][str(r.day)][index] += int(r.q or 0)
    series: dict[str, list[dict[str, Any]]] = {}
    for capability, days in sorted(daily.items()):
        total = [0, 0]
        points = []
        for day in sorted(days):
            total = [total[0] + days[day][0], total[1] + days[day][1]]
            points.append({"day": day, "pledged": total[0], "delivered": total[1]})
        series[capability] = points
    return series


# -- forum decisions -------------------------------------------------------------------------

DECISION_CSV_FIELDS = [
    "decision_id", "meeting_date", "reference", "recorded_at", "requirements_endorsed",
    "pledges_confirmed", "endorsed_quantity", "allocated_quantity", "in_transit_quantity",
    "handed_over_quantity", "share_handed_over", "shortfalls", "confirmed_quantity",
]  # fmt: skip
EXECUTION_CSV_FIELDS = [
    "kind", "subject", "item_code", "unit", "status", "donor", *execution.FIGURES,
    *(f"days_to_{step}" for step in execution.STEPS),
    "held_shipments", "delayed_shipments", "lost_shipments", "open_shortfall",
    "shortfall_reason", "stuck",
]  # fmt: skip


async def decisions(
    conn: AsyncConnection, *, limit: int, offset: int, tables: Tables = LIVE
) -> tuple[list[dict[str, Any]], int]:
    """A page of the forum's decisions (and how many there are), latest meeting first, each
    with its progress: the quantities of the requirements it endorsed (as on the board) and of
    the pledges it confirmed; cancelled requirements and withdrawn pledges left out."""
    R, P, D = tables.requirements, tables.pledges, tables.decisions
    DELIVERED = _delivered(R)
    total = int(await conn.scalar(sa.select(sa.func.count()).select_from(D)) or 0)
    page = await conn.execute(
        sa.select(D)
        .order_by(D.c.meeting_date.desc().nulls_last(), D.c.recorded_at.desc(), D.c.decision_id)
        .limit(limit)
        .offset(offset)
    )
    rows = [_row(r) for r in page]
    ids = [r["decision_id"] for r in rows]
    needs = await conn.execute(
        sa.select(
            R.c.decision_id,
            sa.func.sum(R.c.requested).label("endorsed"),
            sa.func.sum(R.c.allocated).label("allocated"),
            sa.func.sum(R.c.in_transit).label("in_transit"),
            sa.func.sum(DELIVERED).label("handed_over"),
            sa.func.count().filter(R.c.open_shortfall > 0).label("shortfalls"),
        )
        .where(R.c.decision_id.in_(ids), R.c.status != "cancelled")
        .group_by(R.c.decision_id)
    )
    by_decision = {n.decision_id: n for n in needs}
    confirmed = {
        c.decision_id: int(c.q or 0)
        for c in await conn.execute(
            sa.select(P.c.decision_id, sa.func.sum(P.c.quantity).label("q"))
            .where(P.c.decision_id.in_(ids), P.c.status != "withdrawn")
            .group_by(P.c.decision_id)
        )
    }
    items = []
    for r in rows:
        n = by_decision.get(r["decision_id"])
        endorsed = int(n.endorsed or 0) if n else 0
        handed = int(n.handed_over or 0) if n else 0
        items.append(
            {
                "decision_id": r["decision_id"],
                "meeting_date": r["meeting_date"],
                "reference": r["reference"],
                "recorded_at": r["recorded_at"],
                "requirements_endorsed": r["endorsed"],
                "pledges_confirmed": r["confirmed"],
                "endorsed_quantity": endorsed,
                "allocated_quantity": int(n.allocated or 0) if n else 0,
                "in_transit_quantity": int(n.in_transit or 0) if n else 0,
                "handed_over_quantity": handed,
                "share_handed_over": round(handed / endorsed, 4) if endorsed else None,
                "shortfalls": int(n.shortfalls or 0) if n else 0,
                "confirmed_quantity": confirmed.get(r["decision_id"], 0),
            }
        )
    return items, total


async def decision_execution(
    conn: AsyncConnection, decision_id: str, tables: Tables = LIVE
) -> dict[str, Any] | None:
    """The decision followed to the border (`domain.execution.trace`), None if unknown."""
    R, P, A, S, D = (
        tables.requirements, tables.pledges, tables.allocations, tables.shipments,
        tables.decisions,
    )  # fmt: skip
    found = (await conn.execute(sa.select(D).where(D.c.decision_id == decision_id))).first()
    if found is None:
        return None
    requirement_ids = sa.select(R.c.requirement_id).where(R.c.decision_id == decision_id)
    pledge_ids = sa.select(P.c.pledge_id).where(P.c.decision_id == decision_id)
    requirements = await _rows(conn, Requirement, R.select().where(R.c.decision_id == decision_id))
    pledges = await _rows(conn, Pledge, P.select().where(P.c.decision_id == decision_id))
    allocations = await _rows(
        conn,
        Allocation,
        A.select().where(
            sa.or_(A.c.requirement_id.in_(requirement_ids), A.c.pledge_id.in_(pledge_ids))
        ),
    )
    shipments = await _rows(
        conn,
        Shipment,
        S.select().where(
            sa.or_(S.c.requirement_id.in_(requirement_ids), S.c.pledge_id.in_(pledge_ids))
        ),
    )
    stuck = sorted(s.shipment_id for s in shipments if execution.shipment_stuck(s))
    reasons = await _stuck_reasons(conn, stuck, tables.cutoff)
    decision = Decision(**_row(found))
    return execution.trace(decision, requirements, pledges, allocations, shipments, reasons)


async def _rows(conn: AsyncConnection, kind: type[RowT], query: sa.Select[Any]) -> list[RowT]:
    return [kind(**_row(r)) for r in await conn.execute(query)]


async def _stuck_reasons(
    conn: AsyncConnection, shipment_ids: list[str], cutoff: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Why these shipments are stuck, from their events in the audit trail (the read models
    keep a shipment's state, not the words of its hold, delay or loss); with a `cutoff`, only
    from events dated before it."""
    if not shipment_ids:
        return {}
    query = (
        sa.select(t.audit.c.stream_id, t.audit.c.event_type, t.audit.c.data)
        .where(
            t.audit.c.stream_id.in_(shipment_ids),
            t.audit.c.event_type.in_(list(execution.REASON_EVENTS)),
        )
        .order_by(t.audit.c.seq)
    )
    if cutoff is not None:
        H = t.shipment_history
        dated = sa.select(H.c.event_id).where(
            H.c.shipment_id.in_(shipment_ids), H.c.valid_from < cutoff
        )
        query = query.where(t.audit.c.event_id.in_(dated))
    events = await conn.execute(query)
    return execution.stuck_reasons((e.stream_id, e.event_type, e.data) for e in events)


# -- hubs, shipments, audit ------------------------------------------------------------------

S = t.shipments  # the hub board and a shipment's timeline answer live only
INBOUND = ("planned", "dispatched")
ON_HAND = ("at_hub", "cleared")


async def hub_board(
    conn: AsyncConnection, hub: str, now: datetime, limit: int = 200
) -> dict[str, Any]:
    async def shipments(*statuses: str, order: Any) -> list[dict[str, Any]]:
        rows = await conn.execute(
            sa.select(S)
            .where(S.c.hub == hub, S.c.status.in_(statuses))
            .order_by(order)
            .limit(limit)
        )
        return [_row(r) for r in rows]

    counts = {
        r.status: (int(r.n), int(r.q or 0))
        for r in await conn.execute(
            sa.select(S.c.status, sa.func.count().label("n"), sa.func.sum(S.c.quantity).label("q"))
            .where(S.c.hub == hub)
            .group_by(S.c.status)
        )
    }
    inbound = await shipments(*INBOUND, order=S.c.planned_at)
    on_hand = await shipments(*ON_HAND, order=S.c.arrived_at)
    held = await shipments("held", order=S.c.arrived_at)
    for row in on_hand + held:
        arrived = row["arrived_at"]
        row["dwell_hours"] = round((now - arrived).total_seconds() / 3600, 2) if arrived else None
    departed = await conn.execute(
        sa.select(S.c.arrived_at, S.c.departed_at)
        .where(S.c.hub == hub, S.c.departed_at.is_not(None), S.c.arrived_at.is_not(None))
        .order_by(S.c.departed_at.desc())
        .limit(500)
    )
    dwell = [(aware(r.departed_at) - aware(r.arrived_at)).total_seconds() / 3600 for r in departed]

    def figure(*statuses: str) -> dict[str, int]:
        return {
            "shipments": sum(counts.get(s, (0, 0))[0] for s in statuses),
            "quantity": sum(counts.get(s, (0, 0))[1] for s in statuses),
        }

    return {
        "hub": hub,
        "inbound": figure(*INBOUND),
        "on_hand": figure(*ON_HAND),
        "held_at_inspection": figure("held"),
        "dwell_hours": {
            "on_hand_average": _mean(r["dwell_hours"] for r in on_hand + held),
            "departed_average": _mean(dwell),
            "departed_sample": len(dwell),
        },
        "inbound_shipments": inbound,
        "on_hand_shipments": on_hand,
        "held_shipments": held,
    }


def _mean(values: Iterable[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return round(sum(numbers) / len(numbers), 2) if numbers else None


async def shipment(conn: AsyncConnection, shipment_id: str) -> dict[str, Any] | None:
    found = (await conn.execute(sa.select(S).where(S.c.shipment_id == shipment_id))).first()
    return None if found is None else _row(found)


async def shipment_timeline(
    conn: AsyncConnection, shipment_id: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The shipment (None if unknown) and the events of its stream."""
    return await shipment(conn, shipment_id), await audit_trail(conn, shipment_id)


async def audit_trail(
    conn: AsyncConnection, stream_id: str, limit: int = 1000
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(t.audit)
        .where(t.audit.c.stream_id == stream_id)
        .order_by(t.audit.c.seq)
        .limit(limit)
    )
    return [_row(r) for r in rows]


async def status(generation: Generation, rebuild: RebuildProgress) -> dict[str, Any]:
    """The active generation's consumer (lag per partition, events applied) and the rebuild's
    progress."""
    consumer = generation.consumer
    lag = consumer.lag
    stored = await consumer.stored_offsets(list(lag))
    partitions = [
        {
            "topic": tp.topic,
            "partition": tp.partition,
            "next_offset": stored.get(tp, 0),
            "lag": lag[tp],
        }
        for tp in sorted(lag, key=lambda tp: (tp.topic, tp.partition))
    ]
    health = consumer.health()
    return {
        "generation": generation.number,
        "schema": generation.schema,
        "consumer": consumer.name,
        "running": health.running,
        "events_applied": consumer.applied,
        "dead_lettered": consumer.dead_lettered,
        "last_event_time": consumer.last_event_time,
        "lag": sum(lag.values()),
        "partitions": partitions,
        "rebuild": rebuild.as_dict(),
    }


# -- what changed between two days (the meeting pack) ----------------------------------------

_LINE_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "event_type": sa.String(100),
    "at": sa.DateTime(timezone=True),
    "subject": sa.String(200),
    "requirement_id": sa.String(200),
    "pledge_id": sa.String(200),
    "decision_id": sa.String(200),
    "nation": sa.String(10),
    "item_code": sa.String(100),
    "quantity": sa.Integer(),
    "unit": sa.String(50),
    "shipment_id": sa.String(200),
    "hub": sa.String(50),
    "new_eta": sa.Date(),
    "shortfall_reason": sa.Text(),
    "note": sa.String(500),
}
# Left out of a line where they do not apply (so no reader is told one was hidden).
_OPTIONAL = ("shipment_id", "hub", "new_eta", "shortfall_reason", "note", "decision_id")


def _line(
    source: sa.FromClause, at: Any, where: sa.ColumnElement[bool], **columns: Any
) -> sa.Select[Any]:
    """One source's lines, every column of a line named and typed (for the union)."""
    chosen = {"at": at, **columns}
    # A missing column is a NULL of its type (PostgreSQL types a union's bare NULLs as text);
    # a present one is not cast (SQLite would turn a time into a number).
    return (
        sa.select(
            *(
                (chosen[name] if name in chosen else sa.cast(sa.null(), kind)).label(name)
                for name, kind in _LINE_TYPES.items()
            )
        )
        .select_from(source)
        .where(where)
    )


def _change_lines(start: datetime, end: datetime) -> sa.Subquery:
    RH, PH, DH = t.requirement_history, t.pledge_history, t.decision_history
    AH, SH, RF = t.allocation_history, t.shipment_history, t.requirement_flows

    def kinds(table: sa.Table, prefix: str) -> sa.ColumnElement[bool]:
        types = [k for k in change_kinds.KINDS if k.startswith(prefix)]
        dated = sa.and_(table.c.valid_from >= start, table.c.valid_from < end)
        return sa.and_(dated, table.c.event_type.in_(types))

    shipped = sa.case(
        (SH.c.event_type == "shipment.handed_over", SH.c.received_good),
        (SH.c.event_type == "shipment.lost", SH.c.lost_quantity),
        else_=SH.c.quantity,
    )
    lines = [
        _line(
            RH, RH.c.valid_from, kinds(RH, "requirement."), event_type=RH.c.event_type,
            subject=RH.c.requirement_id, requirement_id=RH.c.requirement_id,
            decision_id=RH.c.decision_id, item_code=RH.c.item_code, quantity=RH.c.requested,
            unit=RH.c.unit,
        ),
        _line(
            PH, PH.c.valid_from, kinds(PH, "pledge."), event_type=PH.c.event_type,
            subject=PH.c.pledge_id, pledge_id=PH.c.pledge_id, decision_id=PH.c.decision_id,
            nation=PH.c.donor, item_code=PH.c.item_code, quantity=PH.c.quantity, unit=PH.c.unit,
        ),
        _line(
            DH, DH.c.valid_from, kinds(DH, "decision."), event_type=DH.c.event_type,
            subject=DH.c.decision_id, decision_id=DH.c.decision_id, note=DH.c.reference,
        ),
        _line(
            AH.outerjoin(t.pledges, t.pledges.c.pledge_id == AH.c.pledge_id),
            AH.c.valid_from, kinds(AH, "allocation."), event_type=AH.c.event_type,
            subject=AH.c.allocation_id, requirement_id=AH.c.requirement_id,
            pledge_id=AH.c.pledge_id, nation=t.pledges.c.donor, item_code=AH.c.item_code,
            quantity=AH.c.quantity, unit=t.pledges.c.unit, hub=AH.c.hub,
        ),
        _line(
            RF.outerjoin(t.requirements, t.requirements.c.requirement_id == RF.c.requirement_id),
            RF.c.valid_from, kinds(RF, "shortfall."), event_type=RF.c.event_type,
            subject=RF.c.requirement_id, requirement_id=RF.c.requirement_id,
            item_code=t.requirements.c.item_code, quantity=RF.c.open_shortfall,
            unit=t.requirements.c.unit, shortfall_reason=RF.c.shortfall_reason,
        ),
        _line(
            SH, SH.c.valid_from, kinds(SH, "shipment."), event_type=SH.c.event_type,
            subject=SH.c.shipment_id, shipment_id=SH.c.shipment_id,
            requirement_id=SH.c.requirement_id, pledge_id=SH.c.pledge_id, nation=SH.c.donor,
            item_code=SH.c.item_code, quantity=shipped, hub=SH.c.hub, new_eta=SH.c.eta,
        ),
    ]  # fmt: skip
    return sa.union_all(*lines).subquery("changes")


async def changes(
    conn: AsyncConnection, start: datetime, end: datetime, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of what changed from `start` to `end` (business time, `start` included), oldest
    first, each line with its kind and summary (domain.changes); and how many lines there are."""
    lines = _change_lines(start, end)
    total = int(await conn.scalar(sa.select(sa.func.count()).select_from(lines)) or 0)
    page = await conn.execute(
        sa.select(lines)
        .order_by(lines.c.at, lines.c.event_type, lines.c.subject)
        .limit(limit)
        .offset(offset)
    )
    items = []
    for r in page:
        line = _row(r)
        line["kind"] = change_kinds.KINDS[line.pop("event_type")]
        line["date"] = line["at"].date() if line["at"] else None
        line["summary"] = change_kinds.summary(line)
        for name in _OPTIONAL:
            if line.get(name) is None:
                line.pop(name, None)
        items.append({k: line[k] for k in change_kinds.FIELDS if k in line})
    return items, total
