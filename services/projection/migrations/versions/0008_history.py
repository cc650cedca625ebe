"""The history by business time: a version of each row per event of its own stream
(`<row>_history`) and what other streams changed in a requirement's figures
(`requirement_flows`), for the read models as they stood at a date and the changes between two.

Revision ID: 0008
Revises: 0007

0002 creates the tables from the current metadata, so only schemas created before this revision
lack them. A generation upgraded in place has no history of the events it applied before; a
rebuild (`POST /admin/rebuild`) writes it from the topics (until then, as of a date and the
changes show only what was applied since).
"""

from alembic import op

from services.projection import tables as t

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = (*t.HISTORIES, t.requirement_flows)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind, checkfirst=True)
