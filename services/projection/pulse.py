"""Waking whoever waits for the next commit: read-your-writes, the live stream, a rebuild."""

from __future__ import annotations

import asyncio
import contextlib


class Pulse:
    """Wakes every waiter when something new was committed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def next(self) -> asyncio.Event:
        """Take this before checking for a change, then wait on it: no wake-up is lost."""
        return self._event


async def wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(seconds, 0))
