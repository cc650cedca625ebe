"""The projection's tables (in each generation's schema; see `generations.py`).

One row per requirement, pledge, allocation, shipment, forum decision and catalogue item, kept
current by the consumer; the ledgers, gaps, hub boards and decisions' execution are grouped from
them when asked. Beside them, the history by business time: a version of each row per event of
its own stream (`<row>_history`) and what other streams changed in a requirement's figures
(`requirement_flows`), so that the read models as they stood at a date are an indexed
aggregate (`as_of.py`). `audit` keeps every event applied (the audit trail, shipment timelines, the
reasons a shipment is stuck, and the resume point of the live stream). `generations` (used in
the base schema only) says which generation answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from services.projection.domain.history import FLOW_FIGURES, REQUIREMENT_OWN
from shared.eventstore.tables import Position

metadata = sa.MetaData()


def _time(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def _lineage() -> tuple[sa.Column[str], sa.Column[str]]:
    """The forum decisions an allocation or shipment executes (null: not known)."""
    return (
        sa.Column("endorsed_by_decision", sa.String(200), nullable=True),
        sa.Column("confirmed_by_decision", sa.String(200), nullable=True),
    )


items = sa.Table(
    "items",
    metadata,
    sa.Column("item_code", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("capability", sa.String(100), nullable=False),
    sa.Column("unit", sa.String(50), nullable=False),
)

requirements = sa.Table(
    "requirements",
    metadata,
    sa.Column("requirement_id", sa.String(200), primary_key=True),
    sa.Column("item_code", sa.String(100), nullable=False),
    sa.Column("unit", sa.String(50), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("needed_by", sa.Date, nullable=True),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("requested", sa.Integer, nullable=False),
    sa.Column("pledged", sa.Integer, nullable=False),
    sa.Column("allocated", sa.Integer, nullable=False),
    sa.Column("in_transit", sa.Integer, nullable=False),
    sa.Column("delivered_shipments", sa.Integer, nullable=False),
    sa.Column("delivered_recorded", sa.Integer, nullable=False),
    sa.Column("open_shortfall", sa.Integer, nullable=True),
    sa.Column("endorsed", sa.Boolean, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("fulfilled", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(30), nullable=False, index=True),
    _time("submitted_at"),
    _time("updated_at"),
    sa.Column("decision_id", sa.String(200), nullable=True),
    sa.Column("shortfall_reason", sa.Text, nullable=True),
    sa.Index("ix_requirements_item_code", "item_code"),
    sa.Index("ix_requirements_decision", "decision_id"),
)

pledges = sa.Table(
    "pledges",
    metadata,
    sa.Column("pledge_id", sa.String(200), primary_key=True),
    sa.Column("donor", sa.String(10), nullable=False, index=True),
    sa.Column("item_code", sa.String(100), nullable=False),
    sa.Column("unit", sa.String(50), nullable=False),
    sa.Column("source", sa.String(30), nullable=False),
    sa.Column("available_from", sa.Date, nullable=True),
    sa.Column("announced_quantity", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("value_eur", sa.Float, nullable=True),
    sa.Column("status", sa.String(30), nullable=False),
    _time("announced_at"),
    _time("confirmed_at"),
    _time("updated_at"),
    sa.Column("decision_id", sa.String(200), nullable=True),
    sa.Index("ix_pledges_decision", "decision_id"),
)

allocations = sa.Table(
    "allocations",
    metadata,
    sa.Column("allocation_id", sa.String(200), primary_key=True),
    sa.Column("requirement_id", sa.String(200), nullable=False),
    sa.Column("pledge_id", sa.String(200), nullable=False, index=True),
    sa.Column("item_code", sa.String(100), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("hub", sa.String(50), nullable=False),
    sa.Column("handover_by", sa.Date, nullable=True),
    sa.Column("status", sa.String(30), nullable=False),
    _time("proposed_at"),
    _time("updated_at"),
    *_lineage(),
    sa.Index("ix_allocations_requirement", "requirement_id"),
)

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("shipment_id", sa.String(200), primary_key=True),
    sa.Column("allocation_id", sa.String(200), nullable=False),
    sa.Column("requirement_id", sa.String(200), nullable=False),
    sa.Column("pledge_id", sa.String(200), nullable=False),
    sa.Column("donor", sa.String(10), nullable=False, index=True),
    sa.Column("item_code", sa.String(100), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("hub", sa.String(50), nullable=False),
    sa.Column("handover_point", sa.String(200), nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("mode", sa.String(20), nullable=True),
    sa.Column("carrier_ref", sa.String(200), nullable=True),
    sa.Column("eta", sa.Date, nullable=True),
    sa.Column("delayed", sa.Boolean, nullable=False),
    _time("planned_at"),
    _time("dispatched_at"),
    _time("arrived_at"),
    _time("inspected_at"),
    _time("departed_at"),
    _time("handed_over_at"),
    _time("received_at"),
    _time("lost_at"),
    sa.Column("received_good", sa.Integer, nullable=False),
    sa.Column("damaged", sa.Integer, nullable=False),
    sa.Column("short", sa.Integer, nullable=False),
    sa.Column("lost_quantity", sa.Integer, nullable=False),
    _time("updated_at"),
    *_lineage(),
    sa.Index("ix_shipments_hub_status", "hub", "status"),
    # A decision's execution gathers its requirements' and pledges' shipments.
    sa.Index("ix_shipments_requirement", "requirement_id"),
    sa.Index("ix_shipments_pledge", "pledge_id"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.String(200), primary_key=True),
    sa.Column("meeting_date", sa.Date, nullable=True),
    sa.Column("reference", sa.String(500), nullable=False),
    sa.Column("endorsed", sa.Integer, nullable=False),
    sa.Column("confirmed", sa.Integer, nullable=False),
    _time("recorded_at"),
    sa.Index("ix_decisions_meeting", "meeting_date"),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", Position, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("actor", sa.String(300), nullable=False),  # sub (200) @ hub (50)
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=True),  # X-Correlation-ID
    sa.Column("causation_id", sa.String(100), nullable=True),
    sa.Column("stream_version", sa.Integer, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    # JSON, not JSONB: kept and served as received, never queried inside — and PostgreSQL
    # only checks JSON where it would parse JSONB (about a third of the row's insert cost).
    sa.Column("data", sa.JSON, nullable=False),
    # Whose movement a shipment event describes, for redaction (see visibility.py).
    sa.Column("scope_hub", sa.String(50), nullable=True),
    sa.Column("scope_donor", sa.String(10), nullable=True),
    sa.Index("ix_audit_stream", "stream_id", "seq"),
)


# -- history by business time (domain/history.py; as_of.py reads it) -------------------------


def _history(live: sa.Table, names: Sequence[str] | None = None) -> sa.Table:
    """`<table>_history`: a version of a `live` row (those columns) per event of its own stream,
    valid from the event's business time; `seq` is the order recorded, which is each stream's
    order."""
    (key,) = live.primary_key.columns
    kept = [c for c in live.columns if names is None or c.name in names]
    name = f"{live.name.removesuffix('s')}_history"
    return sa.Table(
        name,
        metadata,
        sa.Column("seq", Position, sa.Identity(), primary_key=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=True),
        *(sa.Column(c.name, c.type, nullable=c.nullable) for c in kept),
        # As of a date: the last version of each key dated before it; the changes between two
        # dates: the versions dated between them.
        sa.Index(f"ix_{name}_key", key.name, "seq"),
        sa.Index(f"ix_{name}_valid_from", "valid_from"),
    )


requirement_history = _history(requirements, REQUIREMENT_OWN)
pledge_history = _history(pledges)
allocation_history = _history(allocations)
shipment_history = _history(shipments)
decision_history = _history(decisions)

# What another stream's event changed in a requirement's figures (a difference each), or the
# planner's open shortfall it set.
requirement_flows = sa.Table(
    "requirement_flows",
    metadata,
    sa.Column("seq", Position, sa.Identity(), primary_key=True),
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("requirement_id", sa.String(200), nullable=False),
    *(sa.Column(name, sa.Integer, nullable=False) for name in FLOW_FIGURES),
    sa.Column("open_shortfall", sa.Integer, nullable=True),
    sa.Column("shortfall_reason", sa.Text, nullable=True),
    sa.Index("ix_requirement_flows_valid_from", "valid_from"),
    sa.Index("ix_requirement_flows_key", "requirement_id", "valid_from"),
    # Shortfalls are few among the flows: as of a date they are found without a scan.
    sa.Index(
        "ix_requirement_flows_shortfall",
        "requirement_id",
        "valid_from",
        postgresql_where=sa.text("open_shortfall IS NOT NULL"),
        sqlite_where=sa.text("open_shortfall IS NOT NULL"),
    ),
)

HISTORIES = (
    requirement_history,
    pledge_history,
    allocation_history,
    shipment_history,
    decision_history,
)

generations = sa.Table(
    "generations",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("schema_name", sa.String(63), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # building | active | retired | failed
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    _time("activated_at"),
)
