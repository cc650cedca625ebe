"""The options every `aidline` command spells the same way, and how a command prints for a script.

The scheme: `--<service>-url` for a service's address (else `AIDLINE_<SERVICE>_URL`, else the
local default), `--token` for a bearer token (else `AIDLINE_TOKEN`), `--json` for one JSON
document on stdout (JSON lines for `tail`) with anything human on stderr, `-q/--quiet` for the
bare result. Old spellings (`--url`) are hidden aliases that warn on stderr.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from shared.demo.client import Endpoints

SERVICES = ("request", "allocation", "delivery", "projection")


def service_url(value: str) -> str:
    """A service's address as given, without a trailing slash (paths are appended to it);
    refused with a usage error unless it is an http(s) URL with a host."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(f"{value!r} is not a URL ({exc})") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise typer.BadParameter(f"{value!r} is not an http(s) address like http://127.0.0.1:8001")
    return value.rstrip("/")


def _url_option(service: str) -> Any:
    return typer.Option(
        f"--{service}-url",
        envvar=f"AIDLINE_{service.upper()}_URL",
        callback=service_url,
        help=f"The {service} service's address.",
        rich_help_panel="Addresses",
    )


RequestUrl = Annotated[str, _url_option("request")]
AllocationUrl = Annotated[str, _url_option("allocation")]
DeliveryUrl = Annotated[str, _url_option("delivery")]
ProjectionUrl = Annotated[str, _url_option("projection")]
DEFAULTS = Endpoints()

Token = Annotated[
    str | None,
    typer.Option(envvar="AIDLINE_TOKEN", help="Bearer token.", show_default="a development one"),
]
Json = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout; anything else on stderr."),
]
JsonLines = Annotated[
    bool, typer.Option("--json", help="Print one JSON line per event on stdout; notes on stderr.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")]
# The spelling before `--<service>-url`; kept working, hidden, with a warning.
LegacyUrl = Annotated[str | None, typer.Option("--url", hidden=True)]


def legacy_url(old: str | None, current: str, replacement: str) -> str:
    """`--url` if it was given (with a warning on stderr that it is deprecated), else `current`."""
    if old is None:
        return current
    typer.echo(f"warning: --url is deprecated; use {replacement}", err=True)
    try:
        return service_url(old)
    except typer.BadParameter as exc:
        raise typer.BadParameter(exc.message, param_hint="'--url'") from exc


def console_for(json_mode: bool) -> Console:
    """Where a command's human output goes: stderr when stdout carries JSON."""
    return Console(stderr=json_mode, highlight=False)


def emit_json(document: Any) -> None:
    """One JSON document (or one JSON line) on stdout."""
    typer.echo(json.dumps(document, default=str, ensure_ascii=False))
