"""The shared event-store tables.

Revision ID: 0001
Revises:
"""

from shared.eventstore.migrations import eventstore_v1, eventstore_v1_downgrade

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    eventstore_v1()


def downgrade() -> None:
    eventstore_v1_downgrade()
