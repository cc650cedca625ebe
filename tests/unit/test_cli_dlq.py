"""`aidline dlq replay`: how it pages through a consumer's letters (passing over those that failed
again) and what it refuses before asking any service."""

from __future__ import annotations

from typing import Any

import httpx
from typer.testing import CliRunner

from shared.cli.dlq import replay_selection
from shared.cli.main import app


class FakeService:
    """A replay endpoint over `letters` (id -> replayable?), answering as the service does."""

    def __init__(self, letters: dict[str, bool], consumer: str = "c") -> None:
        self.letters = dict(letters)
        self.consumer = consumer
        self.bodies: list[dict[str, Any]] = []

    def post(self, body: dict[str, Any]) -> httpx.Response:
        self.bodies.append(body)
        if "ids" in body:
            tried = [(i, self.letters.pop(i)) for i in body["ids"] if i in self.letters]
            if tried and not any(ok for _, ok in tried):
                return httpx.Response(409, json={"detail": "failed again"})
            return httpx.Response(200, json=self._report(tried, 0))
        if body["consumer"] != self.consumer:
            return httpx.Response(404, json={"detail": "no such consumer"})
        pending = list(self.letters)[body["skip"] :]
        tried = [(i, self.letters[i]) for i in pending[: body["limit"]]]
        for i, ok in tried:
            if ok:
                del self.letters[i]
        return httpx.Response(200, json=self._report(tried, len(pending) - len(tried)))

    def _report(self, tried: list[tuple[str, bool]], remaining: int) -> dict[str, Any]:
        results = [{"id": i, "consumer": self.consumer, "outcome": "replayed" if ok else "failed",
                    "error": None if ok else "boom"} for i, ok in tried]  # fmt: skip
        failed = sum(1 for _, ok in tried if not ok)
        return {"replayed": len(tried) - failed, "failed": failed, "results": results,
                "remaining": remaining}  # fmt: skip


def test_a_consumers_letters_are_paged_through_past_those_failing_again() -> None:
    service = FakeService({f"L{i}": i % 3 != 1 for i in range(7)})
    done = replay_selection(service.post, {"consumer": "c", "all": True, "limit": 2})
    assert done is not None
    assert [r["id"] for r in done.results] == [f"L{i}" for i in range(7)]
    assert done.failed
    assert list(service.letters) == ["L1", "L4"], "what failed stays"
    assert [b["skip"] for b in service.bodies] == [0, 1, 1, 2]


def test_a_service_without_the_consumer_is_passed_over() -> None:
    assert replay_selection(FakeService({}).post, {"consumer": "other", "all": True}) is None


def test_letters_by_id_that_all_fail_again_are_a_problem_reported() -> None:
    done = replay_selection(FakeService({"L1": False}).post, {"ids": ["L1"]})
    assert done is not None and done.failed and done.problems == ["failed again"]


def test_a_replay_must_say_what_it_replays() -> None:
    runner = CliRunner()
    for args in ([], ["--consumer", "c"], ["L1", "--consumer", "c"],
                 ["--consumer", "c", "--all", "--topic", "t"]):  # fmt: skip
        result = runner.invoke(app, ["dlq", "replay", *args])
        assert result.exit_code == 2, (args, result.output)


def test_an_unknown_service_is_named_on_stderr_and_nothing_is_asked() -> None:
    result = CliRunner().invoke(app, ["dlq", "list", "--service", "billing", "--json"])
    assert result.exit_code == 2
    assert result.stdout == "" and "no service 'billing'" in result.stderr
