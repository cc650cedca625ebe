"""`aidline dlq`: the dead letters of every service's consumers, and their replay once the cause
is fixed (each service's `/admin/dead-letters`, with an admin token).

    aidline dlq list [--consumer C] [--state pending|replayed|all]
    aidline dlq show ID
    aidline dlq replay ID [ID ...]
    aidline dlq replay --consumer C --all
    aidline dlq replay --consumer C [--topic T] [--partition P] [--from-offset A] [--to-offset B]
                       [--since TIME] [--until TIME]

Addresses: `--<service>-url` (else AIDLINE_<SERVICE>_URL); `--service` asks only one of them.
`--json` prints one JSON document on stdout: list {"consumers", "letters", "unanswered"} (each
entry with its "service"), show the letter with its "service", replay {"results", "problems",
"counts"}. Errors go to stderr.

Exit codes: 0 done (replay: every letter tried is replayed, or was before); 1 a letter failed
again, or what was named does not exist; 2 a service did not answer as expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from json import dumps
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from shared.cli._options import (
    DEFAULTS,
    SERVICES,
    AllocationUrl,
    DeliveryUrl,
    Json,
    ProjectionUrl,
    RequestUrl,
    Token,
    emit_json,
)
from shared.cli._projection import bearer

app = typer.Typer(help="Dead letters: list, show, replay after a fix.", no_args_is_help=True)
console = Console()  # what was asked for
errors = Console(stderr=True)  # why it could not be

PAGE = 500  # the most a call lists or tries

Service = Annotated[
    str | None, typer.Option(help="Ask only this service (request, allocation, ...)")
]


class Unanswered(Exception):
    """A service did not answer as its contract says (exit 2)."""


def _urls(only: str | None, *urls: str) -> dict[str, str]:
    """The services' addresses (in SERVICES' order), or only the one named."""
    if only is not None and only not in SERVICES:
        errors.print(f"[red]no service {only!r}[/red]; one of {', '.join(SERVICES)}")
        raise typer.Exit(2)
    return {name: url for name, url in zip(SERVICES, urls, strict=True) if only in (None, name)}


def _client(url: str, token: str | None) -> httpx.Client:
    return httpx.Client(base_url=url, headers=bearer(token, "admin"), timeout=120)


def _json(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise Unanswered(f"{response.request.url}: {response.status_code} {response.text[:500]}")
    return response.json()


# -- list -----------------------------------------------------------------------------------


@app.command("list")
def list_letters(
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's letters")] = None,
    state: Annotated[str, typer.Option(help="pending | replayed | all")] = "all",
    service: Service = None,
    token: Token = None,
    json: Json = False,
    request_url: RequestUrl = DEFAULTS.request,
    allocation_url: AllocationUrl = DEFAULTS.allocation,
    delivery_url: DeliveryUrl = DEFAULTS.delivery,
    projection_url: ProjectionUrl = DEFAULTS.projection,
) -> None:
    """Counts and errors per consumer, then the letters (oldest first); an admin's token by
    default."""
    urls = _urls(service, request_url, allocation_url, delivery_url, projection_url)
    found: dict[str, list[dict[str, Any]]] = {"consumers": [], "letters": [], "unanswered": []}
    summary = Table(title="Dead letters per consumer")
    for column in ("service", "consumer", "pending", "replayed", "pending by error"):
        summary.add_column(column)
    letters = Table(title=f"Letters ({state})")
    for column in ("id", "service", "consumer", "topic/partition/offset", "event type", "error",
                   "state"):  # fmt: skip
        letters.add_column(column)
    for name, url in urls.items():
        try:
            with _client(url, token) as client:
                pages = _pages(client, consumer=consumer, state=state)
                for number, page in enumerate(pages):
                    if number == 0:
                        for entry in page["consumers"]:
                            found["consumers"].append({"service": name} | entry)
                            why = ", ".join(
                                f"{e['error_type']} ({e['pending']})" for e in entry["errors"]
                            )
                            summary.add_row(name, entry["consumer"], str(entry["pending"]),
                                            str(entry["replayed"]), why)  # fmt: skip
                    for item in page["items"]:
                        found["letters"].append({"service": name} | item)
                        letters.add_row(*_letter_row(name, item))
        except (httpx.HTTPError, Unanswered) as exc:
            found["unanswered"].append({"service": name, "error": str(exc)})
            errors.print(f"[red]{name}: not answering as expected[/red] ({exc})")
    if json:
        emit_json(found)
    else:
        console.print(summary)
        console.print(letters)
    raise typer.Exit(2 if found["unanswered"] else 0)


def _pages(client: httpx.Client, *, consumer: str | None, state: str) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {"state": state, "limit": PAGE, "offset": 0}
    if consumer is not None:
        params["consumer"] = consumer
    while True:
        page = _json(client.get("/admin/dead-letters", params=params), 200)
        yield page
        if page["next_offset"] is None:
            return
        params["offset"] = page["next_offset"]


def _letter_row(service: str, item: dict[str, Any]) -> list[str]:
    error = f"{item['error_type']}: {item['error']}"
    if item["replay_error"]:
        error += f"\n[yellow]replay failed:[/yellow] {item['replay_error']}"
    state = item["state"]
    if item["replayed_at"]:
        state += f" {item['replayed_at'][:19]} by {item['replayed_by']}"
    return [item["letter_id"], service, item["consumer"],
            f"{item['topic']}/{item['partition']}/{item['offset']}",
            item["event_type"] or "(not a CloudEvent)", error[:300], state]  # fmt: skip


# -- show -----------------------------------------------------------------------------------


@app.command()
def show(
    letter: Annotated[str, typer.Argument(help="The letter's id (from `aidline dlq list`)")],
    service: Service = None,
    token: Token = None,
    json: Json = False,
    request_url: RequestUrl = DEFAULTS.request,
    allocation_url: AllocationUrl = DEFAULTS.allocation,
    delivery_url: DeliveryUrl = DEFAULTS.delivery,
    projection_url: ProjectionUrl = DEFAULTS.projection,
) -> None:
    """One letter in full: where it came from, why it failed, its headers and event."""
    urls = _urls(service, request_url, allocation_url, delivery_url, projection_url)
    for name, url in urls.items():
        try:
            with _client(url, token) as client:
                response = client.get(f"/admin/dead-letters/{letter}")
                if response.status_code in (404, 422):
                    continue
                body = _json(response, 200)
        except (httpx.HTTPError, Unanswered) as exc:
            errors.print(f"[red]{name}: not answering as expected[/red] ({exc})")
            raise typer.Exit(2) from exc
        if json:
            emit_json({"service": name} | body)
        else:
            console.print_json(dumps({"service": name} | body))
        return
    errors.print(f"[red]no service has dead letter {letter}[/red]")
    raise typer.Exit(1)


# -- replay ---------------------------------------------------------------------------------


@dataclass
class Replayed:
    """What a replay did, over every call it took."""

    results: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # 409s: the letters failed again

    @property
    def failed(self) -> bool:
        return bool(self.problems) or any(r["outcome"] == "failed" for r in self.results)

    def counts(self) -> dict[str, int]:
        """How many letters had each outcome."""
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        return dict(sorted(counts.items()))


Post = Callable[[dict[str, Any]], httpx.Response]


def replay_selection(post: Post, body: dict[str, Any]) -> Replayed | None:
    """Replay what `body` selects through `post` (one service's replay endpoint); None if that
    service has no such letters or consumer (404). A consumer's letters take call after call
    until none remains: each passes over those that failed before (`skip`), which stay first in
    the order."""
    done = Replayed()
    skip = 0
    while True:
        response = post(body | {"skip": skip} if "consumer" in body else body)
        if response.status_code == 404 and not done.results:
            return None
        if response.status_code == 409:  # letters by id, every one failed again
            done.problems.append(str(_json(response, 409).get("detail")))
            return done
        report = _json(response, 200)
        done.results += report["results"]
        skip += report["failed"]
        if "consumer" not in body or not report["remaining"] or not report["results"]:
            return done


@app.command()
def replay(
    letters: Annotated[list[str] | None, typer.Argument(help="Letter ids")] = None,
    consumer: Annotated[str | None, typer.Option(help="Replay this consumer's letters")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every pending letter of --consumer")] = False,
    topic: Annotated[str | None, typer.Option(help="Original topic")] = None,
    partition: Annotated[int | None, typer.Option(help="Original partition")] = None,
    from_offset: Annotated[int | None, typer.Option(help="Original offset, from")] = None,
    to_offset: Annotated[int | None, typer.Option(help="Original offset, to (included)")] = None,
    since: Annotated[str | None, typer.Option(help="Dead-lettered at or after (ISO, zone)")] = None,
    until: Annotated[
        str | None, typer.Option(help="Dead-lettered at or before (ISO, zone)")
    ] = None,
    service: Service = None,
    token: Token = None,
    json: Json = False,
    request_url: RequestUrl = DEFAULTS.request,
    allocation_url: AllocationUrl = DEFAULTS.allocation,
    delivery_url: DeliveryUrl = DEFAULTS.delivery,
    projection_url: ProjectionUrl = DEFAULTS.projection,
) -> None:
    """Replay letters through their consumer once the cause is fixed: exactly once in effect (a
    letter replayed before is reported so, not applied again)."""
    filters = {"topic": topic, "partition": partition, "from_offset": from_offset,
               "to_offset": to_offset, "since": since, "until": until}  # fmt: skip
    filters = {k: v for k, v in filters.items() if v is not None}
    if bool(letters) == (consumer is not None) or (consumer is not None and bool(filters) == all_):
        errors.print("[red]give letter ids, or --consumer with --all or with filters[/red]")
        raise typer.Exit(2)
    urls = _urls(service, request_url, allocation_url, delivery_url, projection_url)
    selections: list[dict[str, Any]]
    if letters:
        selections = [{"ids": letters[i : i + PAGE]} for i in range(0, len(letters), PAGE)]
    else:
        selections = [{"consumer": consumer, "limit": PAGE} | ({"all": True} if all_ else filters)]
    outcome = Replayed()
    try:
        for body in selections:
            outcome = _merge(outcome, _replay_somewhere(body, urls, token))
    except (httpx.HTTPError, Unanswered) as exc:
        errors.print(f"[red]a service did not answer as expected[/red] ({exc})")
        raise typer.Exit(2) from exc
    if json:
        emit_json({"results": outcome.results, "problems": outcome.problems,
                   "counts": outcome.counts()})  # fmt: skip
    else:
        _report(outcome)
    raise typer.Exit(1 if outcome.failed else 0)


def _replay_somewhere(body: dict[str, Any], urls: dict[str, str], token: str | None) -> Replayed:
    """At the service that has the letters or runs the consumer (the others answer 404; letter
    ids are unique across services, consumer names too)."""
    for url in urls.values():
        with _client(url, token) as client:
            done = replay_selection(
                lambda b: client.post("/admin/dead-letters/replay", json=b), body
            )
        if done is not None:
            return done
    what = f"consumer {body['consumer']!r}" if "consumer" in body else "these letters"
    errors.print(f"[red]no service has {what}[/red] (ids: `aidline dlq list`)")
    raise typer.Exit(1)


def _merge(a: Replayed, b: Replayed) -> Replayed:
    return Replayed(a.results + b.results, a.problems + b.problems)


def _report(outcome: Replayed) -> None:
    table = Table(title="Replay")
    for column in ("id", "consumer", "outcome", "error"):
        table.add_column(column)
    colours = {"replayed": "green", "failed": "red"}
    for r in outcome.results:
        colour = colours.get(r["outcome"], "yellow")
        table.add_row(
            r["letter_id"], r["consumer"], f"[{colour}]{r['outcome']}[/]", r["error"] or ""
        )
    console.print(table)
    for problem in outcome.problems:
        console.print(f"[red]failed again, the letters stay:[/red] {problem}")
    counts = outcome.counts()
    console.print(", ".join(f"{n} {o}" for o, n in counts.items()) or "nothing replayed")
