"""`aidline token`: the tokens it prints are accepted and carry the claims asked for; a table in
a terminal, the bare token when captured by a script, one JSON document with `--json`."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime

import jwt
import pytest
from typer.testing import CliRunner

from shared.auth import DEV_SECRET, Principal, Role, TokenVerifier
from shared.cli.main import app

runner = CliRunner()
VERIFIER = TokenVerifier(secret=DEV_SECRET)
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, ["token", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _in_a_terminal(*args: str) -> str:
    """What `aidline token` prints when its stdout is a terminal (a pseudo-terminal)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", "token", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=os.environ | {"TERM": "xterm", "NO_COLOR": "1"},  # a terminal without colours
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(30) == 0, process.stderr.read() if process.stderr else ""
    return b"".join(chunks).decode()


def _refused(*args: str) -> str:
    result = runner.invoke(app, ["token", *args])
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())  # the error box wraps lines


def _only_token(*args: str) -> Principal:
    output = _run(*args, "--quiet").strip()
    assert JWT.fullmatch(output), output
    return VERIFIER.verify(output)


def test_donor_token_for_a_nation() -> None:
    principal = _only_token("--role", "donor", "--nation", "pl")
    assert (principal.sub, principal.roles, principal.nation) == (
        "dev-donor-pl",
        frozenset({Role.DONOR}),
        "PL",
    )


def test_hub_operator_token_for_a_hub() -> None:
    principal = _only_token("--role", "hub", "--hub", "PL-RZE", "--sub", "rze-night-shift")
    assert (principal.sub, principal.hub, principal.actor) == (
        "rze-night-shift",
        "PL-RZE",
        "rze-night-shift@PL-RZE",
    )


def test_several_roles_in_one_token() -> None:
    assert _only_token("-r", "forum", "-r", "observer").roles == {Role.FORUM, Role.OBSERVER}


@pytest.mark.parametrize(("ttl", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800),
                                              ("12h", 43200), ("7d", 604800)])  # fmt: skip
def test_ttl(ttl: str, seconds: int) -> None:
    value = _run("--role", "planner", "--ttl", ttl, "-q").strip()
    claims = jwt.decode(value, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == seconds


def test_the_secret_comes_from_jwt_secret() -> None:
    secret = "a-deployment-secret-of-at-least-32-bytes"
    value = _run("--role", "admin", "-q", env={"JWT_SECRET": secret}).strip()
    assert TokenVerifier(secret=secret).verify(value).roles == {Role.ADMIN}


def test_captured_by_a_script_it_prints_the_bare_token() -> None:
    """`TOKEN=$(aidline token -r admin)`: CliRunner's stdout is not a terminal."""
    output = _run("--role", "admin")
    assert JWT.fullmatch(output.strip()) and output.endswith("\n"), output
    assert VERIFIER.verify(output.strip()).roles == {Role.ADMIN}


def test_json_carries_the_token_and_its_claims() -> None:
    document = json.loads(_run("--role", "hub", "--hub", "PL-RZE", "--ttl", "30m", "--json"))
    assert VERIFIER.verify(document["token"]).hub == "PL-RZE"
    assert (document["role"], document["roles"], document["sub"]) == (
        "hub",
        ["hub"],
        "dev-hub-pl-rze",
    )
    assert (document["nation"], document["hub"]) == (None, "PL-RZE")
    left = datetime.fromisoformat(document["expires_at"]) - datetime.now(UTC)
    assert 1700 < left.total_seconds() <= 1800


def test_json_with_all_is_one_list() -> None:
    documents = json.loads(_run("--all", "--json"))
    assert [d["role"] for d in documents] == list(Role)
    assert all(VERIFIER.verify(d["token"]).roles == {Role(d["role"])} for d in documents)


def test_in_a_terminal_quiet_still_prints_only_the_token() -> None:
    output = _in_a_terminal("--role", "observer", "-q").strip()
    assert JWT.fullmatch(output), output


def test_the_table_shows_one_verifiable_token() -> None:
    output = _in_a_terminal("--role", "donor", "--nation", "DE")
    assert "dev-donor-de" in output and "expires" in output
    [value] = JWT.findall(output)
    assert VERIFIER.verify(value).nation == "DE"


def test_all_prints_one_token_per_role_in_a_table() -> None:
    output = _in_a_terminal("--all", "--nation", "RO", "--hub", "RO-SUC")
    principals = [VERIFIER.verify(value) for value in JWT.findall(output)]
    assert [p.roles for p in principals] == [{role} for role in Role]
    by_role = {next(iter(p.roles)): p for p in principals}
    assert by_role[Role.DONOR].nation == "RO"
    assert by_role[Role.HUB].hub == "RO-SUC"
    assert by_role[Role.PLANNER].nation is None and by_role[Role.PLANNER].hub is None


def test_all_quiet_prints_role_and_token_per_line() -> None:
    lines = _run("--all", "-q").splitlines()
    pairs = dict(line.split(" ") for line in lines)
    assert list(pairs) == list(Role)
    assert VERIFIER.verify(pairs["donor"]).nation == "PL"
    assert VERIFIER.verify(pairs["hub"]).hub == "PL-RZE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --role"),
        (("--all", "--role", "admin"), "give --role"),
        (("--role", "donor"), "needs --nation"),
        (("--role", "hub"), "needs --hub"),
        (("--role", "planner", "--nation", "PL"), "donor tokens only"),
        (("--role", "planner", "--hub", "PL-RZE"), "hub operator tokens only"),
        (("--role", "donor", "--nation", "POL"), "alpha-2"),
        (("--role", "hub", "--hub", "XX-NOPE"), "unknown hub"),
        (("--role", "admin", "--ttl", "0"), "--ttl"),
        (("--role", "admin", "--ttl", "soon"), "--ttl"),
        (("--role", "admin", "--ttl", "365d"), "--ttl"),
        (("--role", "emperor"), "emperor"),
    ],
)
def test_refused(args: tuple[str, ...], message: str) -> None:
    assert message in _refused(*args)


def test_an_empty_secret_is_refused() -> None:
    assert "secret is empty" in _refused("--role", "admin", "--secret", "")
