"""`aidline token`: mint development bearer tokens (HS256 with JWT_SECRET, else the development
secret) for any role.

    aidline token --role donor --nation PL
    aidline token --role hub --hub PL-RZE --ttl 30m
    aidline token --role planner --quiet          # only the token (also whenever piped)
    aidline token --role admin --json             # {"token", "role", "expires_at", ...}
    aidline token --all                           # one token per role, as a table

In a terminal it prints a table; when stdout is not a terminal (`TOKEN=$(aidline token -r
admin)`), or with `-q`, only the token (with --all: `role token` lines).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from shared.auth import DEV_SECRET, Role, mint_token
from shared.catalogue import hubs
from shared.cli._options import Json, emit_json

DEFAULT_NATION = "PL"  # for --all, when --nation is not given
_TTL = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 30 * 86400


def token(
    role: Annotated[
        list[Role] | None,
        typer.Option("--role", "-r", help="Role of the token; repeat for several roles."),
    ] = None,
    nation: Annotated[
        str | None, typer.Option(help="Donor's nation, ISO 3166-1 alpha-2 (e.g. PL).")
    ] = None,
    hub: Annotated[str | None, typer.Option(help="Hub operator's hub (e.g. PL-RZE).")] = None,
    sub: Annotated[str | None, typer.Option(help="Subject; default dev-<role>[-<scope>].")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime: seconds, or 90s, 30m, 12h, 7d.")] = "12h",
    all_roles: Annotated[bool, typer.Option("--all", help="One token per role.")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print only the token (with --all: `role token`); the default when piped.",
        ),
    ] = False,
    json: Json = False,
    secret: Annotated[
        str,
        typer.Option(envvar="JWT_SECRET", help="HS256 secret.", show_default="development"),
    ] = DEV_SECRET,
) -> None:
    """Mint development bearer tokens for any role."""
    if all_roles == bool(role):
        _fail("give --role (one or more) or --all")
    if not secret:
        _fail("the JWT secret is empty; set JWT_SECRET or leave it unset for development")
    ttl_seconds = _parse_ttl(ttl)
    nation = _check_nation(nation)
    hub = _check_hub(hub)
    if all_roles:
        tokens = [_claims([r], nation or DEFAULT_NATION, hub or _default_hub(), sub) for r in Role]
    else:
        roles = list(dict.fromkeys(role or []))
        if nation and Role.DONOR not in roles:
            _fail("--nation applies to donor tokens only")
        if hub and Role.HUB not in roles:
            _fail("--hub applies to hub operator tokens only")
        if Role.DONOR in roles and not nation:
            _fail("a donor token needs --nation (e.g. --nation PL)")
        if Role.HUB in roles and not hub:
            _fail(f"a hub operator token needs --hub (one of {', '.join(hubs())})")
        tokens = [_claims(roles, nation, hub, sub)]
    minted = [
        (claims, mint_token(secret, claims.sub, claims.roles, nation=claims.nation,
                            hub=claims.hub, ttl_seconds=ttl_seconds))
        for claims in tokens
    ]  # fmt: skip
    expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    if json:
        documents = [_document(claims, value, expires) for claims, value in minted]
        emit_json(documents if all_roles else documents[0])
    elif quiet or not sys.stdout.isatty():  # a script capturing it wants the token alone
        for claims, value in minted:
            typer.echo(f"{claims.label} {value}" if all_roles else value)
    else:
        _print_table(minted, expires)


@dataclass(frozen=True)
class _Claims:
    roles: list[Role]
    sub: str
    nation: str | None
    hub: str | None

    @property
    def label(self) -> str:
        return "+".join(self.roles)

    @property
    def scope(self) -> str:
        return self.nation or self.hub or ""


def _claims(roles: list[Role], nation: str | None, hub: str | None, sub: str | None) -> _Claims:
    nation = nation if Role.DONOR in roles else None
    hub = hub if Role.HUB in roles else None
    scope = (nation or hub or "").lower()
    default_sub = "dev-" + "-".join(roles) + (f"-{scope}" if scope else "")
    return _Claims(roles, sub or default_sub, nation, hub)


def _document(claims: _Claims, value: str, expires: datetime) -> dict[str, object]:
    return {
        "token": value,
        "role": claims.label,
        "roles": [str(role) for role in claims.roles],
        "sub": claims.sub,
        "nation": claims.nation,
        "hub": claims.hub,
        "expires_at": expires.isoformat(timespec="seconds"),
    }


def _print_table(minted: list[tuple[_Claims, str]], expires: datetime) -> None:
    rows = [(claims.label, claims.sub, claims.scope, value) for claims, value in minted]
    table = Table(box=box.SIMPLE_HEAD, title=f"expires {expires:%Y-%m-%d %H:%M} UTC")
    widths = []
    for index, column in enumerate(("role", "sub", "scope", "token")):
        width = max(len(column), *(len(row[index]) for row in rows))
        widths.append(width)
        table.add_column(column, min_width=width, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # Wide enough that no token is cut or folded: a token must survive copy and paste.
    console = Console(width=sum(widths) + 3 * len(widths) + 2)
    console.print(table)


def _parse_ttl(text: str) -> int:
    match = _TTL.fullmatch(text.strip().lower())
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]] if match else 0
    if not 0 < seconds <= MAX_TTL_SECONDS:
        _fail(f"--ttl must be between 1 second and 30 days (like 3600, 30m, 12h), not {text!r}")
    return seconds


def _check_nation(nation: str | None) -> str | None:
    if nation is None:
        return None
    if not (len(nation) == 2 and nation.isascii() and nation.isalpha()):
        _fail(f"--nation must be an ISO 3166-1 alpha-2 code such as PL, not {nation!r}")
    return nation.upper()


def _check_hub(hub: str | None) -> str | None:
    if hub is not None and hub not in hubs():
        _fail(f"unknown hub {hub!r}; the hubs are {', '.join(hubs())}")
    return hub


def _default_hub() -> str:
    return next(iter(hubs()))


def _fail(message: str) -> NoReturn:
    raise typer.BadParameter(message)
