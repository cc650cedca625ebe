"""`--json` keeps stdout for the one JSON document, even when no service answers (addresses
where nothing listens: a refused connection is the real answer, nothing is faked)."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from shared.cli.main import app

runner = CliRunner()


def _closed_address() -> str:
    """An address on which nothing listens (a port the system just handed out, now free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _urls() -> list[str]:
    url = _closed_address()
    return [arg for s in ("request", "allocation", "delivery", "projection")
            for arg in (f"--{s}-url", url)]  # fmt: skip


def test_status_as_json_says_which_service_is_not_ready() -> None:
    result = runner.invoke(app, ["status", "--json", *_urls()])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["ready"] is False
    assert {name: s["status"] for name, s in document["services"].items()} == {
        "request": "not ready", "allocation": "not ready", "delivery": "not ready",
        "projection": "not ready",
    }  # fmt: skip
    assert "not answering" in document["services"]["delivery"]["checks"]["service"]["error"]


def test_dlq_list_as_json_names_the_services_that_did_not_answer() -> None:
    result = runner.invoke(app, ["dlq", "list", "--json", *_urls()])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert (document["consumers"], document["letters"]) == ([], [])
    assert [u["service"] for u in document["unanswered"]] == [
        "request", "allocation", "delivery", "projection"
    ]  # fmt: skip
    assert "not answering as expected" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["rebuild", "--projection-url"],
        ["demo", "--request-url"],
        ["dlq", "show", "L1", "--service", "request", "--request-url"],
        ["dlq", "replay", "L1", "--service", "request", "--request-url"],
    ],
)
def test_a_service_that_does_not_answer_is_said_plainly(args: list[str]) -> None:
    """No traceback: a line on stderr, a non-zero exit, nothing on stdout."""
    result = runner.invoke(app, [*args, _closed_address(), "--json"])
    assert result.exit_code in (1, 2), result.output
    assert result.stdout == ""
    assert "answer" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert isinstance(result.exception, SystemExit), result.exception  # typer.Exit, not a crash
