"""Group commit (`shared.eventstore.group_commit`): who goes in which statement, and who gets
which answer. The writes here are recorded in memory; the event log's use of it runs against
PostgreSQL in tests/integration/test_event_store.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from shared.eventstore.group_commit import GroupCommit, Interrupted


class Refused(Exception):
    """A group the database refused: nothing of it committed (`split_on`)."""


class Database:
    """Records each group written and on which connection (its leader's job, here, or a fresh
    one for a unit that waited and was handed the lead); a group
    holding "bad" is refused, "down" fails otherwise. Each write waits for `go` so a test can
    queue jobs meanwhile."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[str]]] = []
        self.go = asyncio.Event()
        self.go.set()
        self.writing = asyncio.Event()
        self.gates: dict[str, asyncio.Event] = {}  # writes led by these wait for theirs too
        self.given_back: list[str] = []  # connections of waiting units
        self.fresh_ones = 0  # connections taken by units handed the lead
        self.no_connection: set[int] = set()  # these fresh ones fail

    async def write(self, via: str, group: Sequence[str]) -> str:
        self.groups.append((via, list(group)))
        self.writing.set()
        await self.go.wait()
        if via in self.gates:
            await self.gates[via].wait()
        if "bad" in group:
            raise Refused("bad")
        if "down" in group:
            raise ConnectionError("the database went away")
        return "+".join(group)

    async def give_back(self, via: str) -> None:
        self.given_back.append(via)

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        self.fresh_ones += 1
        if self.fresh_ones in self.no_connection:
            raise ConnectionError("no connection")
        yield f"fresh-{self.fresh_ones}"


def _groups(db: Database, most: int = 64) -> GroupCommit[str, str, str]:
    return GroupCommit(
        db.write, give_back=db.give_back, fresh=db.fresh, split_on=(Refused,), most=most
    )


def _commit(groups: GroupCommit[str, str, str], job: str) -> asyncio.Task[str]:
    """A unit of work's commit, on a connection named after its job."""
    return asyncio.create_task(groups.commit(job, job))


async def _while_first_is_written(
    db: Database, groups: GroupCommit[str, str, str], *later: str
) -> tuple[asyncio.Task[str], list[asyncio.Task[str]]]:
    """Start job "a", queue `later` while its statement runs, then let the database go on."""
    db.go.clear()
    first = _commit(groups, "a")
    await db.writing.wait()
    others = [_commit(groups, job) for job in later]
    await asyncio.sleep(0)  # every one of them queued
    db.go.set()
    return first, others


async def test_a_job_alone_is_written_at_once() -> None:
    db = Database()
    assert await _groups(db).commit("a", "a") == "a"
    assert db.groups == [("a", ["a"])]


async def test_jobs_ready_while_a_group_is_written_go_together_next_led_by_the_first() -> None:
    db = Database()
    first, others = await _while_first_is_written(db, _groups(db), "b", "c", "d")
    assert await first == "a"
    assert await asyncio.gather(*others) == ["b+c+d"] * 3
    assert db.groups == [("a", ["a"]), ("fresh-1", ["b", "c", "d"])]
    assert db.given_back == ["b", "c", "d"], "a waiting unit holds no connection"


async def test_a_group_holds_at_most_its_limit() -> None:
    db = Database()
    first, others = await _while_first_is_written(db, _groups(db, most=2), "b", "c", "d")
    await asyncio.gather(first, *others)
    assert db.groups == [("a", ["a"]), ("fresh-1", ["b", "c"]), ("fresh-2", ["d"])]


async def test_a_refused_group_is_written_again_one_by_one_each_with_its_own_answer() -> None:
    db = Database()
    first, others = await _while_first_is_written(db, _groups(db), "b", "bad", "c")
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert results[:2] == ["a", "b"] and results[3] == "c"
    assert isinstance(results[2], Refused)
    led = "fresh-1"
    assert db.groups == [("a", ["a"]), (led, ["b", "bad", "c"]), (led, ["b"]), (led, ["bad"]),
                         (led, ["c"])]  # fmt: skip


async def test_any_other_failure_is_every_members_and_the_next_group_goes_on() -> None:
    db = Database()
    groups = _groups(db)
    first, others = await _while_first_is_written(db, groups, "b", "down")
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert results[0] == "a"
    assert all(isinstance(r, ConnectionError) for r in results[1:])
    assert db.groups == [("a", ["a"]), ("fresh-1", ["b", "down"])]  # not again: may have committed
    assert await groups.commit("e", "e") == "e"


async def test_a_caller_that_stops_waiting_is_left_out_and_the_others_go_on() -> None:
    db = Database()
    groups = _groups(db)
    first, others = await _while_first_is_written(db, groups, "b", "c")
    others[0].cancel()  # before its group went out
    assert await first == "a"
    assert await others[1] == "c"
    with pytest.raises(asyncio.CancelledError):
        await others[0]
    assert db.groups == [("a", ["a"]), ("fresh-1", ["c"])]


async def test_a_leader_cancelled_in_its_statement_leaves_its_members_interrupted() -> None:
    """Its members cannot know whether the statement committed, as if their connection had
    been lost; the next group goes on."""
    db = Database()
    db.gates = {"a": asyncio.Event(), "fresh-1": asyncio.Event()}
    groups = _groups(db)
    first = _commit(groups, "a")
    await db.writing.wait()
    db.writing.clear()
    led_by_b = [_commit(groups, job) for job in "bcd"]
    await asyncio.sleep(0)
    db.gates["a"].set()
    await first
    await db.writing.wait()  # b leads b, c, d
    later = _commit(groups, "e")
    await asyncio.sleep(0)
    led_by_b[0].cancel()
    results = await asyncio.gather(*led_by_b[1:], return_exceptions=True)
    assert all(isinstance(r, Interrupted) for r in results), results
    assert await later == "e"
    assert db.groups == [("a", ["a"]), ("fresh-1", ["b", "c", "d"]), ("fresh-2", ["e"])]


async def test_a_unit_handed_the_lead_without_a_connection_fails_alone() -> None:
    db = Database()
    db.no_connection = {1}
    first, others = await _while_first_is_written(db, _groups(db, most=1), "b", "c")
    assert await first == "a"
    results = await asyncio.gather(*others, return_exceptions=True)
    assert isinstance(results[0], ConnectionError) and results[1] == "c"
    assert db.groups == [("a", ["a"]), ("fresh-2", ["c"])]
