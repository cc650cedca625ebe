"""Applies the three topics' events to the read models, a batch at a time.

The shared `EventConsumer` hands over a partition's batch inside the transaction that also
records it as processed, so every change here commits exactly once. Per batch: decode with each
topic's registry (unknown types are kept in the audit trail and otherwise ignored), load the
rows the batch touches in one query per table, apply the events in memory (pure domain), then
write the changed rows back with one upsert per table and the audit rows with one insert.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projection import tables as t
from services.projection.domain import (
    Allocation,
    Changes,
    Decision,
    Pledge,
    Requirement,
    Shipment,
    keys_of,
)
from services.projection.domain.model import ItemRow, Row
from services.projection.settings import ProjectionSettings
from shared.catalogue import base_items
from shared.contracts import REGISTRIES
from shared.domain import DomainEvent, EventRegistry, UnknownEventType
from shared.eventstore import Transaction
from shared.messaging.consumer import Message
from shared.readmodels import ReadModelSink, Values, sink_for
from shared.runtime import ConsumerSpec

RowT = TypeVar("RowT", bound=Row)

NAME = "projection"


def consumers(settings: ProjectionSettings) -> list[ConsumerSpec]:
    """The projection's one consumer: every topic into the read models, a batch at a time.
    Each generation runs it in a consumer group of its own (`projection-g<n>`,
    see generations.py)."""
    registries = {topic: REGISTRIES[own] for topic, own in settings.topics.items()}
    return [ConsumerSpec(NAME, list(settings.topics), batch_handler=ReadModelWriter(registries))]


# Each read-model row's table (their columns are the row's fields, in order: tested).
ROW_TABLES: dict[type[Row], sa.Table] = {
    Requirement: t.requirements,
    Pledge: t.pledges,
    Allocation: t.allocations,
    Shipment: t.shipments,
    Decision: t.decisions,
    ItemRow: t.items,
}


# Each row kind's history table (its columns after `seq`: valid_from, event_type, event_id and
# the row's own).
HISTORY_TABLES: dict[type[Row], sa.Table] = {
    Requirement: t.requirement_history,
    Pledge: t.pledge_history,
    Allocation: t.allocation_history,
    Shipment: t.shipment_history,
    Decision: t.decision_history,
}
FLOW_COLUMNS = tuple(c.name for c in t.requirement_flows.columns if c.name != "seq")


def _history_columns(table: sa.Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name != "seq")


HISTORY_COLUMNS = {kind: _history_columns(table) for kind, table in HISTORY_TABLES.items()}
# A row's own columns in its history table, in order (after valid_from, event_type, event_id).
_HISTORY_VALUES = {kind: attrgetter(*columns[3:]) for kind, columns in HISTORY_COLUMNS.items()}


class TableHistory:
    """The projector's history recorder for the batch handler: each version and flow made
    straight into its history table's row (a tuple in column order). `domain.History` keeps a
    snapshot of the row and a `Version` per event, turned into the same tuple afterwards:
    a copy of the row's `__dict__`, a new row and a frozen dataclass per event for nothing
    (unit-tested: the same rows, tests/unit/test_projection_history_rows.py)."""

    def __init__(self) -> None:
        self.versions: dict[type[Row], list[Values]] = {kind: [] for kind in HISTORY_TABLES}
        self.flows: list[Values] = []

    def version(self, row: Row, event_type: str, at: datetime, event_id: UUID | None) -> None:
        kind = type(row)
        self.versions[kind].append((at, event_type, event_id, *_HISTORY_VALUES[kind](row)))

    def flow(
        self,
        requirement_id: str,
        event_type: str,
        at: datetime,
        pledged: int = 0,
        allocated: int = 0,
        in_transit: int = 0,
        delivered_shipments: int = 0,
        open_shortfall: int | None = None,
        shortfall_reason: str | None = None,
    ) -> None:
        self.flows.append(
            (at, event_type, requirement_id, pledged, allocated, in_transit,
             delivered_shipments, open_shortfall, shortfall_reason)
        )  # fmt: skip


AUDIT_COLUMNS = (
    "event_id", "stream_id", "event_type", "source", "actor", "time", "correlation_id",
    "causation_id", "stream_version", "schema_version", "topic", "partition", "offset", "data",
    "scope_hub", "scope_donor",
)  # fmt: skip


class ReadModelWriter:
    """The projection's batch handler: `await writer(tx, messages)`, through the read-model
    sink of the transaction's database (`shared.readmodels`)."""

    def __init__(self, registries: Mapping[str, EventRegistry]) -> None:
        self.registries = registries  # topic name -> the registry of its events
        self._values = {
            kind: attrgetter(*(c.name for c in table.columns)) for kind, table in ROW_TABLES.items()
        }

    async def __call__(self, tx: Transaction, messages: Sequence[Message]) -> None:
        sink = sink_for(tx.store.db)
        conn = tx.conn
        await sink.begin_batch(conn)
        decoded = [(m, self._decode(m)) for m in messages]
        known = [(event, m.event.subject) for m, event in decoded if event is not None]
        keys = keys_of(known)
        allocations = await _load(sink, conn, Allocation, keys.allocations)
        shipments = await _load(sink, conn, Shipment, keys.shipments)
        referenced = {a.requirement_id for a in allocations.values()}
        referenced |= {s.requirement_id for s in shipments.values()}
        wanted = (keys.requirements | referenced) - {""}
        requirements = await _load(sink, conn, Requirement, wanted)
        claimed, inserted = await self._claim(sink, conn, Requirement, wanted - set(requirements))
        requirements |= claimed
        pledges = await _load(sink, conn, Pledge, keys.pledges)
        decisions = await _load(sink, conn, Decision, keys.decisions)
        # Rows the database has; the others are new in this batch (inserted by COPY).
        stored = {
            Requirement: set(requirements),
            Pledge: set(pledges),
            Allocation: set(allocations),
            Shipment: set(shipments),
            Decision: set(decisions),
        }
        changes = Changes(requirements, pledges, allocations, shipments, decisions, TableHistory())
        audit_rows = []
        as_text = sink.json_as_text
        for message, event in decoded:
            env = message.event
            scope = (
                None
                if event is None
                else changes.apply(event, env.subject, env.occurred_at, env.event_id)
            )
            meta = env.meta
            if not as_text:
                data: Any = env.data
            elif message.raw is not None:  # the JSON as received: no need to encode it again
                data = message.raw.decode()
            else:
                data = json.dumps(env.data)
            audit_rows.append(
                (
                    env.event_id, env.subject, env.event_type, env.source, meta.actor, env.time,
                    meta.correlation_id, meta.causation_id, env.stream_version,
                    env.schema_version, message.topic, message.partition, message.offset,
                    data, scope.hub if scope else None, scope.donor if scope else None,
                )
            )  # fmt: skip
        for kind, have in stored.items():
            await self._write(sink, conn, kind, changes.dirty(kind), have)
        # Inserted for nothing: no placeholder outlives the batch.
        await sink.delete(
            conn, t.requirements, inserted - {r.key for r in changes.dirty(Requirement)}
        )
        items = [changes.items[k] for k in sorted(changes.items)]
        await self._write(sink, conn, ItemRow, items, None)
        # Audit rows get their `seq` in commit order, also with several instances (or a
        # rebuild's helpers) writing at once: the live stream follows `seq` and would pass over
        # a row whose transaction commits after a later-numbered one's. In order from here to
        # the commit only: the batch's loads and writes above still run side by side. The
        # commit is announced, so every instance's stream and read-your-writes wake up.
        await sink.commit_in_order(conn, tx.store.db.schema)
        await sink.insert(conn, t.audit, AUDIT_COLUMNS, audit_rows)
        await self._write_history(sink, conn, changes.history)

    async def _write_history(
        self, sink: ReadModelSink, conn: AsyncConnection, history: TableHistory
    ) -> None:
        """The batch's versions and flows, in the order made (each stream's order)."""
        for kind, rows in history.versions.items():
            table = HISTORY_TABLES[kind]
            await sink.insert(conn, table, HISTORY_COLUMNS[kind], rows)
        await sink.insert(conn, t.requirement_flows, FLOW_COLUMNS, history.flows)

    async def _claim(
        self, sink: ReadModelSink, conn: AsyncConnection, kind: type[RowT], missing: set[str]
    ) -> tuple[dict[str, RowT], set[str]]:
        """Rows of a SHARED kind this batch would create, inserted now (as new rows), in key
        order: another writer creating one of them meanwhile is waited for, and its row is
        loaded and locked instead. Without this both would insert the row, and one batch would
        fail on the key. Returns the rows, new and loaded, and the keys of the new ones."""
        if not (sink.concurrent_writers and kind.SHARED and missing):
            return {}, set()
        new = [kind(key) for key in sorted(missing)]  # type: ignore[call-arg]
        values = self._values[kind]
        mine = await sink.claim(conn, ROW_TABLES[kind], [values(r) for r in new])
        rows: dict[str, RowT] = {r.key: r for r in new if r.key in mine}
        return rows | await _load(sink, conn, kind, missing - mine), mine

    def _decode(self, message: Message) -> DomainEvent | None:
        registry = self.registries.get(message.topic)
        env = message.event
        if registry is None:
            return None
        try:
            return registry.decode(env.event_type, env.schema_version, env.data)
        except UnknownEventType:
            return None  # a newer producer's type: audited, not projected

    async def _write(
        self,
        sink: ReadModelSink,
        conn: AsyncConnection,
        kind: type[Row],
        rows: Sequence[Row],
        stored: set[str] | None,
    ) -> None:
        """Write back changed rows: those not `stored` yet as new rows (a row another instance
        inserted meanwhile fails the batch, which is then applied message by message and finds
        it), the `stored` ones by update; without `stored`, by upsert."""
        values = self._values[kind]
        await sink.write(conn, ROW_TABLES[kind], [values(r) for r in rows], stored)


async def _load(
    sink: ReadModelSink, conn: AsyncConnection, kind: type[RowT], keys: Iterable[str]
) -> dict[str, RowT]:
    found = await sink.load(conn, ROW_TABLES[kind], list(keys))
    rows = [kind(*record) for record in found]  # columns in field order (tested)
    return {row.key: row for row in rows}


async def seed_items(conn: AsyncConnection, sink: ReadModelSink) -> None:
    """The shipped catalogue; `catalogue.item_added` events add to it."""
    rows = [ItemRow(i.code, i.name, i.capability, i.unit) for i in base_items().values()]
    values = attrgetter(*(c.name for c in t.items.columns))
    await sink.write(conn, t.items, [values(r) for r in rows], None)
