"""`aidline rebuild`: replay every topic into a fresh generation of the projection's read models
(POST /admin/rebuild) and follow its progress until it is swapped in. `--json`: {"generation",
"state"} (swapped, started with --no-wait, failed with "error", waiting when --timeout ran out),
the progress bar on stderr. Exit codes: 0 swapped in (or started), 1 refused, failed or not
answered, 2 still rebuilding at --timeout."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shared.cli._options import (
    DEFAULTS,
    Json,
    LegacyUrl,
    ProjectionUrl,
    Quiet,
    Token,
    console_for,
    emit_json,
    legacy_url,
)
from shared.cli._projection import bearer


def rebuild(
    projection_url: ProjectionUrl = DEFAULTS.projection,
    token: Token = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow until swapped in")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 3600,
    json: Json = False,
    quiet: Quiet = False,
    url: LegacyUrl = None,
) -> None:
    """Rebuild the projection's read models from offset 0; the old ones answer meanwhile (an
    admin's token by default)."""
    url = legacy_url(url, projection_url, "--projection-url")
    console = console_for(json)

    def done(code: int, **document: Any) -> typer.Exit:
        if json:
            emit_json(document)
        return typer.Exit(code)

    headers = bearer(token, "admin")
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            started = client.post("/admin/rebuild", headers={"Idempotency-Key": str(uuid.uuid4())})
            if started.status_code != 202:
                console.print(f"[red]{started.status_code}[/red] {started.text}")
                raise typer.Exit(1)
            generation = started.json()["generation"]
            if not quiet:
                console.print(f"rebuilding into generation {generation}")
            if not wait:
                raise done(0, generation=generation, state="started")
            deadline = time.monotonic() + timeout
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, disable=quiet) as progress:
                task = progress.add_task(f"generation {generation}", total=1.0, detail="")
                while time.monotonic() < deadline:
                    state = client.get("/admin/status").json()["rebuild"]
                    detail = f"{state['applied']:,}/{state['total']:,} messages"
                    progress.update(task, completed=state["progress"], detail=detail)
                    if state["state"] == "swapped" and state["generation"] == generation:
                        progress.update(task, completed=1.0)
                        break
                    if state["state"] == "failed":
                        console.print(f"[red]rebuild failed:[/red] {state['error']}")
                        raise done(1, generation=generation, state="failed", error=state["error"])
                    time.sleep(0.5)
                else:
                    console.print("[yellow]still rebuilding; see GET /admin/status[/yellow]")
                    raise done(2, generation=generation, state="waiting")
            if not quiet:
                console.print(f"[green]generation {generation} is live[/green]")
            raise done(0, generation=generation, state="swapped")
    except httpx.HTTPError as exc:
        console.print(f"[red]the projection service did not answer[/red] ({exc!r})")
        raise typer.Exit(1) from exc
