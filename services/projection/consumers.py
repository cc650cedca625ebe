"""Applies the three topics' events to the read models, a batch at a time.

The shared `EventConsumer` hands over a partition's batch inside the transaction that also
records it as processed, so every change here commits exactly once. Per batch: decode with each
topic's catalogue (unknown types are kept in the audit trail and otherwise ignored), load the
rows the batch touches in one query per table, apply the events in memory (pure domain), then
write the changed rows back with one upsert per table and the audit rows with one insert.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projection import tables as t
from services.projection.domain import Allocation, Changes, Pledge, Requirement, Shipment, keys_of
from services.projection.domain.model import ItemRow, Row
from shared.catalogue import base_items
from shared.db.postgres import PostgresDialect, driver_connection
from shared.db.sqlite import SqliteDialect
from shared.domain import DomainEvent, EventCatalogue, UnknownEventType
from shared.eventstore import Transaction
from shared.messaging.consumer import Message

RowT = TypeVar("RowT", bound=Row)

_TABLES: dict[type[Row], sa.Table] = {
    Requirement: t.requirements,
    Pledge: t.pledges,
    Allocation: t.allocations,
    Shipment: t.shipments,
    ItemRow: t.items,
}


AUDIT_COLUMNS = (
    "event_id", "stream_id", "event_type", "source", "actor", "time", "correlation_id",
    "causation_id", "stream_version", "schema_version", "topic", "partition", "offset", "data",
    "scope_hub", "scope_donor",
)  # fmt: skip


# PostgreSQL statements take a batch's rows as ONE array of the table's own row type
# (`$1::"requirements"[]`, each row a tuple in column order, which is the rows' field order —
# tested): one statement whatever the number of rows, and the driver encodes each row's fields
# directly (with an array per column it inspected every element for nested arrays, ~5 % of a
# replay's CPU).


def _upsert_sql(table: sa.Table) -> str:
    """Upsert of whole rows."""
    key = [c.name for c in table.primary_key.columns]
    updates = ", ".join(
        f'"{c.name}" = EXCLUDED."{c.name}"' for c in table.columns if c.name not in key
    )
    conflict = ", ".join(f'"{c}"' for c in key)
    return (
        f'INSERT INTO "{table.name}" SELECT * FROM unnest($1::"{table.name}"[]) '
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )


def _update_sql(table: sa.Table) -> str:
    """Update of whole rows known to exist (loaded in this transaction): cheaper than an
    upsert, which tries an insert first."""
    key = [c.name for c in table.primary_key.columns]
    updates = ", ".join(f'"{c.name}" = v."{c.name}"' for c in table.columns if c.name not in key)
    match = " AND ".join(f't."{c}" = v."{c}"' for c in key)
    return (
        f'UPDATE "{table.name}" AS t SET {updates} '
        f'FROM unnest($1::"{table.name}"[]) AS v WHERE {match}'
    )


def _claim_sql(table: sa.Table) -> str:
    """Insert of new rows, skipping keys that exist (after waiting for a writer that is
    inserting them); returns the keys it inserted."""
    (key,) = [c.name for c in table.primary_key.columns]
    return (
        f'INSERT INTO "{table.name}" SELECT * FROM unnest($1::"{table.name}"[]) '
        f'ON CONFLICT ("{key}") DO NOTHING RETURNING "{key}"'
    )


def _upsert(table: sa.Table, postgres: bool) -> Any:
    insert = postgresql.insert(table) if postgres else sqlite.insert(table)
    key = [c.name for c in table.primary_key.columns]
    return insert.on_conflict_do_update(
        index_elements=key,
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in key},
    )


class ReadModelWriter:
    """The projection's batch handler: `await writer(tx, messages)`."""

    def __init__(self, catalogues: Mapping[str, EventCatalogue], *, postgres: bool) -> None:
        self.catalogues = catalogues  # topic name -> the catalogue of its events
        self.postgres = postgres
        self._dialect = PostgresDialect() if postgres else SqliteDialect()
        self._upserts = {kind: _upsert(table, postgres) for kind, table in _TABLES.items()}
        self._pg_upserts = {kind: _upsert_sql(table) for kind, table in _TABLES.items()}
        self._pg_updates = {kind: _update_sql(table) for kind, table in _TABLES.items()}
        self._claims = {k: _claim_sql(table) for k, table in _TABLES.items() if k.SHARED}
        self._columns = {kind: [c.name for c in table.columns] for kind, table in _TABLES.items()}
        self._values = {kind: attrgetter(*columns) for kind, columns in self._columns.items()}

    async def __call__(self, tx: Transaction, messages: Sequence[Message]) -> None:
        if self.postgres:
            # Read models are rebuilt from Kafka, and the tracking records commit with them:
            # a crash may lose the last commits, never split them, so the consumer re-applies
            # exactly what was lost. No need to wait for the disk on every batch.
            await tx.conn.execute(sa.text("SET LOCAL synchronous_commit TO off"))
        decoded = [(m, self._decode(m)) for m in messages]
        known = [(event, m.event.subject) for m, event in decoded if event is not None]
        keys = keys_of(known)
        conn = tx.conn
        allocations = await _load(conn, Allocation, keys.allocations)
        shipments = await _load(conn, Shipment, keys.shipments)
        referenced = {a.requirement_id for a in allocations.values()}
        referenced |= {s.requirement_id for s in shipments.values()}
        wanted = (keys.requirements | referenced) - {""}
        requirements = await _load(conn, Requirement, wanted)
        claimed, inserted = await self._claim(conn, Requirement, wanted - set(requirements))
        requirements |= claimed
        pledges = await _load(conn, Pledge, keys.pledges)
        # Rows the database has; the others are new in this batch (inserted by COPY).
        stored = {
            Requirement: set(requirements),
            Pledge: set(pledges),
            Allocation: set(allocations),
            Shipment: set(shipments),
        }
        changes = Changes(requirements, pledges, allocations, shipments)
        audit_rows = []
        for message, event in decoded:
            env = message.event
            scope = None if event is None else changes.apply(event, env.subject, env.time)
            meta = env.meta
            if not self.postgres:
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
            await self._write(conn, kind, changes.dirty(kind), have)
        unused = inserted - {r.key for r in changes.dirty(Requirement)}
        if unused:  # inserted for nothing: no placeholder outlives the batch
            driver = await driver_connection(conn)
            await driver.execute(
                f'DELETE FROM "{t.requirements.name}" WHERE "{Requirement.KEY}" = ANY($1::text[])',
                sorted(unused),
            )
        await self._write(conn, ItemRow, [changes.items[k] for k in sorted(changes.items)], None)
        await self._dialect.insert_rows(conn, t.audit, AUDIT_COLUMNS, audit_rows)

    async def _claim(
        self, conn: AsyncConnection, kind: type[RowT], missing: set[str]
    ) -> tuple[dict[str, RowT], set[str]]:
        """Rows of a SHARED kind this batch would create, inserted now (as new rows), in key
        order: another writer creating one of them meanwhile is waited for, and its row is
        loaded and locked instead. Without this both would insert the row, and one batch would
        fail on the key. Returns the rows, new and loaded, and the keys of the new ones."""
        if not (self.postgres and kind.SHARED and missing):
            return {}, set()
        driver = await driver_connection(conn)
        new = [kind(key) for key in sorted(missing)]  # type: ignore[call-arg]
        values = self._values[kind]
        inserted = await driver.fetch(self._claims[kind], [values(r) for r in new])
        mine = {record[0] for record in inserted}
        rows: dict[str, RowT] = {r.key: r for r in new if r.key in mine}
        return rows | await _load(conn, kind, missing - mine), mine

    def _decode(self, message: Message) -> DomainEvent | None:
        catalogue = self.catalogues.get(message.topic)
        env = message.event
        if catalogue is None:
            return None
        try:
            return catalogue.decode(env.event_type, env.schema_version, env.data)
        except UnknownEventType:
            return None  # a newer producer's type: audited, not projected

    async def _write(
        self, conn: AsyncConnection, kind: type[Row], rows: Sequence[Row], stored: set[str] | None
    ) -> None:
        """Write back changed rows: those not `stored` yet by COPY (cheapest for both sides; a
        row another instance inserted meanwhile fails the batch, which is then applied message
        by message and finds it), the `stored` ones by update; without `stored`, by upsert."""
        if not rows:
            return
        if not self.postgres:
            await conn.execute(self._upserts[kind], [row.as_row() for row in rows])
            return
        driver = await driver_connection(conn)
        statement = self._pg_upserts[kind]
        if stored is not None:
            new = [row for row in rows if row.key not in stored]
            if new:
                values = self._values[kind]
                await driver.copy_records_to_table(
                    _TABLES[kind].name,
                    records=[values(r) for r in new],
                    columns=self._columns[kind],
                )
                rows = [row for row in rows if row.key in stored]
            if not rows:
                return
            statement = self._pg_updates[kind]  # all of them exist
        values = self._values[kind]
        await driver.execute(statement, [values(r) for r in rows])


