"""Every input at its longest, through all four services on PostgreSQL: token subjects of 200
characters (and a 50-character hub claim), a 128-character X-Correlation-ID, 200-character
Idempotency-Keys and every text field of the flow at its maximum. Nothing is dead-lettered and
the read models hold it all: what the edge accepts, every column it reaches can store."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import DEV_SECRET, MAX_HUB_CHARS, MAX_SUB_CHARS, Role, mint_token
from tests.e2e.stack import SERVICES, Stack
from tests.infra import eventually

RUN = uuid.uuid4().hex[:8]
CORRELATION = f"max-{RUN}-".ljust(128, "c")
TODAY = datetime.now(UTC).date()
DLQ = re.compile(r"^aidline_consumer_dlq_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def _sub(role: str) -> str:
    return f"{role}-{RUN}-".ljust(MAX_SUB_CHARS, "s")


def _token(role: Role, nation: str | None = None, hub: str | None = None) -> str:
    return mint_token(DEV_SECRET, _sub(str(role)), [str(role)], nation=nation, hub=hub)


class Client:
    def __init__(self, stack: Stack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http

    async def post(self, service: str, path: str, token: str, body: Any, **headers: str) -> Any:
        key = f"{uuid.uuid4()}-".ljust(200, "k")
        response = await self.http.post(
            self.stack.url(service) + path,
            json=body,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Correlation-ID": CORRELATION,
                "Idempotency-Key": key,
            }
            | headers,
        )
        assert response.status_code < 300, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def get(self, service: str, path: str, token: str, **params: Any) -> Any:
        response = await self.http.get(
            self.stack.url(service) + path,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def dead_letters(self) -> dict[str, float]:
        counts = {}
        for service in SERVICES:
            metrics = (await self.http.get(self.stack.url(service) + "/metrics")).text
            counts[service] = sum(float(v) for v in DLQ.findall(metrics))
        return counts


async def test_longest_values_reach_every_read_model(stack: Stack) -> None:
    recipient, forum = _token(Role.RECIPIENT), _token(Role.FORUM)
    donor, admin = _token(Role.DONOR, nation="PL"), _token(Role.ADMIN)
    long_hub = "H" * MAX_HUB_CHARS  # a planner scoped to a hub: the longest actor there is
    planner = _token(Role.PLANNER, hub=long_hub)
    destination = f"Destination {RUN} ".ljust(200, "d")
    item_code = f"MX{RUN}".upper().ljust(40, "X")
    item_name = f"Item {RUN} ".ljust(200, "n")

    async with httpx.AsyncClient(timeout=30) as http:
        c = Client(stack, http)
        dead_before = await c.dead_letters()

        await c.post(
            "request",
            "/catalogue/items",
            admin,
            {
                "code": item_code,
                "name": item_name,
                "capability": "artillery",
                "unit": "u" * 30,
                "eum_class": "none",
            },
        )
        needed_by = str(TODAY + timedelta(days=45))
        requirement = {
            "item_code": "ART-155-HE",
            "quantity": 2000,
            "priority": 1,
            "needed_by": needed_by,
            "destination": destination,
            "justification": "j" * 4000,
        }
        req = (await c.post("request", "/requirements", recipient, requirement))["id"]
        other = await c.post(
            "request", "/requirements", recipient, requirement | {"item_code": item_code}
        )
        pledge = await c.post(
            "request",
            "/pledges",
            donor,
            {
                "donor": "PL",
                "item_code": "ART-155-HE",
                "quantity": 2000,
                "source": "stock",
                "available_from": str(TODAY),
                "value_eur": 1e12,
                "source_url": "https://" + "u" * 1992,
            },
        )
        await c.post(
            "request",
            "/decisions",
            forum,
            {
                "meeting_date": str(TODAY),
                "reference": "r" * 200,
                "endorse": [{"requirement_id": req, "priority": 1}],
                "confirm": [pledge["id"]],
            },
        )

        async def proposed() -> list[dict[str, Any]]:
            page = await c.get(
                "allocation", "/allocations", planner, requirement_id=req, status="proposed"
            )
            return list(page["items"])

        await eventually(proposed, 60, "the allocation proposed")
        allocation = (await proposed())[0]["allocation_id"]
        version = (await c.get("allocation", f"/allocations/{allocation}", planner))["version"]
        await c.post(
            "allocation",
            f"/allocations/{allocation}/approve",
            planner,
            {},
            **{"If-Match": f'"{version}"'},
        )

        async def planned() -> list[dict[str, Any]]:
            page = await c.get("delivery", "/shipments", planner, status="planned", limit=500)
            return [s for s in page["items"] if s["allocation_id"] == allocation]

        await eventually(planned, 60, "the shipment planned")
        shipment = (await planned())[0]
        ship, hub = shipment["shipment_id"], shipment["hub"]
        hub_ops = _token(Role.HUB, hub=hub)
        path = f"/shipments/{ship}"
        await c.post(
            "delivery", f"{path}/dispatch", donor, {"mode": "road", "carrier_ref": "c" * 200}
        )
        await c.post(
            "delivery",
            f"{path}/delay",
            hub_ops,
            {"reason": "d" * 1000, "new_eta": str(TODAY + timedelta(days=3))},
        )
        await c.post("delivery", f"{path}/arrive", hub_ops, {})
        await c.post(
            "delivery", f"{path}/inspect", hub_ops, {"result": "passed", "notes": "n" * 2000}
        )
        await c.post("delivery", f"{path}/depart", hub_ops, {})
        quantity = shipment["quantity"]
        await c.post(
            "delivery",
            f"{path}/handover",
            hub_ops,
            {"received_good": quantity, "damaged": 0, "short": 0},
        )
        received = await c.post("delivery", f"{path}/receive", recipient, {})

        # The read models: the board, the audit trail (actor, correlation id) and the catalogue.
        board = await c.get(
            "projection", f"/board/requirements/{req}", planner, after_event=received["event_id"]
        )
        assert board["destination"] == destination
        assert board["status"] in ("delivered", "fulfilled"), board
        assert board["shipments"][0]["carrier_ref"] == "c" * 200
        trail = (await c.get("projection", f"/audit/{allocation}", planner))["events"]
        approved = [e for e in trail if e["event_type"] == "allocation.approved"]
        assert approved and approved[0]["actor"] == f"{_sub('planner')}@{long_hub}"
        assert approved[0]["correlation_id"] == CORRELATION
        trail = (await c.get("projection", f"/audit/{ship}", planner))["events"]
        received_event = [e for e in trail if e["event_id"] == received["event_id"]]
        assert received_event and received_event[0]["actor"] == _sub("recipient")
        assert received_event[0]["correlation_id"] == CORRELATION
        catalogued = await c.get(
            "projection",
            f"/board/requirements/{other['id']}",
            planner,
            after_event=other["event_id"],
        )
        assert catalogued["item_name"] == item_name
        approval = await c.get("allocation", f"/allocations/{allocation}", planner)
        assert approval["approved_by"] == f"{_sub('planner')}@{long_hub}"

        assert await c.dead_letters() == dead_before, "nothing is dead-lettered"
