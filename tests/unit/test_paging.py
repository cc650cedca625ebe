"""Cursors: opaque to clients, round-tripping any small JSON value, refusing forgeries."""

from __future__ import annotations

import pytest

from shared.web.paging import Page, encode_cursor
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
