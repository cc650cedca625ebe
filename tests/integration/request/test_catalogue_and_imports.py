"""The item catalogue over HTTP, and pledge imports: per-row results, nothing stored twice."""

from __future__ import annotations

import csv
import io
from typing import Any

import sqlalchemy as sa

from shared.catalogue import base_items
from shared.eventstore.tables import events
from tests.integration.request.conftest import (
    ADMIN,
    FORUM,
    OBSERVER,
    RECIPIENT,
    Service,
    requirement_body,
)

COLUMNS = ["donor", "item_code", "quantity", "source", "available_from", "value_eur", "source_url"]
CSV = {"Content-Type": "text/csv"}


async def test_the_catalogue_lists_base_and_added_items(service: Service) -> None:
    page = (await service.client.get("/catalogue/items?limit=500", headers=OBSERVER)).json()
    items = page["items"]
    assert len(items) == page["total"] >= len(base_items()) >= 60
    assert page["next_offset"] is None
    drones = (
        await service.client.get("/catalogue/items?capability=drones&limit=500", headers=OBSERVER)
    ).json()["items"]
    assert drones and {i["capability"] for i in drones} == {"drones"}
    # A page at a time, the filter kept in the next page's link (RFC 8288).
    first = await service.client.get("/catalogue/items?limit=2&capability=drones", headers=OBSERVER)
    assert [i["item_code"] for i in first.json()["items"]] == [i["item_code"] for i in drones[:2]]
    assert first.json()["next_offset"] == 2
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"') and "capability=drones" in link and "offset=2" in link
    second = await service.client.get(link[1 : link.index(">")], headers=OBSERVER)
    assert [i["item_code"] for i in second.json()["items"]] == [i["item_code"] for i in drones[2:4]]
    bad_filter = await service.client.get("/catalogue/items?capability=space", headers=OBSERVER)
    assert bad_filter.status_code == 422

    item = {
        "code": "ad-camm",
        "name": "CAMM interceptor",
        "capability": "air_defence",
        "unit": "Missiles",
        "eum_class": "enhanced",
        "substitutes": ["AD-ASTER30"],
    }
    added = await service.post("/catalogue/items", item, ADMIN)
    assert added.status_code == 201, added.text
    assert added.json()["id"] == "AD-CAMM"
    listed = {
        i["item_code"]: i
        for i in (await service.client.get("/catalogue/items?limit=500", headers=FORUM)).json()[
            "items"
        ]
    }
    assert listed["AD-CAMM"] | {"origin": "added"} == listed["AD-CAMM"]
    assert listed["AD-CAMM"]["unit"] == "missiles"
    again = await service.post("/catalogue/items", item, ADMIN)
    assert again.status_code == 409 and "already has an item AD-CAMM" in again.json()["detail"]
    unit_mismatch = item | {"code": "AD-X", "substitutes": ["ART-155-HE"]}
    assert (await service.post("/catalogue/items", unit_mismatch, ADMIN)).status_code == 409
    history = (await service.client.get("/streams/catalogue-AD-CAMM/events", headers=FORUM)).json()
    assert [e["type"] for e in history["events"]] == ["catalogue.item_added"]
    # The added item can be asked for.
    submitted = await service.post(
        "/requirements", requirement_body(item_code="AD-CAMM"), RECIPIENT
    )
    assert submitted.status_code == 201


def _csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode()


async def _pledge_streams(svc: Service, ids: set[str]) -> int:
    async with svc.runtime.db.engine.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).where(events.c.stream_id.in_(ids)))
    return int(count or 0)


async def test_import_reports_every_row_and_stores_nothing_twice(service: Service) -> None:
    # 5,000 rows in one request: distinct pledges, with bad and repeated rows among them.
    codes = sorted(base_items())
    rows: list[list[Any]] = [
        ["pl" if i % 2 else "DE", codes[i % len(codes)], 1 + i, "stock", "2030-01-01",
         1000 * i, f"https://example.org/pledges/{i}"]
        for i in range(4996)
    ]  # fmt: skip
    rows.insert(10, ["XX", "ART-155-HE", 0, "gift", "2030-02-30", "-1", "ftp://x"])  # line 12
    rows.insert(20, ["PL", "NOPE-1", 5, "stock", "2030-01-01", "", ""])  # line 22
    rows.insert(30, ["PL", "ART-155-HE", 5])  # line 32: three fields
    rows.append(rows[0])  # a repeated row
    assert len(rows) == 5000
    body = _csv(rows)

    first = await service.client.post("/imports/pledges", content=body, headers=FORUM | CSV)
    assert first.status_code == 200, first.text[:500]
    result = first.json()
    assert (result["stored"], result["duplicates"], result["rejected"]) == (4996, 1, 3)
    assert len(result["rows"]) == 5000
    by_line = {r["row"]: r for r in result["rows"]}
    assert {e["field"] for e in by_line[12]["errors"]} == {
        "donor", "quantity", "source", "available_from", "value_eur", "source_url",
    }  # fmt: skip
    assert by_line[22]["errors"] == [
        {"field": "item_code", "message": "NOPE-1 is not in the catalogue"}
    ]
    assert by_line[32]["status"] == "rejected"
    assert by_line[5001] == {
        "row": 5001,
        "status": "duplicate",
        "pledge_id": by_line[2]["pledge_id"],
        "note": "same as row 2",
        "errors": [],
    }
    stored = {r["pledge_id"] for r in result["rows"] if r["status"] == "stored"}
    assert await _pledge_streams(service, stored) == 4996

    before = await service.snapshot()
    again = await service.client.post("/imports/pledges", content=body, headers=ADMIN | CSV)
    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 4997)
    assert await service.snapshot() == before
    pledge = (await service.client.get(f"/pledges/{by_line[2]['pledge_id']}", headers=FORUM)).json()
    assert (pledge["donor"], pledge["quantity"], pledge["source_url"]) == (
        "DE", 1, "https://example.org/pledges/0",
    )  # fmt: skip
