"""The shared tables, version 3: dead letters kept, published and replayed.

Revision ID: 0004
Revises: 0003
"""

from shared.eventstore.migrations import eventstore_v3, eventstore_v3_downgrade

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    eventstore_v3()


def downgrade() -> None:
    eventstore_v3_downgrade()
