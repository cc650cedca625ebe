"""`aidline demo`: play the demo scenario against running services (`make run` does it for you).
`--json`: {"requirements", "pledges", "decisions", "allocations", "shipments"} (counts) on
stdout, the steps on stderr."""

from __future__ import annotations

import asyncio
import os

import httpx
import typer
from rich.console import Console

from shared.auth import DEV_SECRET
from shared.cli._options import (
    DEFAULTS,
    AllocationUrl,
    DeliveryUrl,
    Json,
    ProjectionUrl,
    Quiet,
    RequestUrl,
    console_for,
    emit_json,
)
from shared.demo.client import AidlineClient, DemoError, Endpoints
from shared.demo.scenario import Played, play


async def _play(
    secret: str, endpoints: Endpoints, seed: int, scale: int, console: Console, quiet: bool
) -> Played:
    client = AidlineClient(secret, endpoints)

    def say(message: str) -> None:
        if not quiet:
            console.print(f"[green]✓[/] {message}")

    try:
        return await play(client, seed=seed, scale=scale, say=say)
    finally:
        await client.close()


def load_demo(
    secret: str,
    seed: int = 7,
    scale: int = 1,
    endpoints: Endpoints | None = None,
    console: Console | None = None,
    quiet: bool = False,
) -> Played:
    console = console or console_for(json_mode=False)
    with console.status("loading the demo scenario…"):
        return asyncio.run(_play(secret, endpoints or Endpoints(), seed, scale, console, quiet))


def demo(
    seed: int = typer.Option(7, help="Same seed, same scenario."),
    scale: int = typer.Option(1, min=1, max=1000, help="Multiply the scenario's size."),
    request_url: RequestUrl = DEFAULTS.request,
    allocation_url: AllocationUrl = DEFAULTS.allocation,
    delivery_url: DeliveryUrl = DEFAULTS.delivery,
    projection_url: ProjectionUrl = DEFAULTS.projection,
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Play a deterministic half year of coordination (business time) through the HTTP API
    (development tokens)."""
    console = console_for(json)
    secret = os.environ.get("JWT_SECRET", DEV_SECRET)
    endpoints = Endpoints(request_url, allocation_url, delivery_url, projection_url)
    try:
        played = load_demo(secret, seed, scale, endpoints, console, quiet)
    except (DemoError, httpx.HTTPError) as exc:
        why = exc if isinstance(exc, DemoError) else f"a service did not answer ({exc!r})"
        console_for(json_mode=True).print(f"[bold red]✗ demo failed:[/] {why}")
        raise typer.Exit(1) from exc
    counts = {
        "requirements": len(played.requirements),
        "pledges": len(played.pledges),
        "decisions": len(played.decisions),
        "allocations": played.allocations_approved,
        "shipments": len(played.shipments),
    }
    if json:
        emit_json(counts)
    else:
        console.print(", ".join(f"{n} {what}" for what, n in counts.items()))
