"""Cursors: opaque to clients, round-tripping any small JSON value, refusing forgeries; the
one list envelope and its next-page link."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.requests import Request

from shared.web.paging import Page, encode_cursor, next_offset, paged
from shared.web.problems import Problem


@pytest.mark.parametrize("value", [0, 12345, "S-9", {"position": 7, "id": "R-1"}, [1, "a"]])
def test_a_cursor_round_trips(value: object) -> None:
    cursor = encode_cursor(value)
    assert cursor.isascii() and "=" not in cursor
    assert Page(cursor=cursor).after() == value


def test_the_first_page_has_no_cursor() -> None:
    assert Page().after() is None
    assert (Page().limit, Page().offset) == (50, 0)


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGpzb24", "é"])
def test_a_forged_cursor_is_422_naming_the_field(cursor: str) -> None:
    with pytest.raises(Problem) as raised:
        Page(cursor=cursor).after()
    assert raised.value.status == 422
    assert raised.value.errors == [
        {"field": "query.cursor", "message": "invalid cursor", "type": "cursor"}
    ]


def _request(query: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("127.0.0.1", 8004),
            "path": "/board/requirements",
            "query_string": query.encode(),
            "headers": [(b"host", b"127.0.0.1:8004")],
        }
    )


def test_a_page_links_to_the_next_with_every_other_parameter_kept() -> None:
    request = _request("status=endorsed&limit=2&offset=2&capability=air%20defence")
    answer = paged(request, ["c", "d"], total=5, limit=2, offset=2, extra={"from": "x"})
    assert json.loads(bytes(answer.body)) == {
        "items": ["c", "d"],
        "total": 5,
        "limit": 2,
        "offset": 2,
        "next_offset": 4,
        "from": "x",
    }
    url, rel = answer.headers["Link"].split("; ")
    assert rel == 'rel="next"' and url.startswith("<http://127.0.0.1:8004/board/requirements?")
    query = parse_qs(urlsplit(url[1:-1]).query)
    assert query == {
        "status": ["endorsed"],
        "limit": ["2"],
        "offset": ["4"],
        "capability": ["air defence"],
    }


def test_the_last_page_has_no_next() -> None:
    # Fewer items than the limit (the reader may not see some rows) is not the end: the total is.
    middle = paged(_request("limit=2"), ["a"], total=3, limit=2, offset=0)
    assert json.loads(bytes(middle.body))["next_offset"] == 2 and "Link" in middle.headers
    last = paged(_request("limit=2&offset=2"), ["c"], total=3, limit=2, offset=2)
    assert json.loads(bytes(last.body))["next_offset"] is None and "Link" not in last.headers
    assert next_offset(0, 50, 0) is None
