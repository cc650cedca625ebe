"""Group commit: units of work that are ready to write while another unit's statement runs wait
for it, then go to the database together, in one statement and one commit.

Under load the appends of a service queue for the commit-order lock anyway (`bench http`: ten
in flight on average when another began); one statement for all of them costs the process and
the database one round trip, one lock and one commit instead of ten. A unit that finds no
statement running writes at once, as it would alone.

A group is led by one of its units: the statement runs in the leader's task, so grouping needs
no task of its own. A unit that finds no statement running leads at once, on its own connection.
One that must wait gives its connection back first (`give_back`: waiting units holding the
pool's connections would starve it); once the statement it waited for returns, the first unit
that waited leads the next group, with everything that waited meanwhile, on a connection it
takes then (`fresh`).

A failure that commits nothing and may be one member's fault (`split_on`: a version conflict, a
value too long) writes every member again alone, so each gets its own answer; any other failure
is every member's (the connection lost: each would have had it alone). A leader cancelled in
its statement leaves its members not knowing whether they committed, as if their connection had
been lost (`Interrupted`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

C = TypeVar("C")  # what the leader writes on (its connection)
J = TypeVar("J")  # a member's writes
R = TypeVar("R")  # the group's result


class Interrupted(ConnectionError):
    """The statement of this unit's group was interrupted (its leader was cancelled): it may or
    may not have committed."""


class _Lead:
    """A waiting member's turn to lead the next group."""


_LEAD = _Lead()


class _Member(Generic[J, R]):
    __slots__ = ("job", "turn")

    def __init__(self, job: J, turn: asyncio.Future[R | _Lead]) -> None:
        self.job = job
        self.turn = turn  # resolved with the group's result or failure, or `_LEAD`


class GroupCommit(Generic[C, J, R]):
    """Writes the jobs given to `commit` with `write(via, jobs)`, a group at a time; every member
    of a group gets the group's result."""

    def __init__(
        self,
        write: Callable[[C, Sequence[J]], Awaitable[R]],
        *,
        give_back: Callable[[C], Awaitable[None]],
        fresh: Callable[[], AbstractAsyncContextManager[C]],
        split_on: tuple[type[Exception], ...],
        most: int,
    ) -> None:
        self._write = write
        self._give_back = give_back
        self._fresh = fresh
        self._split_on = split_on
        self._most = most  # members of one group at most
        self._waiting: deque[_Member[J, R]] = deque()
        self._busy = False  # a group's statement runs, or a member was just handed the lead

    async def commit(self, via: C, job: J) -> R:
        """Write `job`: on `via` now if no group is being written, else (`via` given back)
        with the next group, on a fresh connection if this one leads it."""
        me: _Member[J, R] = _Member(job, asyncio.get_running_loop().create_future())
        if not self._busy:
            self._busy = True
            return await self._lead(via, me)
        await self._give_back(via)  # not held while it waits: the pool has it
        if self._busy:
            self._waiting.append(me)
            try:
                outcome = await me.turn
            except asyncio.CancelledError:
                if me.turn.done() and not me.turn.cancelled() and me.turn.result() is _LEAD:
                    self._hand_over()  # handed the lead as it was cancelled: the next takes it
                raise
            if not isinstance(outcome, _Lead):
                return outcome
        else:  # the group it would have waited for ended meanwhile
            self._busy = True
        async with contextlib.AsyncExitStack() as stack:
            try:
                fresh = await stack.enter_async_context(self._fresh())
            except BaseException:  # no connection: this unit fails, the next may find one
                self._hand_over()
                raise
            return await self._lead(fresh, me)

    async def _lead(self, via: C, me: _Member[J, R]) -> R:
        group = [me]
        while self._waiting and len(group) < self._most:
            member = self._waiting.popleft()
            if not member.turn.done():  # not one whose caller stopped waiting
                group.append(member)
        try:
            outcomes = await self._outcomes(via, [member.job for member in group])
        except BaseException as exc:  # cancelled in the statement
            for member in group[1:]:
                _settle(member, Interrupted("the group's statement was interrupted"), cause=exc)
            raise
        finally:
            self._hand_over()
        for member, outcome in zip(group[1:], outcomes[1:], strict=True):
            _settle(member, outcome)
        if isinstance(outcomes[0], Exception):
            raise outcomes[0]
        return outcomes[0]

    async def _outcomes(self, via: C, jobs: Sequence[J]) -> list[R | Exception]:
        """Each job's result or failure."""
        try:
            result = await self._write(via, jobs)
        except self._split_on as exc:
            if len(jobs) == 1:
                return [exc]
            # The group committed nothing: each alone, for its own answer.
            return [(await self._outcomes(via, [job]))[0] for job in jobs]
        except Exception as exc:
            return [exc] * len(jobs)
        return [result] * len(jobs)

    def _hand_over(self) -> None:
        """The lead to the first member still waiting, or nobody busy."""
        while self._waiting:
            member = self._waiting.popleft()
            if not member.turn.done():
                member.turn.set_result(_LEAD)
                return
        self._busy = False


def _settle(
    member: _Member[J, R], outcome: R | Exception, *, cause: BaseException | None = None
) -> None:
    if member.turn.done():  # its caller stopped waiting
        return
    if isinstance(outcome, Exception):
        if cause is not None:
            outcome.__cause__ = cause
        member.turn.set_exception(outcome)
    else:
        member.turn.set_result(outcome)
