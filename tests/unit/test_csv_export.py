"""CSV exports are safe to open in a spreadsheet: no cell is evaluated as a formula (OWASP)."""

from __future__ import annotations

import csv
import io

import pytest

from services.projection.rendering import csv_response, safe_cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Lviv", "Lviv"),
        ("", ""),
        (-5, -5),  # numbers are numbers, not text
        (None, None),
    ],
)
def test_a_cell_starting_like_a_formula_is_prefixed(value: object, cell: object) -> None:
    assert safe_cell(value) == cell


def test_every_cell_of_an_export_is_neutralised() -> None:
    rows = [{"requirement_id": "=1+2", "destination": '=HYPERLINK("http://x")', "requested": -1}]
    response = csv_response(rows, ["requirement_id", "destination", "requested"], "r.csv")
    header, row = list(csv.reader(io.StringIO(bytes(response.body).decode())))
    assert header == ["requirement_id", "destination", "requested"]
    assert row == ["'=1+2", '\'=HYPERLINK("http://x")', "-1"]
