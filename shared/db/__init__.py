"""Database plumbing: engines per service schema, one module per backend, migrations."""

from shared.db.engine import Database

__all__ = ["Database"]
