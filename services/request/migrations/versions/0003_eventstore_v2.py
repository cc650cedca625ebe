"""The shared tables, version 2: idempotency reservations, the dead-letter outbox.

Revision ID: 0003
Revises: 0002
"""

from shared.eventstore.migrations import eventstore_v2, eventstore_v2_downgrade

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    eventstore_v2()


def downgrade() -> None:
    eventstore_v2_downgrade()
