"""Which failures are a message's fault (retried, then dead-lettered) and which are not: the
database's passing state (connection lost, shutting down, read-only, disk full, timed out,
busy: `Dialect.is_transient`), or a conflict with another writer. Those are never the
message's: the whole batch is rolled back and applied again later, whatever the attempt."""

from __future__ import annotations

from shared.db.dialect import Dialect
from shared.db.failures import database_unavailable
from shared.db.postgres import sqlstate

__all__ = [
    "UNIQUE",
    "RetryBatch",
    "RetryMessages",
    "Transient",
    "is_concurrency_failure",
    "is_infrastructure_failure",
    "not_the_message",
    "sqlstate",
]

# The database's verdicts on transactions that met another's: never a message's fault. Retried
# as a whole batch, they meet the other's work committed.
DEADLOCK, SERIALIZATION, LOCK_NOT_AVAILABLE, UNIQUE = "40P01", "40001", "55P03", "23505"
_CONCURRENCY = frozenset({DEADLOCK, SERIALIZATION, LOCK_NOT_AVAILABLE})


class RetryBatch(Exception):
    """The batch failed in a way a new transaction may not: another writer took a unique key
    meanwhile (the new one sees its row), or it was not looked up in the handler's record of
    applied events (now it is). Applied again whole before it is split message by message
    (in a pass that cannot lock rows in one order, and so can deadlock)."""


class Transient(Exception):
    """The database failed under the batch (its `__cause__`), not a message: the batch is
    rolled back and applied again after a pause."""


class RetryMessages(Exception):
    """Messages of the batch failed and have attempts left: the batch's transaction is rolled
    back, and applied again after `delay` seconds, slept outside any transaction (a sleep inside
    one would hold the store's commit-order lock, and every command with it)."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"messages failed; applying the batch again in {delay:.2f}s")
        self.delay = delay


def is_infrastructure_failure(exc: BaseException, dialect: Dialect) -> bool:
    """Whether the database failed (lost, shutting down, read-only, full, timed out, busy)."""
    return isinstance(exc, Transient) or database_unavailable(exc, dialect)


def is_concurrency_failure(exc: BaseException) -> bool:
    return sqlstate(exc) in _CONCURRENCY


def not_the_message(exc: BaseException, dialect: Dialect) -> bool:
    """Whether the failure is the database's or another writer's, never the message's."""
    return is_infrastructure_failure(exc, dialect) or is_concurrency_failure(exc)
