"""A connection taken from the pool by its first statement, not when it is made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import PoolProxiedConnection


class ConnectionOnDemand(AsyncConnection):
    """An `AsyncConnection` (made from an `AsyncEngine`, not started) that checks its connection
    out of the pool at its first statement: `execute` and what is built on it (`scalar`,
    `scalars`), `exec_driver_sql`, `get_raw_connection` and `run_sync`. Closing one that never
    ran a statement returns nothing to the pool.

    For a unit of work that may read before it appends (`EventStore.append_only`): one that
    reads nothing and waits for its group commit holds no connection meanwhile. Under `bench
    http`'s load, where most units wait for a group, the request service spent 363-377 µs of
    CPU per command against 553-570 µs with a connection checked out (and given back) by each
    (docs/benchmarks.md, "Eleventh session"). `stream` is not covered: it needs the connection
    started first."""

    @property
    def checked_out(self) -> bool:
        return self.sync_connection is not None

    async def _check_out(self) -> None:
        if self.sync_connection is None:
            await self.start()

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        await self._check_out()
        return await super().execute(*args, **kwargs)

    async def exec_driver_sql(self, *args: Any, **kwargs: Any) -> Any:
        await self._check_out()
        return await super().exec_driver_sql(*args, **kwargs)

    async def get_raw_connection(self) -> PoolProxiedConnection:
        await self._check_out()
        return await super().get_raw_connection()

    async def run_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        await self._check_out()
        return await super().run_sync(fn, *args, **kwargs)

    async def close(self) -> None:
        if self.sync_connection is not None:
            await super().close()
