"""Reading pledge CSV files and the identifiers (pure)."""

from __future__ import annotations

import pytest

from services.request import imports
from services.request.handlers import import_pledge_id
from shared.ids import new_id, stable_id
from shared.web.problems import Problem

HEADER = "donor,item_code,quantity,source,available_from,value_eur,source_url\n"


def test_rows_keep_their_line_numbers_and_validate_one_by_one() -> None:
    body = (
        HEADER
        + "pl,art-155-he,5000,stock,2030-01-15,22500000,https://example.org/a\n"
        + "\n"
        + "XX,ART-155-HE,-1,gift,2030-02-30,,\n"
        + '"DE","AD-IRIST-SLM","1","procurement","2030-06-01","",""\n'
    ).encode()
    rows = imports.parse(body)
    assert [r.line for r in rows] == [2, 4, 5]
    good, errors = imports.validate(rows[0])
    assert errors == [] and good is not None
    assert (good.donor, good.item_code, good.quantity) == ("PL", "ART-155-HE", 5000)
    bad, errors = imports.validate(rows[1])
    assert bad is None
    assert {e["field"] for e in errors} == {"donor", "quantity", "source", "available_from"}
    optional, errors = imports.validate(rows[2])
    assert errors == [] and optional is not None and optional.value_eur is None


def test_a_row_with_the_wrong_number_of_fields_is_rejected_alone() -> None:
    rows = imports.parse((HEADER + "PL,ART-155-HE,5\n").encode())
    assert imports.validate(rows[0]) == (
        None,
        [{"field": "row", "message": "3 fields, expected 7"}],
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"\xff\xfedonor", 400, "body"),
        (b"donor,item_code,quantity\nPL,X,1\n", 422, "header.source"),
        (
            HEADER.replace("\n", ",colour\n").encode() + b"PL,X,1,stock,2030-01-01,,,red\n",
            422,
            "header.colour",
        ),
        (b"", 422, "header"),
        (HEADER.encode(), 422, "body"),
        (HEADER.encode() + b'PL,"ART,1,stock,2030-01-01,,\n', 422, "line.2"),
    ],
)
def test_unusable_files_are_refused_whole(body: bytes, status: int, field: str) -> None:
    with pytest.raises(Problem) as refused:
        imports.parse(body)
    assert refused.value.status == status
    assert field in {e["field"] for e in refused.value.errors or []}


def test_a_file_over_the_row_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    with pytest.raises(Problem) as refused:
        imports.parse((HEADER + "PL,ART-155-HE,1,stock,2030-01-01,,\n" * 4).encode())
    assert refused.value.status == 413


def test_the_same_row_content_gives_the_same_pledge_id() -> None:
    [a, b, c] = imports.parse(
        (
            HEADER
            + "pl,ART-155-HE,5000,stock,2030-01-15,22500000,\n"
            + "PL,art-155-he,5000,stock,2030-01-15,22500000.0,\n"
            + "PL,ART-155-HE,5001,stock,2030-01-15,22500000,\n"
        ).encode()
    )
    ids = [import_pledge_id(imports.validate(r)[0]) for r in (a, b, c)]  # type: ignore[arg-type]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("PLG-") and len(ids[0]) == 30


def test_new_ids_are_readable_unique_and_sort_by_time() -> None:
    ids = [new_id("REQ") for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(i.startswith("REQ-") and len(i) == 30 for i in ids)
    assert new_id("REQ")[:14] >= ids[0][:14]  # the millisecond part only grows
    assert stable_id("PLG", "a", "b") == stable_id("PLG", "a", "b") != stable_id("PLG", "ab")
