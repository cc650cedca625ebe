"""Whether a failure is the database's passing state rather than the work's: the connection
lost, the server shutting down or restarting, read-only, disk full, timed out, busy (also: no
connection free in the service's pool in time). Such work
is retried as it was (a consumer's batch), or answered 503 (a command)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db.dialect import Dialect


def is_connection_failure(exc: BaseException) -> bool:
    return (isinstance(exc, DBAPIError) and exc.connection_invalidated) or isinstance(
        exc, (ConnectionError, OSError)
    )


def database_unavailable(exc: BaseException, dialect: Dialect) -> bool:
    # No connection free in the pool within its timeout: the database is busy for us.
    return is_connection_failure(exc) or isinstance(exc, PoolTimeout) or dialect.is_transient(exc)
