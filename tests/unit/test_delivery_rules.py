"""Pure rules around the delivery service's routes: batch row order and errors, visibility."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.delivery.batch import application_order
from services.delivery.commands import BatchRow
from services.delivery.schemas import BATCH_ROW, parse_row, row_errors


def _row(row_id: str, milestone: str, at: str, **fields: Any) -> BatchRow:
    row = parse_row(
        {"row_id": row_id, "shipment_id": "S", "milestone": milestone, "at": at} | fields
    )
    assert isinstance(row, BatchRow)
    return row


def test_rows_are_applied_in_the_order_they_happened_then_in_milestone_order() -> None:
    rows = [
        (0, _row("depart", "depart", "2026-11-25T10:03:00Z")),
        (1, _row("receive", "receive", "2026-11-25T10:09:00+01:00")),  # 09:09 UTC
        (2, _row("arrive", "arrive", "2026-11-25T10:01:00Z")),
        (3, _row("inspect", "inspect", "2026-11-25T10:01:00Z", result="passed")),
        (4, _row("dispatch", "dispatch", "2026-11-25T10:01:00Z", mode="air", carrier_ref="X")),
    ]
    ordered = [row.row_id for _, row in application_order(rows)]
    assert ordered == ["receive", "dispatch", "arrive", "inspect", "depart"]


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({"milestone": "teleport", "at": "2026-11-25T10:00:00Z"}, ["milestone"]),
        ({"at": "2026-11-25T10:00:00Z"}, ["milestone"]),
        ({"milestone": "arrive"}, ["at"]),
        ({"milestone": "arrive", "at": "2026-11-25T10:00:00"}, ["at"]),  # no time zone
        (
            {"milestone": "handover", "at": "2026-11-25T10:00:00Z", "received_good": -1},
            ["received_good", "damaged", "short"],
        ),
    ],
)
def test_invalid_rows_name_their_fields(raw: dict[str, Any], fields: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        BATCH_ROW.validate_python({"row_id": "r", "shipment_id": "S"} | raw)
    assert [e["field"] for e in row_errors(caught.value)] == fields
