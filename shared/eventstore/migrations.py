"""Schema steps for the shared tables, called from every service's own Alembic revisions.

Each service's history starts with `eventstore_v1`, then `eventstore_v2`, `eventstore_v3`. When
the shared tables change again, add `eventstore_v4` with the change (spelled out with `op`, never
from the current metadata) and one new revision per service that calls it.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

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


# The dead letters' columns eventstore_v3 adds; all nullable, so that rows held before it fit.
_DEAD_LETTER_COLUMNS = (
    ("event_id", sa.Uuid),
    ("event_type", sa.String(100)),
    ("error_type", sa.String(200)),
    ("error", sa.Text),
    ("attempts", sa.Integer),
    ("published_at", sa.DateTime(timezone=True)),
    ("replayed_at", sa.DateTime(timezone=True)),
    ("replayed_by", sa.String(200)),
    ("replay_error", sa.Text),
)


def eventstore_v3() -> None:
    """Dead letters are kept (published, then replayed by an operator) rather than deleted once
    published: `dead_letter_outbox` becomes `dead_letters`, with what failed and the state of
    its publishing and replay. Rows held at the upgrade (not published yet) take what failed
    from their `dlq_*` headers."""
    op.rename_table("dead_letter_outbox", "dead_letters")
    op.drop_index("ix_dead_letter_outbox_consumer", table_name="dead_letters")
    op.create_index("ix_dead_letters_consumer", "dead_letters", ["consumer"])
    for name, kind in _DEAD_LETTER_COLUMNS:
        op.add_column("dead_letters", sa.Column(name, kind, nullable=True))
    table = sa.table(
        "dead_letters",
        sa.column("id", sa.Uuid),
        sa.column("headers", Json),
        sa.column("event_id", sa.Uuid),
        sa.column("event_type", sa.String),
        sa.column("error_type", sa.String),
        sa.column("error", sa.Text),
        sa.column("attempts", sa.Integer),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(table.c.id, table.c.headers)).all():
        bind.execute(table.update().where(table.c.id == row.id).values(**_failure(row.headers)))


def _failure(headers: list[list[str]]) -> dict[str, Any]:
    """What failed, from a held dead letter's headers (as `DeadLetters.hold` wrote them)."""
    h = {name: base64.b64decode(value).decode(errors="replace") for name, value in headers}
    try:
        event_id: uuid.UUID | None = uuid.UUID(h.get("ce_id", ""))
    except ValueError:
        event_id = None
    attempts = h.get("dlq_attempts", "")
    return {
        "event_id": event_id,
        "event_type": h.get("ce_type", "")[:100] or None,
        "error_type": h.get("dlq_error_type", "")[:200] or None,
        "error": h.get("dlq_error"),
        "attempts": int(attempts) if attempts.isascii() and attempts.isdigit() else None,
    }


def eventstore_v3_downgrade() -> None:
    """Back to the outbox: published rows go (the old code would publish them again)."""
    table = sa.table("dead_letters", sa.column("published_at", sa.DateTime(timezone=True)))
    op.get_bind().execute(table.delete().where(table.c.published_at.is_not(None)))
    for name, _ in reversed(_DEAD_LETTER_COLUMNS):
        op.drop_column("dead_letters", name)
    op.drop_index("ix_dead_letters_consumer", table_name="dead_letters")
    op.rename_table("dead_letters", "dead_letter_outbox")
    op.create_index("ix_dead_letter_outbox_consumer", "dead_letter_outbox", ["consumer"])
