"""`aidline demo`: play the demo scenario against running services (`make run` does it for you)."""

from __future__ import annotations

import asyncio
import os

import typer
from rich.console import Console

from shared.auth import DEV_SECRET
from shared.demo.client import AidlineClient, DemoError, Endpoints
from shared.demo.scenario import Played, play

console = Console()


async def _play(secret: str, endpoints: Endpoints, seed: int, scale: int) -> Played:
    client = AidlineClient(secret, endpoints)
    try:
        return await play(
            client, seed=seed, scale=scale, say=lambda m: console.print(f"[green]✓[/] {m}")
        )
    finally:
        await client.close()


def load_demo(
    secret: str, seed: int = 7, scale: int = 1, endpoints: Endpoints | None = None
) -> Played:
    with console.status("loading the demo scenario…"):
        return asyncio.run(_play(secret, endpoints or Endpoints(), seed, scale))


def demo(
    seed: int = typer.Option(7, help="Same seed, same scenario."),
    scale: int = typer.Option(1, min=1, max=1000, help="Multiply the scenario's size."),
    request_url: str = typer.Option(Endpoints.request, envvar="AIDLINE_REQUEST_URL"),
    allocation_url: str = typer.Option(Endpoints.allocation, envvar="AIDLINE_ALLOCATION_URL"),
    delivery_url: str = typer.Option(Endpoints.delivery, envvar="AIDLINE_DELIVERY_URL"),
    projection_url: str = typer.Option(Endpoints.projection, envvar="AIDLINE_PROJECTION_URL"),
) -> None:
    """Play a deterministic half year of coordination (business time) through the HTTP API
    (development tokens)."""
    secret = os.environ.get("JWT_SECRET", DEV_SECRET)
    endpoints = Endpoints(request_url, allocation_url, delivery_url, projection_url)
    try:
        played = load_demo(secret, seed, scale, endpoints)
    except DemoError as exc:
        console.print(f"[bold red]✗ demo failed:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"{len(played.requirements)} requirements, {len(played.pledges)} pledges, "
        f"{len(played.decisions)} decisions, {played.allocations_approved} allocations, "
        f"{len(played.shipments)} shipments"
    )
