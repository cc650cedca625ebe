"""Schema steps for the shared tables, called from every service's own Alembic revisions.

Each service's history starts with `eventstore_v1`, then `eventstore_v2`. When the shared tables
change again, add `eventstore_v3` with the change (spelled out with `op`, never from the current
metadata) and one new revision per service that calls it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.db.dialect import dialect_for
from shared.eventstore.tables import Json, Position


def eventstore_v1() -> None:
    """The event log, the relay's checkpoint, the consumers' tracking records, HTTP
    idempotency records (frozen as they were first created)."""
    op.create_table(
        "events",
        sa.Column("position", Position, sa.Identity(), primary_key=True),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
    )
    op.create_table(
        "relay_checkpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", Json, nullable=False),
        sa.Column("headers", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def eventstore_v1_downgrade() -> None:
    for table in (
        "idempotency_keys",
        "processed_events",
        "consumer_offsets",
        "relay_checkpoints",
        "events",
    ):
        op.drop_table(table)


def eventstore_v2() -> None:
    """Idempotency keys reserved while their command runs; dead letters held until Kafka has
    them (`shared.eventstore.tables`)."""
    bind = op.get_bind()
    dialect = dialect_for(bind.engine.url.render_as_string(hide_password=False))
    op.create_table(
        "idempotency_reservations",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        prefixes=list(dialect.scratch_table_prefixes),
    )
    op.create_table(
        "dead_letter_outbox",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("consumer", sa.String(100), nullable=False, index=True),
        sa.Column("topic", sa.String(300), nullable=False),
        sa.Column("original_topic", sa.String(200), nullable=False),
        sa.Column("original_partition", sa.Integer, nullable=False),
        sa.Column("original_offset", sa.BigInteger, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=True),
        sa.Column("headers", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    )


def eventstore_v2_downgrade() -> None:
    op.drop_table("dead_letter_outbox")
    op.drop_table("idempotency_reservations")
