"""`aidline status`: is each service up and ready, is the broker reachable, where is each relay
(state, position, lag, age of the oldest unpublished event, and where and why it stopped), how
far behind are the consumers. Exit code 0 when everything is ready, 1 otherwise (scripts can
rely on it). `--json`: {"ready": bool, "services": {name: {"url", "status", "checks"}}}, the
checks as each service's /readyz gives them."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from shared.cli._options import (
    DEFAULTS,
    AllocationUrl,
    DeliveryUrl,
    Json,
    ProjectionUrl,
    RequestUrl,
    console_for,
    emit_json,
)


def _readiness(url: str) -> tuple[str, dict[str, Any]]:
    """The service's verdict (ready | degraded | not ready) and its checks."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=5)
        body: dict[str, Any] = response.json()
        return str(body.get("status", "not ready")), body.get("checks", {})
    except (httpx.HTTPError, ValueError) as exc:
        return "not ready", {"service": {"ok": False, "error": f"not answering: {exc!r}"}}


def status(
    request_url: RequestUrl = DEFAULTS.request,
    allocation_url: AllocationUrl = DEFAULTS.allocation,
    delivery_url: DeliveryUrl = DEFAULTS.delivery,
    projection_url: ProjectionUrl = DEFAULTS.projection,
    json: Json = False,
) -> None:
    """Services, broker and consumer lag, from each service's /readyz."""
    services = {
        "request": request_url,
        "allocation": allocation_url,
        "delivery": delivery_url,
        "projection": projection_url,
    }
    answers = {name: (url, *_readiness(url)) for name, url in services.items()}
    # degraded answers callers, but something is down
    all_ready = all(verdict == "ready" for _, verdict, _ in answers.values())
    if json:
        emit_json({"ready": all_ready, "services": {
            name: {"url": url, "status": verdict, "checks": checks}
            for name, (url, verdict, checks) in answers.items()
        }})  # fmt: skip
    else:
        _print_table(answers)
    raise typer.Exit(0 if all_ready else 1)


def _print_table(answers: dict[str, tuple[str, str, dict[str, Any]]]) -> None:
    table = Table(title="Aidline status")
    columns = ("service", "ready", "database", "kafka", "relay", "consumers (lag)", "problems")
    for column in columns:
        table.add_column(column)
    for name, (_, verdict, checks) in answers.items():
        consumers = {k.split(":", 1)[1]: v for k, v in checks.items() if k.startswith("consumer:")}
        problems = [
            f"{key}: {_why(check)}" for key, check in checks.items() if not check.get("ok", False)
        ]
        table.add_row(
            name,
            {"ready": "[green]yes[/]", "degraded": "[yellow]degraded[/]"}.get(
                verdict, "[red]no[/]"
            ),
            _mark(checks.get("database")),
            _mark(checks.get("kafka")),
            _relay(checks.get("relay")),
            ", ".join(f"{c} ({v.get('lag', '?')})" for c, v in consumers.items()) or "—",
            "\n".join(problems) or "",
        )
    console_for(json_mode=False).print(table)


def _relay(check: dict[str, Any] | None) -> str:
    """State, position, lag and oldest unpublished age; for a stopped relay, the event it
    stopped at and Kafka's error (fix the cause, then restart the service)."""
    if check is None:
        return "—"
    colour = "green" if check.get("ok") else "red"
    line = (
        f"[{colour}]{check.get('state', '?')}[/] at {check.get('position', '?')}, "
        f"lag {check.get('lag', '?')}, oldest {check.get('oldest_unpublished_seconds', '?')} s"
    )
    stopped = check.get("stopped_at")
    if stopped:
        line += (
            f"\n[red]stopped at position {stopped['position']}[/]: {stopped['event_type']} "
            f"{stopped['event_id']} ({stopped['stream_id']}) refused: {stopped['error']}"
        )
    return line


def _why(check: dict[str, Any]) -> str:
    return str(
        check.get("error") or check.get("last_error") or "; ".join(check.get("problems", []))
    )


def _mark(check: dict[str, Any] | None) -> str:
    if check is None:
        return "?"
    return "[green]ok[/]" if check.get("ok") else "[red]down[/]"
