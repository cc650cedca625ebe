"""`aidline rebuild`: replay every topic into a fresh generation of the projection's read models
(POST /admin/rebuild) and follow its progress until it is swapped in."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shared.cli._projection import DEFAULT_URL, bearer


def rebuild(
    url: Annotated[str, typer.Option(help="The projection service")] = DEFAULT_URL,
    token: Annotated[
        str | None, typer.Option(envvar="AIDLINE_TOKEN", help="Admin bearer token (default: dev)")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow until swapped in")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 3600,
) -> None:
    """Rebuild the projection's read models from offset 0; the old ones answer meanwhile."""
    console = Console()
    headers = bearer(token, "admin")
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        started = client.post("/admin/rebuild", headers={"Idempotency-Key": str(uuid.uuid4())})
        if started.status_code != 202:
            console.print(f"[red]{started.status_code}[/red] {started.text}")
            raise typer.Exit(1)
        generation = started.json()["generation"]
        console.print(f"rebuilding into generation {generation}")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
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
                    raise typer.Exit(1)
                time.sleep(0.5)
            else:
                console.print("[yellow]still rebuilding; see GET /admin/status[/yellow]")
                raise typer.Exit(2)
        console.print(f"[green]generation {generation} is live[/green]")
