"""A steady load of commands across the services, recording every acknowledged one.

Failures while a service or the broker is down are expected and not recorded: only a 2xx is an
acknowledgement, and only acknowledged commands must survive.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import DEV_SECRET, Role, mint_token
from tests.e2e.stack import Stack

ITEMS = ("ART-155-HE", "ART-155-HE-ER", "DR-FPV-KIT", "DM-MINE-ROLLER", "IT-SECURE-LAPTOP")
DONORS = ("PL", "DE", "NL", "DK", "EE", "CZ", "FR", "SE")


@dataclass(frozen=True)
class Ack:
    service: str
    stream_id: str
    event_id: str
    kind: str
    at: float  # when the 2xx arrived (the event loop's clock)


@dataclass
class Load:
    stack: Stack
    seed: int = 11
    acks: list[Ack] = field(default_factory=list)
    refused: int = 0
    unavailable: int = 0
    server_errors: Counter[int] = field(default_factory=Counter)  # 5xx answers by status
    submitted: dict[str, int] = field(default_factory=dict)  # requirement id -> quantity
    _requirements: list[str] = field(default_factory=list)
    _pledges: list[str] = field(default_factory=list)

    def _headers(self, role: Role, **scope: str) -> dict[str, str]:
        token = mint_token(DEV_SECRET, f"load-{role}", [role], **scope)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    async def _post(
        self,
        client: httpx.AsyncClient,
        service: str,
        path: str,
        body: dict[str, Any],
        role: Role,
        kind: str,
        **scope: str,
    ) -> dict[str, Any] | None:
        try:
            response = await client.post(
                self.stack.url(service) + path, json=body, headers=self._headers(role, **scope)
            )
        except httpx.TransportError:
            self.unavailable += 1  # the service is down right now: not acknowledged
            return None
        if response.status_code >= 500:
            self.unavailable += 1
            self.server_errors[response.status_code] += 1
            return None
        if response.status_code >= 300:
            self.refused += 1  # a rule said no (e.g. 409): nothing was acknowledged
            return None
        result: dict[str, Any] = response.json()
        now = asyncio.get_running_loop().time()
        self.acks.append(Ack(service, result["id"], result["event_id"], kind, now))
        return result

    async def run(self, stop: asyncio.Event, writers: int = 3) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(self._writer(client, stop, w) for w in range(writers)))

    async def _writer(self, client: httpx.AsyncClient, stop: asyncio.Event, w: int) -> None:
        rng = random.Random(self.seed * 100 + w)
        today = datetime.now(UTC).date()
        n = 0
        while not stop.is_set():
            n += 1
            item = rng.choice(ITEMS)
            quantity = rng.randint(10, 500)
            created = await self._post(
                client,
                "request",
                "/requirements",
                {
                    "item_code": item,
                    "quantity": quantity,
                    "priority": rng.randint(1, 4),
                    "needed_by": (today + timedelta(days=rng.randint(10, 60))).isoformat(),
                    "destination": "Operational Command East",
                    "justification": "load test",
                },
                Role.RECIPIENT,
                "requirement",
            )
            if created:
                self._requirements.append(created["id"])
                self.submitted[created["id"]] = quantity
            donor = rng.choice(DONORS)
            pledged = await self._post(
                client,
                "request",
                "/pledges",
                {
                    "donor": donor,
                    "item_code": item,
                    "quantity": rng.randint(10, 400),
                    "source": "stock",
                    "available_from": today.isoformat(),
                },
                Role.DONOR,
                "pledge",
                nation=donor,
            )
            if pledged:
                self._pledges.append(pledged["id"])
            if n % 5 == 0 and self._requirements and self._pledges:
                endorse, self._requirements = self._requirements[-5:], self._requirements[:-5]
                confirm, self._pledges = self._pledges[-5:], self._pledges[:-5]
                await self._post(
                    client,
                    "request",
                    "/decisions",
                    {
                        "meeting_date": today.isoformat(),
                        "reference": f"LOAD-{w}-{n}",
                        "endorse": [{"requirement_id": r, "priority": 1} for r in endorse],
                        "confirm": confirm,
                    },
                    Role.FORUM,
                    "decision",
                )
            if n % 7 == 0:
                await self._dispatch_one(client, rng)
            await asyncio.sleep(0)

    async def _dispatch_one(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        """Milestones: dispatch a planned shipment, when there is one (a delivery command)."""
        try:
            response = await client.get(
                self.stack.url("delivery") + "/shipments?status=planned&limit=20",
                headers=self._headers(Role.PLANNER),
            )
        except httpx.TransportError:
            return
        if response.status_code != 200 or not response.json()["items"]:
            return
        shipment = rng.choice(response.json()["items"])
        serials = (
            [f"{shipment['shipment_id']}-{k}" for k in range(shipment["quantity"])]
            if shipment["eum_class"] == "enhanced"
            else []
        )
        await self._post(
            client,
            "delivery",
            f"/shipments/{shipment['shipment_id']}/dispatch",
            {
                "mode": "road",
                "carrier_ref": "LOAD-1",
                "serials": serials,
            },
            Role.PLANNER,
            "dispatch",
        )
