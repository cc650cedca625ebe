"""Pledge imports: reading the CSV file, validating each row, and the answer (no database here).

The route reads the file: it is checked as a whole first (UTF-8, the header, well-formed CSV, a
row limit) and refused with problem+json if it fails; then every row is validated on its own, so
one bad row is reported and the others still count. The handler stores the rows that hold up and
answers with one `Outcome` per row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from services.request.commands import AnnouncePledge, PledgeRow
from services.request.schemas import ImportOut, ImportRow, PledgeIn
from shared.web.problems import Problem

REQUIRED = ("donor", "item_code", "quantity", "source", "available_from", "value_eur", "source_url")
# Business time, the day the pledge was announced: may be left out of the header (files from
# before it), else it is part of the header like the others.
COLUMNS = (*REQUIRED, "announced_on")
OPTIONAL = ("value_eur", "source_url", "announced_on")  # may be empty in a row
MAX_ROWS = 20_000


@dataclass(frozen=True)
class CsvRow:
    line: int  # in the file; the header is line 1
    values: dict[str, str]
    problems: list[dict[str, str]] = field(default_factory=list)


def _refuse(status: int, title: str, detail: str, errors: list[dict[str, Any]]) -> Problem:
    return Problem(status, title, detail, kind="invalid-csv", errors=errors)


def parse(body: bytes) -> list[CsvRow]:
    """The data rows of a pledge CSV; raises Problem when the file as a whole is unusable."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(
            400,
            "The file is not UTF-8",
            f"Byte {exc.start} (0x{body[exc.start]:02x}) is not UTF-8; save the file as UTF-8.",
            [{"field": "body", "message": f"invalid UTF-8 at byte {exc.start}"}],
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise _refuse(422, "Empty file", "The file has no header.", [_header_error()])
        names = [name.strip().lower() for name in header]
        missing = [c for c in REQUIRED if c not in names]
        unknown = [n for n in names if n not in COLUMNS]
        if missing or unknown or len(set(names)) != len(names):
            raise _refuse(
                422,
                "Wrong CSV header",
                f"Missing columns: {missing or 'none'}; unknown or repeated: "
                f"{unknown or 'none'}. The header is {','.join(COLUMNS)}.",
                [{"field": f"header.{c}", "message": "missing column"} for c in missing]
                + [{"field": f"header.{n}", "message": "unknown column"} for n in unknown]
                or [_header_error()],
            )
        rows: list[CsvRow] = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank lines are not rows
            if len(rows) == MAX_ROWS:
                raise _refuse(
                    413,
                    "Too many rows",
                    f"One import takes at most {MAX_ROWS:,} rows; split the file.",
                    [{"field": "body", "message": f"more than {MAX_ROWS} rows"}],
                )
            rows.append(_row(reader.line_num, names, values))
    except csv.Error as exc:
        raise _refuse(
            422,
            "Malformed CSV",
            f"Line {reader.line_num}: {exc}.",
            [{"field": f"line.{reader.line_num}", "message": str(exc)}],
        ) from exc
    if not rows:
        raise _refuse(
            422,
            "No rows",
            "The file has a header but no rows.",
            [{"field": "body", "message": "no rows"}],
        )
    return rows


def _header_error() -> dict[str, str]:
    return {"field": "header", "message": f"expected {','.join(COLUMNS)}"}


def _row(line: int, names: list[str], values: list[str]) -> CsvRow:
    if len(values) != len(names):
        problem = {"field": "row", "message": f"{len(values)} fields, expected {len(names)}"}
        return CsvRow(line, {}, [problem])
    return CsvRow(line, dict(zip(names, values, strict=True)))


def rows(body: bytes) -> list[PledgeRow]:
    """The file's data rows, each validated; raises Problem when the file as a whole is unusable."""
    return [PledgeRow(row.line, *validate(row)) for row in parse(body)]


def validate(row: CsvRow) -> tuple[AnnouncePledge | None, list[dict[str, str]]]:
    """The row as a pledge command, or the fields it gets wrong."""
    if row.problems:
        return None, row.problems
    data = {k: v for k, v in row.values.items() if not (k in OPTIONAL and not v.strip())}
    try:
        return AnnouncePledge(**PledgeIn.model_validate_strings(data).model_dump()), []
    except ValidationError as exc:
        return None, [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "row",
                "message": err["msg"].removeprefix("Value error, "),
            }
            for err in exc.errors()
        ]


@dataclass
class Outcome:
    """What became of one row (`status` turns to "duplicate" if its pledge was imported before)."""

    row: int
    status: Literal["stored", "duplicate", "rejected"]
    pledge_id: str | None = None
    note: str | None = None  # why a row is a duplicate
    errors: Sequence[Mapping[str, str]] = ()


def answer(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The import's answer: the counts and every row's outcome (`schemas.ImportOut`)."""
    body = ImportOut(
        stored=sum(o.status == "stored" for o in outcomes),
        duplicates=sum(o.status == "duplicate" for o in outcomes),
        rejected=sum(o.status == "rejected" for o in outcomes),
        rows=[ImportRow(**asdict(o)) for o in outcomes],
    )
    return body.model_dump(mode="json", exclude_none=True)
