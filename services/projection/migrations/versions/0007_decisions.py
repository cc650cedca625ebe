"""Forum decisions and their lineage: the `decisions` table; the decision that endorsed a
requirement (and why its shortfall is open) and confirmed a pledge; the decisions each
allocation and shipment executes; indexes to gather a decision's execution.

Revision ID: 0007
Revises: 0006

0002 creates the tables from the current metadata, so only schemas created before this revision
lack them. New columns go at the end of their table, as in the metadata: the writer relies on
the column order (tests/integration/test_projection_generations.py). Rows projected before it
have no lineage; a rebuild (`POST /admin/rebuild`) fills it in from the topics.
"""

import sqlalchemy as sa
from alembic import op

from services.projection import tables as t

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# New columns, in their metadata order, and the new indexes, per table.
COLUMNS = {
    t.requirements: ("decision_id", "shortfall_reason"),
    t.pledges: ("decision_id",),
    t.allocations: ("endorsed_by_decision", "confirmed_by_decision"),
    t.shipments: ("endorsed_by_decision", "confirmed_by_decision"),
}
INDEXES = {
    t.requirements: ("ix_requirements_decision",),
    t.pledges: ("ix_pledges_decision",),
    t.allocations: ("ix_allocations_requirement",),
    t.shipments: ("ix_shipments_requirement", "ix_shipments_pledge"),
}


def _columns(table: str) -> set[str]:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        return {row[1] for row in bind.execute(sa.text(f'PRAGMA table_info("{table}")'))}
    found = bind.execute(
        sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = :table"
        ),
        {"table": table},
    )
    return {name for (name,) in found}


def upgrade() -> None:
    bind = op.get_bind()
    t.decisions.create(bind, checkfirst=True)
    for table, names in COLUMNS.items():
        have = _columns(table.name)
        for name in names:
            if name not in have:
                column = table.c[name]
                op.add_column(table.name, sa.Column(name, column.type, nullable=True))
    for table, index_names in INDEXES.items():
        for index in table.indexes:
            if index.name in index_names:
                index.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for index_names in INDEXES.values():
        for name in index_names:
            op.execute(f'DROP INDEX IF EXISTS "{name}"')
    for table, names in COLUMNS.items():
        with op.batch_alter_table(table.name) as batch:
            for name in names:
                batch.drop_column(name)
    t.decisions.drop(bind, checkfirst=True)
