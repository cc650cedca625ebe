"""Business time of pledges, needs and decisions: an import of four years of public commitments
dates each pledge by its announcement day (`announced_on`, `ce_occurredat`), a need by the day it
was stated (`stated_on`), a decision recorded after its meeting by the meeting's day; the
projection, fed the records the service published, draws the chart over those years and dates
the decision by its meeting."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from shared.contracts.topics import REQUESTS
from tests.infra import end_offsets, eventually, header, read_topic
from tests.integration.request.conftest import FORUM, OBSERVER, Service
from tests.projection import Topics, projection_service, republish

HEADER = ["donor", "item_code", "quantity", "source", "available_from", "value_eur",
          "source_url", "announced_on"]  # fmt: skip
CSV = {"Content-Type": "text/csv"}
# (donor, quantity, announced_on): like the public record, one commitment a year or so; the
# same donor, item and quantity twice on two days are two pledges.
ANNOUNCED = [
    ("DE", 3, "2022-06-01"),
    ("PL", 7, "2023-03-15"),
    ("DE", 3, "2024-01-10"),
    ("FR", 5, "2025-09-30"),
]


def _csv(item: str, rows: list[tuple[str, int, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([donor, item, q, "stock", "2026-01-01", "", "", day] for donor, q, day in rows)
    return out.getvalue().encode()


async def test_an_import_of_years_of_pledges_is_dated_by_their_announcements(
    service: Service,
) -> None:
    # The projection reads topics of its own: only this test's records, so the whole chart.
    item = "ART-155-HE"
    since = await end_offsets(REQUESTS)
    need = await service.submit(stated_on="2022-05-20")
    imported = await service.client.post(
        "/imports/pledges", content=_csv(item, ANNOUNCED), headers=FORUM | CSV
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["stored"] == 4  # DE's two like pledges, two years apart, are two
    pledge_ids = [r["pledge_id"] for r in imported.json()["rows"]]
    # A day to come is refused.
    later = _csv(item, [("PL", 1, "2099-01-01")])
    refused = await service.client.post("/imports/pledges", content=later, headers=FORUM | CSV)
    assert refused.json()["rows"][0]["errors"][0]["field"] == "announced_on"
    meeting = await service.post(
        "/decisions",
        {"meeting_date": "2024-02-14", "reference": "UDCG-19", "confirm": pledge_ids[:2],
         "endorse": [{"requirement_id": need}]},
        FORUM,
    )  # fmt: skip
    assert meeting.status_code == 201, meeting.text
    decision_id = meeting.json()["id"]

    records: list[Any] = []

    async def published() -> bool:
        ours = {*pledge_ids, decision_id, need}
        records[:] = [
            r for r in await read_topic(REQUESTS, since) if r.key and r.key.decode() in ours
        ]
        return len(records) == 4 + 2 + 2 + 1  # announced, confirmed, the need's two, decision

    await eventually(published, what="the import and the decision on aidline.requests")
    dated = {
        (header(r, "ce_subject"), header(r, "ce_type")): header(r, "ce_occurredat") for r in records
    }
    for pledge_id, (_, _, day) in zip(pledge_ids, ANNOUNCED, strict=True):
        assert dated[(pledge_id, "pledge.announced")] == f"{day}T00:00:00+00:00"
    for pledge_id in pledge_ids[:2]:
        assert dated[(pledge_id, "pledge.confirmed")] == "2024-02-14T00:00:00+00:00"
    assert dated[(decision_id, "decision.recorded")] == "2024-02-14T00:00:00+00:00"
    assert dated[(need, "requirement.submitted")] == "2022-05-20T00:00:00+00:00"
    assert dated[(need, "requirement.endorsed")] == "2024-02-14T00:00:00+00:00"
    assert all(header(r, "ce_time") > "2026" for r in records)  # recorded now

    topics = await Topics.fresh()
    await republish(topics.requests, records)
    async with projection_service(topics) as projection:
        series: list[dict[str, Any]] = []

        async def charted() -> bool:
            # The decision and the need are on other partitions than the pledges: the chart
            # may be complete before they are applied.
            gaps = await projection.client.get("/capabilities/gaps", headers=OBSERVER)
            series[:] = gaps.json()["over_time"].get("artillery", [])
            decided = await projection.client.get("/decisions", headers=OBSERVER)
            board = await projection.client.get(f"/board/requirements/{need}", headers=OBSERVER)
            return len(series) == 4 and len(decided.json()["items"]) == 1 and board.is_success

        await eventually(charted, what="four years of pledges on the chart, the need, the decision")
        assert series == [
            {"day": "2022-06-01", "pledged": 3, "delivered": 0},
            {"day": "2023-03-15", "pledged": 10, "delivered": 0},
            {"day": "2024-01-10", "pledged": 13, "delivered": 0},
            {"day": "2025-09-30", "pledged": 18, "delivered": 0},
        ]
        decisions = (await projection.client.get("/decisions", headers=OBSERVER)).json()
        (decision,) = decisions["items"]
        assert decision["meeting_date"] == "2024-02-14"
        assert _instant(decision["recorded_at"]) == datetime(2024, 2, 14, tzinfo=UTC)
        execution = await projection.client.get(
            f"/decisions/{decision_id}/execution", headers=OBSERVER
        )
        assert execution.status_code == 200, execution.text
        assert _instant(execution.json()["recorded_at"]).date() == date(2024, 2, 14)
        board = await projection.client.get(f"/board/requirements/{need}", headers=OBSERVER)
        assert _instant(board.json()["submitted_at"]) == datetime(2022, 5, 20, tzinfo=UTC)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
