"""Database plumbing: engines per service schema, migrations."""

from shared.db.engine import Database, is_postgres

__all__ = ["Database", "is_postgres"]
