"""A shipment's stored view keys it as `shipment_id` (was `id`): every resource's own key is
`<kind>_id` (docs/DESIGN.md §4).

Revision ID: 0006
Revises: 0005

The views are rewritten here, once, rather than renamed on every read: the column then holds
one shape only, and the list and the one-shipment answer stay "as stored". Done row by row in
Python so that it is the same on PostgreSQL and SQLite (the JSON functions differ); the table
holds one row per shipment.
"""

import sqlalchemy as sa
from alembic import op

from shared.eventstore.tables import Json

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

shipments = sa.table("shipments", sa.column("shipment_id", sa.String(200)), sa.column("view", Json))


def _rename(old: str, new: str) -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(shipments.c.shipment_id, shipments.c.view)).all():
        view = dict(row.view)
        if old not in view:
            continue
        renamed = {(new if key == old else key): value for key, value in view.items()}
        bind.execute(
            shipments.update()
            .where(shipments.c.shipment_id == row.shipment_id)
            .values(view=renamed)
        )


def upgrade() -> None:
    _rename("id", "shipment_id")


def downgrade() -> None:
    _rename("shipment_id", "id")
