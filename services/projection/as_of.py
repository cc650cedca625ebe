"""The read models as they stood at the end of a day (business time), and what changed between
two days: read from the history tables (`tables.py`; how they are written: domain/history.py).

`tables_as_of(day)` gives the row tables' twins as of that day — subqueries with the live
tables' names and columns — so every question of `queries.py` is asked the same way of either.
A row as of a day is its last version dated before the next midnight (UTC); a requirement's
figures are the sums of its flows dated so, its status follows from them as on the live board
(`STATUS`, the SQL of `domain.model.requirement_status`). Portable SQL (PostgreSQL, SQLite).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from services.projection import tables as t
from services.projection.domain.history import FLOW_FIGURES


@dataclass(frozen=True)
class Tables:
    """The tables a question is asked of: the live ones, or their twins as of a day."""

    requirements: sa.FromClause
    pledges: sa.FromClause
    allocations: sa.FromClause
    shipments: sa.FromClause
    decisions: sa.FromClause
    # As of a day: the shipment events dated before this (for the words of a hold or delay).
    cutoff: datetime | None = None


LIVE = Tables(t.requirements, t.pledges, t.allocations, t.shipments, t.decisions)


def cutoff(day: date) -> datetime:
    """The end of `day` (UTC): facts dated before it count."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def tables_as_of(day: date) -> Tables:
    end = cutoff(day)
    return Tables(
        requirements=_requirements(end, None),
        pledges=_latest(t.pledge_history, t.pledges, end),
        allocations=_latest(t.allocation_history, t.allocations, end),
        shipments=_latest(t.shipment_history, t.shipments, end),
        decisions=_latest(t.decision_history, t.decisions, end),
        cutoff=end,
    )


def narrowed(tables: Tables, requirement_ids: Collection[str]) -> Tables:
    """`tables` as of their cutoff with only these requirements: their figures are summed from
    their own flows only (by index), not from every requirement's. Live tables as they are."""
    if tables.cutoff is None:
        return tables
    return replace(tables, requirements=_requirements(tables.cutoff, sorted(requirement_ids)))


def own_requirements(end: datetime) -> sa.Subquery:
    """Each requirement's own fields as of `end` (its last version dated before it), without
    its figures: enough to order and page the board before summing anything."""
    return _own_requirements(end, None)


def _own_requirements(end: datetime, only: Collection[str] | None) -> sa.Subquery:
    H = t.requirement_history
    last = _last_versions(H, "requirement_id", end, only)
    return sa.select(H).select_from(H.join(last, H.c.seq == last.c.seq)).subquery("own")


def _last_versions(
    history: sa.Table, key: str, end: datetime, only: Collection[str] | None = None
) -> sa.Subquery:
    query = sa.select(history.c[key], sa.func.max(history.c.seq).label("seq")).where(
        history.c.valid_from < end
    )
    if only is not None:
        query = query.where(history.c[key].in_(only))
    return query.group_by(history.c[key]).subquery(f"last_{history.name}")


def _latest(history: sa.Table, live: sa.Table, end: datetime) -> sa.Subquery:
    """`live` as of `end`: each key's last version dated before it."""
    (key,) = live.primary_key.columns
    last = _last_versions(history, key.name, end)
    return (
        sa.select(*(history.c[c.name] for c in live.columns))
        .select_from(history.join(last, history.c.seq == last.c.seq))
        .subquery(live.name)
    )


def requirement_status(
    *,
    requested: Any,
    allocated: Any,
    in_transit: Any,
    delivered: Any,
    endorsed: Any,
    cancelled: Any,
    fulfilled: Any,
) -> sa.ColumnElement[str]:
    """`domain.model.requirement_status` in SQL (checked against it by the as-of tests)."""
    return sa.case(
        (cancelled, "cancelled"),
        (fulfilled, "fulfilled"),
        (
            delivered > 0,
            sa.case(
                (sa.and_(requested > 0, delivered >= requested), "delivered"),
                else_="partially_delivered",
            ),
        ),
        (in_transit > 0, "in_transit"),
        (
            allocated > 0,
            sa.case(
                (sa.and_(requested > 0, allocated >= requested), "covered"),
                else_="partially_covered",
            ),
        ),
        (endorsed, "endorsed"),
        else_="submitted",
    )


