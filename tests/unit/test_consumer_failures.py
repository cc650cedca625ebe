"""Which failures are a message's fault: the database's passing states (connection lost,
shutting down, read-only, disk full, timed out, busy) never are, on either backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.db.postgres import PostgresDialect
from shared.db.sqlite import SqliteDialect
from shared.messaging.consumer.failures import Transient, is_infrastructure_failure, not_the_message

PG, LITE = PostgresDialect(), SqliteDialect()


def _wrapped(orig: BaseException) -> OperationalError:
    """As SQLAlchemy raises it."""
    return OperationalError("UPDATE things SET amount = 1", None, orig)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.AdminShutdownError(
            "terminating connection due to administrator command"
        ),
        asyncpg.exceptions.CrashShutdownError("crash shutdown"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only tx"),
        asyncpg.exceptions.DiskFullError("could not extend file: No space left on device"),
        asyncpg.exceptions.OutOfMemoryError("out of memory"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.ConnectionFailureError("connection failure"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgresql_passing_states_are_not_the_messages_fault(error: Exception) -> None:
    for exc in (error, _wrapped(error)):
        assert PG.is_transient(exc)
        assert is_infrastructure_failure(exc, PG)
        assert not_the_message(exc, PG)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key value"),
        asyncpg.exceptions.CheckViolationError("new row violates check constraint"),
        asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range"),
        asyncpg.exceptions.StringDataRightTruncationError("value too long for type varchar(100)"),
        asyncpg.exceptions.UndefinedTableError('relation "things" does not exist'),
        ValueError("a handler's bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgresql_errors_of_the_data_are_the_messages(error: Exception) -> None:
    for exc in (error, _wrapped(error)):
        assert not PG.is_transient(exc)
        assert not not_the_message(exc, PG)


def _sqlite_error(kind: type[sqlite3.Error], message: str, name: str) -> sqlite3.Error:
    error = kind(message)
    error.sqlite_errorname = name
    return error


@pytest.mark.parametrize(
    "error",
    [
        _sqlite_error(sqlite3.OperationalError, "database is locked", "SQLITE_BUSY"),
        _sqlite_error(sqlite3.OperationalError, "database is locked", "SQLITE_BUSY_SNAPSHOT"),
        _sqlite_error(sqlite3.OperationalError, "database table is locked", "SQLITE_LOCKED"),
        _sqlite_error(sqlite3.OperationalError, "database or disk is full", "SQLITE_FULL"),
        _sqlite_error(sqlite3.OperationalError, "disk I/O error", "SQLITE_IOERR_WRITE"),
        _sqlite_error(
            sqlite3.OperationalError, "attempt to write a readonly database", "SQLITE_READONLY"
        ),
        sqlite3.OperationalError("database is locked"),  # no code: the message says it
    ],
    ids=str,
)
def test_sqlite_passing_states_are_not_the_messages_fault(error: Exception) -> None:
    for exc in (error, _wrapped(error)):
        assert LITE.is_transient(exc)
        assert not_the_message(exc, LITE)


def test_a_real_busy_sqlite_database_is_transient(tmp_path: Path) -> None:
    path = f"{tmp_path}/busy.db"
    holder, other = sqlite3.connect(path), sqlite3.connect(path, timeout=0)
    holder.isolation_level = other.isolation_level = None
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as caught:
        other.execute("BEGIN IMMEDIATE")
    holder.close()
    other.close()
    assert LITE.is_transient(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        _sqlite_error(
            sqlite3.IntegrityError,
            "UNIQUE constraint failed: things.key",
            "SQLITE_CONSTRAINT_UNIQUE",
        ),
        _sqlite_error(sqlite3.OperationalError, "no such table: things", "SQLITE_ERROR"),
        ValueError("a handler's bug"),
    ],
    ids=str,
)
def test_sqlite_errors_of_the_data_are_the_messages(error: Exception) -> None:
    wrapped = IntegrityError("INSERT", None, error) if isinstance(error, sqlite3.Error) else error
    for exc in (error, wrapped):
        assert not LITE.is_transient(exc)
        assert not not_the_message(exc, LITE)


def test_lost_connections_deadlocks_and_transient_wrappers_are_not_the_messages_fault() -> None:
    for dialect in (PG, LITE):
        assert not_the_message(ConnectionResetError("reset by peer"), dialect)
        assert not_the_message(Transient("the connection was lost"), dialect)
    assert not_the_message(_wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")), PG)
    assert not is_infrastructure_failure(
        _wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")), PG
    )
