"""Sane page sizes for every list endpoint: `?limit=` (1..500, default 50) with `?offset=` or an
opaque `?cursor=` that the previous page handed out.

A cursor is URL-safe base64 of a small JSON value (a position, a key); it is opaque to clients
but not secret, so it must never carry anything the caller may not see.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query

from shared.web.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000  # deeper than this, use a cursor
MAX_CURSOR_CHARS = 512


@dataclass(frozen=True)
class Page:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    cursor: str | None = None

    def after(self) -> Any:
        """The value the cursor stands for (None on the first page); 422 for a forged cursor."""
        if self.cursor is None:
            return None
        try:
            padded = self.cursor + "=" * (-len(self.cursor) % 4)
            return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        except (ValueError, binascii.Error, UnicodeError) as exc:
            raise Problem(
                422,
                "Invalid request",
                "The cursor is not one this service handed out; start again without it.",
                errors=[{"field": "query.cursor", "message": "invalid cursor", "type": "cursor"}],
            ) from exc


def encode_cursor(value: Any) -> str:
    """The `cursor` for the page after `value` (put it in the response as `next_cursor`)."""
    raw = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1..{MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Items to skip; not with `cursor`.")
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_CHARS, description="`next_cursor` of the previous page."),
    ] = None,
) -> Page:
    if cursor is not None and offset:
        raise Problem(
            422,
            "Invalid request",
            "Use either `offset` or `cursor`, not both.",
            errors=[{"field": "query.offset", "message": "not with cursor", "type": "conflict"}],
        )
    return Page(limit=limit, offset=offset, cursor=cursor or None)
