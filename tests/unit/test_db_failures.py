"""What counts as the database being unavailable (503, a batch retried), not as a bug."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db.dialect import dialect_for
from shared.db.failures import database_unavailable


@pytest.mark.parametrize("url", ["postgresql+asyncpg://x/y", "sqlite+aiosqlite:///x.db"])
def test_no_connection_free_in_the_pool_is_the_database_being_busy(url: str) -> None:
    dialect = dialect_for(url)
    assert database_unavailable(PoolTimeout("QueuePool limit of size 5 reached"), dialect)
    assert database_unavailable(ConnectionRefusedError(), dialect)
    assert not database_unavailable(ValueError("a bug"), dialect)
