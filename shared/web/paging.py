"""Sane page sizes for every list endpoint: `?limit=` (1..500, default 50) with `?offset=` or an
opaque `?cursor=` that the previous page handed out; and the one envelope every list answers
(`ListPage`, written by `paged`).

A cursor is URL-safe base64 of a small JSON value (a position, a key); it is opaque to clients
but not secret, so it must never carry anything the caller may not see.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

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


# -- the one list envelope ---------------------------------------------------------------------

Item = TypeVar("Item")


class ListPage(BaseModel, Generic[Item]):
    """Every list endpoint answers this envelope (docs/DESIGN.md §4, "Lists"), and a
    `Link: <…>; rel="next"` header (RFC 8288) while `next_offset` is not null. Name each use
    (`class ShipmentPage(ListPage[ShipmentView])`): the name generated clients give it."""

    items: list[Item]
    total: int = Field(description="Items matching the filters, on every page")
    limit: int
    offset: int
    next_offset: int | None = Field(description="`offset` of the next page; null on the last")


def next_offset(total: int, limit: int, offset: int) -> int | None:
    """The next page's offset, from the query's window (not from the items shown: a reader
    whose role leaves some out of a page still pages through every row)."""
    return offset + limit if offset + limit < total else None


def paged(
    request: Request,
    items: list[Any],
    *,
    total: int,
    limit: int,
    offset: int,
    extra: dict[str, Any] | None = None,
    render: Callable[[Any], JSONResponse] = JSONResponse,
) -> JSONResponse:
    """The envelope as the answer, with the next page's link (the same URL, every other query
    parameter kept). `extra` adds members beside the envelope's (the dead letters' `consumers`,
    the changes' `from`/`to`); `render` turns the body into the response (the projection's
    writes dates as ISO 8601). Items are sent as given: never re-validated through a model,
    which would add the fields a reader's role holds back as nulls."""
    following = next_offset(total, limit, offset)
    body = {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following,
    } | (extra or {})
    response = render(body)
    if following is not None:
        link = request.url.include_query_params(offset=following)
        response.headers["Link"] = f'<{link}>; rel="next"'
    return response


# The one limit rule, for routes to declare their `limit` and `offset` with.
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1..{MAX_LIMIT}, default 50).")
]
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (`next_offset` of the last page).")
]
