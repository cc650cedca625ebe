"""Which failures are a message's fault (retried, then dead-lettered) and which are not: the
database connection itself, or a conflict with another writer (the whole batch is retried)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

# The database's verdicts on transactions that met another's: never a message's fault. Retried
# as a whole batch, they meet the other's work committed.
DEADLOCK, SERIALIZATION, LOCK_NOT_AVAILABLE, UNIQUE = "40P01", "40001", "55P03", "23505"
_CONCURRENCY = frozenset({DEADLOCK, SERIALIZATION, LOCK_NOT_AVAILABLE})


class RetryBatch(Exception):
    """The batch failed in a way a new transaction may not: another writer took a unique key
    meanwhile (the new one sees its row), or it was not looked up in the handler's record of
    applied events (now it is). Applied again whole before it is split message by message
    (in a pass that cannot lock rows in one order, and so can deadlock)."""


def is_connection_failure(exc: BaseException) -> bool:
    return (isinstance(exc, DBAPIError) and exc.connection_invalidated) or isinstance(
        exc, (ConnectionError, OSError)
    )


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, raised by the driver or wrapped by SQLAlchemy."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def is_concurrency_failure(exc: BaseException) -> bool:
    return sqlstate(exc) in _CONCURRENCY


def not_the_message(exc: BaseException) -> bool:
    """Whether the failure is the database's or another writer's, never the message's."""
    return is_connection_failure(exc) or is_concurrency_failure(exc)
