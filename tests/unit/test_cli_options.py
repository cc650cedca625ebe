"""The options every `aidline` command shares: a service's address is checked before anything
is asked of it, on the command line and from the environment alike."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from shared.cli._options import service_url
from shared.cli.main import app

runner = CliRunner()
COMMANDS = [
    ["status", "--allocation-url"],
    ["demo", "--delivery-url"],
    ["tail", "--projection-url"],
    ["rebuild", "--projection-url"],
    ["dlq", "list", "--request-url"],
    ["dlq", "show", "L1", "--projection-url"],
    ["dlq", "replay", "L1", "--delivery-url"],
    ["import", "pledges", "pledges.csv", "--request-url"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:-1]))
@pytest.mark.parametrize("address", ["localhost:8001", "ftp://host", "http://[::1", "http://"])
def test_an_address_that_is_not_one_is_a_usage_error(command: list[str], address: str) -> None:
    result = runner.invoke(app, [*command, address])
    assert result.exit_code == 2, result.output
    assert command[-1] in result.stderr and repr(address) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_environment_is_checked_too() -> None:
    result = runner.invoke(app, ["status"], env={"AIDLINE_PROJECTION_URL": "projection:8004"})
    assert result.exit_code == 2
    assert "AIDLINE_PROJECTION_URL" in result.stderr and "'projection:8004'" in result.stderr


@pytest.mark.parametrize(("given", "used"), [
    ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
    ("https://aidline.example.org/request/", "https://aidline.example.org/request"),
])  # fmt: skip
def test_an_address_is_used_as_given_without_a_trailing_slash(given: str, used: str) -> None:
    assert service_url(given) == used


def test_the_old_url_spelling_is_checked_like_the_new() -> None:
    result = runner.invoke(app, ["rebuild", "--url", "nope"])
    assert result.exit_code == 2
    assert "--url is deprecated; use --projection-url" in result.stderr
    assert "'--url'" in result.stderr and "'nope'" in result.stderr


def test_service_url_refuses_with_a_usage_error() -> None:
    with pytest.raises(typer.BadParameter, match="not an http"):
        service_url("mailto:ops@example.org")