async def _load(conn: AsyncConnection, kind: type[RowT], keys: Iterable[str]) -> dict[str, RowT]:
    wanted = list(keys)
    if not wanted:
        return {}
    table = _TABLES[kind]
    if conn.dialect.name == "postgresql":  # one prepared statement, rows straight into fields
        driver = await driver_connection(conn)
        # Locked (in key order) until the batch commits: two instances sharing a generation,
        # applying different topics to one requirement, would otherwise both write back a row
        # read before the other's change, and one change would be lost.
        found = await driver.fetch(
            f'SELECT * FROM "{table.name}" WHERE "{kind.KEY}" = ANY($1::text[])'
            f' ORDER BY "{kind.KEY}" FOR UPDATE',
            wanted,
        )
        rows = [kind(*record) for record in found]  # columns in field order (tested)
    else:
        result = await conn.execute(sa.select(table).where(table.c[kind.KEY].in_(wanted)))
        rows = [kind(**r._mapping) for r in result]
    return {row.key: row for row in rows}


async def seed_items(conn: AsyncConnection, postgres: bool) -> None:
    """The shipped catalogue; `catalogue.item_added` events add to it."""
    rows = [ItemRow(i.code, i.name, i.capability, i.unit).as_row() for i in base_items().values()]
    await conn.execute(_upsert(t.items, postgres), rows)
