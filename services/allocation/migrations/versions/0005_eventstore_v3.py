"""The shared tables, version 3: dead letters kept, published and replayed.

Revision ID: 0005
Revises: 0004
"""

from shared.eventstore.migrations import eventstore_v3, eventstore_v3_downgrade

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    eventstore_v3()


def downgrade() -> None:
    eventstore_v3_downgrade()
