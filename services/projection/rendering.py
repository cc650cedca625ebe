"""How the read routes write their answers: JSON with ISO 8601 dates, the board and the
decisions also as CSV (with formula cells neutralised)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from fastapi.responses import JSONResponse, Response


def json_response(value: Any) -> JSONResponse:
    """Dates and times as ISO 8601, UUIDs as strings."""
    return JSONResponse(json.loads(json.dumps(value, default=_plain)))


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); OWASP:
# prefix such a cell with a single quote so that it is shown as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` as a CSV cell a spreadsheet will not evaluate (user text is prefixed with `'`);
    a list as its items joined by spaces."""
    if isinstance(value, list | tuple):
        value = " ".join(str(item) for item in value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(rows: Sequence[dict[str, Any]], fields: Sequence[str], filename: str) -> Response:
    """`rows` as a CSV attachment, one column per field (other keys left out), every text cell
    safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
