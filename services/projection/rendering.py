"""How the read routes write their answers: JSON with ISO 8601 dates, the board also as CSV."""

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


def csv_response(rows: Sequence[dict[str, Any]], fields: Sequence[str], filename: str) -> Response:
    """`rows` as a CSV attachment, one column per field (other keys left out)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
