"""The tables every service keeps in its own schema: the event log (which is also the outbox),
the relay's checkpoint, the consumers' tracking records and dead letters, and HTTP
idempotency records and reservations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

# JSONB on PostgreSQL, JSON text on SQLite.
Json = sa.JSON().with_variant(JSONB(), "postgresql")
# BIGINT identity on PostgreSQL; INTEGER PRIMARY KEY (the rowid) on SQLite.
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", Position, sa.Identity(), primary_key=True),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("stream_version", sa.Integer, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    # A second writer at the same expected version hits this and loses.
    sa.UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
)

relay_checkpoints = sa.Table(
    "relay_checkpoints",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Where each consumer is in each partition; written in the same transaction as its effect.
consumer_offsets = sa.Table(
    "consumer_offsets",
    metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("topic", sa.String(200), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Which events a consumer has applied: the relay may publish an event twice (at different
# offsets), and this is what keeps the second copy from having a second effect.
processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", Json, nullable=False),
    sa.Column("headers", Json, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# A key some request is running a command for right now (`shared.web.commands`): a second
# request with the key waits for the first's record instead of running the command again. Kept
# only while the command runs; a row left by a process that died is taken over once stale. On
# PostgreSQL the table is UNLOGGED (see `Dialect.scratch_table_prefixes`): its writes cost no
# WAL flush, and a crash of the server, which empties it, leaves nothing running anyway.
idempotency_reservations = sa.Table(
    "idempotency_reservations",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
)

# Every message a consumer could not apply, kept for operators (`aidline dlq`): written in its
# batch's transaction, published to its dead-letter topic once that has committed
# (`published_at`; so a batch rolled back publishes nothing, and no Kafka round trip happens
# inside a transaction), and replayed through the consumer's handler once the cause is fixed
# (`replayed_at`: `shared.messaging.consumer.redrive`). Created as `dead_letter_outbox`
# (eventstore_v2), when rows were deleted once published.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),  # the copies' `dlq_id` header
    sa.Column("consumer", sa.String(100), nullable=False, index=True),
    sa.Column("topic", sa.String(300), nullable=False),  # the dead-letter topic
    sa.Column("original_topic", sa.String(200), nullable=False),
    sa.Column("original_partition", sa.Integer, nullable=False),
    sa.Column("original_offset", sa.BigInteger, nullable=False),
    sa.Column("key", sa.LargeBinary, nullable=True),
    sa.Column("value", sa.LargeBinary, nullable=True),
    # The record's headers and the `dlq_*` ones: [[name, base64 value], ...]
    sa.Column("headers", Json, nullable=False),
    # Set by the copy publishing it (copies of a consumer share the table), until then.
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # What failed (None: a message that is not a well-formed CloudEvent has no event id/type).
    sa.Column("event_id", sa.Uuid, nullable=True),
    sa.Column("event_type", sa.String(100), nullable=True),
    sa.Column("error_type", sa.String(200), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=True),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("replayed_by", sa.String(200), nullable=True),
    # Why the last replay failed (the letter stays; cleared by the replay that succeeds).
    sa.Column("replay_error", sa.Text, nullable=True),
)
