"""`aidline tail`: the live event stream in a terminal, one coloured line per event.

Reads the projection service's Server-Sent Events (`GET /events/stream`, with the bearer token
in the Authorization header) and resumes where it left off (Last-Event-ID) when the connection
drops: from the newest events, with a warning, when the service no longer replays that far
back (410). It stops when the token expires (the service ends the stream then). `--json`: one
JSON line per event on stdout (the stream's record as the service sent it), notes on stderr.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import httpx
import typer
from rich.text import Text

from shared.cli._options import (
    DEFAULTS,
    JsonLines,
    LegacyUrl,
    ProjectionUrl,
    Token,
    console_for,
    emit_json,
    legacy_url,
)
from shared.cli._projection import bearer

COLOURS = {
    "requirement": "cyan",
    "pledge": "green",
    "catalogue": "bright_black",
    "allocation": "magenta",
    "shortfall": "red",
    "shipment": "yellow",
}


def line(record: dict[str, Any], *, show_data: bool) -> Text:
    kind = str(record.get("type", "?"))
    text = Text()
    text.append(str(record.get("time", ""))[11:23], style="dim")
    text.append("  ")
    text.append(f"{kind:<30}", style=f"bold {COLOURS.get(kind.split('.')[0], 'white')}")
    text.append(f" {record.get('subject', '')}", style="bold")
    text.append(f"  by {record.get('actor', '?')}", style="dim")
    if show_data:
        text.append("  " + json.dumps(record.get("data", {}), separators=(",", ":")))
    return text


def tail(
    type_: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only these event types (repeatable)")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", "-s", help="Only this stream id")
    ] = None,
    projection_url: ProjectionUrl = DEFAULTS.projection,
    token: Token = None,
    data: Annotated[bool, typer.Option("--data/--no-data", help="Print each event's data")] = True,
    count: Annotated[int | None, typer.Option(help="Stop after this many events")] = None,
    json_lines: JsonLines = False,
    url: LegacyUrl = None,
) -> None:
    """Print the live event stream readably (Ctrl-C stops); a planner's token by default."""
    url = legacy_url(url, projection_url, "--projection-url")
    out, notes = console_for(json_mode=False), console_for(json_mode=json_lines)
    params = {k: v for k, v in {"types": ",".join(type_ or []), "subject": subject}.items() if v}
    headers = bearer(token, "planner")
    last_id: str | None = None
    seen = 0
    while True:
        try:
            resume = {"Last-Event-ID": last_id} if last_id else {}
            with httpx.stream(
                "GET", f"{url}/events/stream", params=params, headers=headers | resume,
                timeout=httpx.Timeout(10, read=None),
            ) as response:  # fmt: skip
                if response.status_code == 410 and last_id:
                    response.read()
                    notes.print("[yellow]missed too much to catch up; from now on[/yellow]")
                    last_id = None
                    continue
                if response.status_code != 200:
                    response.read()
                    notes.print(f"[red]{response.status_code}[/red] {response.text}")
                    raise typer.Exit(1)
                for raw in response.iter_lines():
                    if raw.startswith(": live"):  # the server now sends every new event
                        notes.print(f"[dim]watching {url}/events/stream {params or ''}[/dim]")
                    elif raw == "event: expired":
                        notes.print("[red]the token has expired[/red]; get a new one")
                        raise typer.Exit(1)
                    elif raw.startswith("id:"):
                        last_id = raw[3:].strip()
                    elif raw.startswith("data:"):
                        record = json.loads(raw[5:])
                        if json_lines:
                            emit_json(
                                record if data else {k: v for k, v in record.items() if k != "data"}
                            )
                        else:
                            out.print(line(record, show_data=data))
                        seen += 1
                        if count is not None and seen >= count:
                            return
        except httpx.TransportError as exc:
            notes.print(f"[yellow]connection lost ({exc!r}); reconnecting…[/yellow]")
            time.sleep(1.0)
        except KeyboardInterrupt:
            return


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}
