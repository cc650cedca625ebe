"""`aidline import pledges FILE`: send a pledge CSV to the request service, in batches, with a
progress bar and a summary of what was stored, what was already there and what was refused.

Batches keep each request small; the service derives each pledge's id from the row's content,
so running the command again (or after an interruption) stores nothing twice. Exit status: 0 all
rows stored or already there, 1 some rows refused, 2 the file or the service refused outright.
Everything it prints goes to stderr, except with `--json` the summary on stdout: {"rows",
"stored", "duplicates", "refused": [{"line", "why"}]}.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.cli._options import (
    DEFAULTS,
    Json,
    LegacyUrl,
    Quiet,
    RequestUrl,
    Token,
    emit_json,
    legacy_url,
)

app = typer.Typer(help="Import data into Aidline.", no_args_is_help=True)
console = Console(stderr=True)

MAX_SHOWN = 50
COLUMNS = ("donor", "item_code", "quantity", "source", "available_from", "value_eur", "source_url")
# Optional, business time: the day each pledge was announced (else the day of the import).
DATE_COLUMN = "announced_on"
HEADER_HELP = f"CSV with the header {','.join(COLUMNS)}[,{DATE_COLUMN}]"


@dataclass
class Tally:
    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, why)

    def document(self, rows: int) -> dict[str, Any]:
        refused = [{"line": line, "why": why} for line, why in self.rejected]
        return {"rows": rows, "stored": self.stored, "duplicates": self.duplicates,
                "refused": refused}  # fmt: skip


def _read(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows with the line each ends on."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(f"{path} is not UTF-8 (byte {exc.start}); save it as UTF-8.") from exc
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
        rows = [(reader.line_num, row) for row in reader if any(v.strip() for v in row)]
    except csv.Error as exc:
        raise _fail(f"{path}, line {reader.line_num}: {exc}") from exc
    if not header or not rows:
        raise _fail(f"{path} has no rows to import.")
    return header, rows


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _batch(header: list[str], rows: list[tuple[int, list[str]]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(row for _, row in rows)
    return out.getvalue().encode()


def _refused(answer: httpx.Response) -> typer.Exit:
    try:
        problem: dict[str, Any] = answer.json()
    except ValueError:
        problem = {"title": answer.reason_phrase, "detail": answer.text[:500]}
    lines = [f"{problem.get('title')} ({answer.status_code}): {problem.get('detail', '')}"]
    lines += [f"  {e.get('field')}: {e.get('message')}" for e in problem.get("errors", [])]
    return _fail("\n".join(lines))


def _send(client: httpx.Client, body: bytes, lines: list[int], tally: Tally) -> None:
    try:
        answer = client.post("/imports/pledges", content=body)
    except httpx.HTTPError as exc:
        raise _fail(f"the request service did not answer: {exc!r}") from exc
    if answer.status_code != 200:
        raise _refused(answer)
    # One result per row, in order: map the batch's rows back to the file's lines.
    for line, result in zip(lines, answer.json()["rows"], strict=True):
        if result["status"] == "stored":
            tally.stored += 1
        elif result["status"] == "duplicate":
            tally.duplicates += 1
        else:
            why = "; ".join(f"{e['field']}: {e['message']}" for e in result["errors"])
            tally.rejected.append((line, why))


def _summary(tally: Tally, total: int) -> None:
    table = Table(title=f"{total:,} rows")
    for column in ("stored", "already there", "refused"):
        table.add_column(column, justify="right")
    table.add_row(f"{tally.stored:,}", f"{tally.duplicates:,}", f"{len(tally.rejected):,}")
    console.print(table)
    if tally.rejected:
        refused = Table(title="refused rows", show_lines=False)
        refused.add_column("line", justify="right")
        refused.add_column("why")
        for line, why in tally.rejected[:MAX_SHOWN]:
            refused.add_row(str(line), why)
        console.print(refused)
        if len(tally.rejected) > MAX_SHOWN:
            console.print(f"… and {len(tally.rejected) - MAX_SHOWN:,} more")


@app.command()
def pledges(
    file: Annotated[Path, typer.Argument(help=HEADER_HELP)],
    request_url: RequestUrl = DEFAULTS.request,
    token: Token = None,
    batch_size: Annotated[int, typer.Option(min=1, max=20_000, help="Rows per request")] = 5000,
    json: Json = False,
    quiet: Quiet = False,
    url: LegacyUrl = None,
) -> None:
    """Import pledges from a CSV file (a forum or admin token: `--token`)."""
    url = legacy_url(url, request_url, "--request-url")
    if not token:
        raise _fail("a token is required: --token or AIDLINE_TOKEN (see `aidline token`).")
    header, rows = _read(file)
    tally = Tally()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    columns = (
        TextColumn("[bold]importing[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        httpx.Client(base_url=url, headers=headers, timeout=120) as client,
        Progress(*columns, console=console, disable=quiet) as progress,
    ):
        task = progress.add_task("rows", total=len(rows))
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            _send(client, _batch(header, batch), [line for line, _ in batch], tally)
            progress.advance(task, len(batch))
    if json:
        emit_json(tally.document(len(rows)))
    else:
        _summary(tally, len(rows))
    raise typer.Exit(1 if tally.rejected else 0)
