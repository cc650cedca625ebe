"""Schema steps for the shared tables, called from every service's own Alembic revisions.

Each service's history starts with `eventstore_v1`. When the shared tables change, freeze v1 first
(spell out today's tables here with `op.create_table`), then add `eventstore_v2` with the change
and one new revision per service that calls it.
"""

from __future__ import annotations

from alembic import op

from shared.eventstore.tables import metadata


def eventstore_v1() -> None:
    metadata.create_all(bind=op.get_bind())


def eventstore_v1_downgrade() -> None:
    metadata.drop_all(bind=op.get_bind())