def _requirements(end: datetime, only: Collection[str] | None) -> sa.Subquery:
    """Requirements as of `end`: their own stream's last version, the sums of their flows and
    the latest shortfall, all dated before it (`only` these requirements, if given)."""
    F = t.requirement_flows
    own = _own_requirements(end, only)
    dated = F.c.valid_from < end
    if only is not None:
        dated = sa.and_(dated, F.c.requirement_id.in_(only))
    flows = (
        sa.select(
            F.c.requirement_id,
            *(sa.func.sum(F.c[name]).label(name) for name in FLOW_FIGURES),
            sa.func.max(F.c.valid_from).label("flowed_at"),
        )
        .where(dated)
        .group_by(F.c.requirement_id)
        .subquery("flows")
    )
    shortfall = _latest_shortfall(end, only)
    figures: dict[str, sa.ColumnElement[int]] = {
        name: sa.func.coalesce(flows.c[name], 0) for name in FLOW_FIGURES
    }
    delivered = sa.case(
        (
            figures["delivered_shipments"] > own.c.delivered_recorded,
            figures["delivered_shipments"],
        ),
        else_=own.c.delivered_recorded,
    )
    derived: dict[str, sa.ColumnElement[Any]] = {
        **figures,
        "open_shortfall": shortfall.c.open_shortfall,
        "shortfall_reason": shortfall.c.shortfall_reason,
        "status": requirement_status(
            requested=own.c.requested,
            allocated=figures["allocated"],
            in_transit=figures["in_transit"],
            delivered=delivered,
            endorsed=own.c.endorsed,
            cancelled=own.c.cancelled,
            fulfilled=own.c.fulfilled,
        ),
        # The latest fact counted (the live board's is the latest applied).
        "updated_at": sa.case(
            (flows.c.flowed_at > own.c.valid_from, flows.c.flowed_at), else_=own.c.valid_from
        ),
    }
    columns = [
        (derived[c.name] if c.name in derived else own.c[c.name]).label(c.name)
        for c in t.requirements.columns
    ]
    return (
        sa.select(*columns)
        .select_from(
            own.outerjoin(flows, flows.c.requirement_id == own.c.requirement_id).outerjoin(
                shortfall, shortfall.c.requirement_id == own.c.requirement_id
            )
        )
        .subquery("requirements")
    )


def _latest_shortfall(end: datetime, only: Collection[str] | None) -> sa.Subquery:
    """Each requirement's latest shortfall dated before `end` (by business time; the same
    time twice: the later recorded)."""
    F = t.requirement_flows
    dated = F.c.valid_from < end
    if only is not None:
        dated = sa.and_(dated, F.c.requirement_id.in_(only))
    has = F.c.open_shortfall.is_not(None)
    latest_at = (
        sa.select(F.c.requirement_id, sa.func.max(F.c.valid_from).label("at"))
        .where(dated, has)
        .group_by(F.c.requirement_id)
        .subquery("shortfall_at")
    )
    latest_seq = (
        sa.select(sa.func.max(F.c.seq).label("seq"))
        .select_from(
            F.join(
                latest_at,
                sa.and_(
                    F.c.requirement_id == latest_at.c.requirement_id,
                    F.c.valid_from == latest_at.c.at,
                ),
            )
        )
        .where(has)
        .group_by(F.c.requirement_id)
        .subquery("shortfall_seq")
    )
    return (
        sa.select(F.c.requirement_id, F.c.open_shortfall, F.c.shortfall_reason)
        .select_from(F.join(latest_seq, F.c.seq == latest_seq.c.seq))
        .subquery("shortfalls")
    )
