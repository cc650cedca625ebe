"""Half a year of coordination, deterministic for a seed and scalable with `scale`.

The recipient states needs across the capability coalitions, donor nations pledge, the forum
decides in two meetings, the command plans and approves, and shipments move through both hubs
with inspections, a hold, delays, a loss and handovers. Everything goes through the public HTTP
API with development tokens, so the demo exercises exactly what integrators use.

The story is told in business time (DESIGN §3, `ce_occurredat`): needs are stated and pledges
announced over the months before each meeting (`stated_on`, `announced_on`), the forum meets
`MEETINGS` days ago (decisions recorded after the meeting are dated on its day), and the
command executes them as the demo runs, today. So the dashboard's chart spans months, each
decision's execution view counts the days since its meeting, and a board as of a day between
the meetings has something to show.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.auth import Role
from shared.catalogue import CAPABILITIES, Item, base_items
from shared.demo.client import AidlineClient, Conflict, DemoError, wait_for

DONORS = (
    "US",
    "DE",
    "GB",
    "PL",
    "FR",
    "NL",
    "DK",
    "NO",
    "SE",
    "FI",
    "EE",
    "LV",
    "LT",
    "CZ",
    "SK",
    "RO",
    "IT",
    "ES",
    "PT",
    "BE",
    "CA",
    "AU",
    "JP",
    "KR",
)
DESTINATIONS = (
    "Operational Command East, Dnipro",
    "Operational Command South, Odesa",
    "Air Force Command, Vinnytsia",
    "Operational Command North, Chernihiv",
    "Navy Command, Odesa",
)
MODES = ("road", "rail", "air")
Progress = Callable[[str], None]
# The forum's meetings: (reference, days before the demo runs).
MEETINGS = (("UDCG-31", 75), ("UDCG-32", 21))
# The first need and pledge, days before the demo runs; the last come a week before the last
# meeting.
STORY_DAYS = 180
# Independent calls in flight at once: approvals of separate proposals, shipments walked
# (each one's steps in order).
CALLS_AT_ONCE = 8
# The plan has settled when this many reads this far apart (seconds) agree.
SETTLE_READS = 3
SETTLE_INTERVAL = 0.25


@dataclass(frozen=True)
class Calendar:
    """The business days of the story: when each need is stated and its pledges announced, and
    which meeting decides what (what came before it and was not decided yet)."""

    today: date

    def meeting(self, index: int) -> date:
        return self.today - timedelta(days=MEETINGS[index][1])

    def stated(self, n: int, needs: int) -> date:
        """Need `n` of `needs`: spread evenly from `STORY_DAYS` ago to a week before the last
        meeting."""
        span = STORY_DAYS - MEETINGS[-1][1] - 7
        return self.today - timedelta(days=STORY_DAYS - span * n // max(1, needs - 1))

    def announced(self, stated: date, rng: random.Random) -> date:
        """A pledge answering a need stated on `stated`: days to weeks after it, never after
        the week before the last meeting."""
        latest = self.meeting(len(MEETINGS) - 1) - timedelta(days=7)
        return min(stated + timedelta(days=rng.randint(2, 20)), max(stated, latest))

    def decided_at(self, day: date) -> int:
        """The first meeting after `day` (what is stated or announced on it waits for it)."""
        return next(i for i in range(len(MEETINGS)) if day < self.meeting(i))


@dataclass
class Played:
    requirements: list[str] = field(default_factory=list)
    pledges: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    allocations_approved: int = 0
    shipments: dict[str, str] = field(default_factory=dict)  # id -> final status


def _quantity(rng: random.Random, item: Item) -> int:
    base = {"rounds": 20_000, "missiles": 40, "drones": 800, "systems": 4, "vehicles": 12}
    return max(1, int(base.get(item.unit, 50) * rng.uniform(0.4, 1.6)))


async def play(
    client: AidlineClient, *, seed: int = 7, scale: int = 1, say: Progress = print
) -> Played:
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    calendar = Calendar(today)
    items = sorted(base_items().values(), key=lambda i: i.code)
    by_capability = {c: [i for i in items if i.capability == c] for c in CAPABILITIES}
    played = Played()

    # 1. The recipient states its needs, across every coalition.
    needs: list[tuple[str, Item, int]] = []
    stated: list[date] = []
    count = 12 * scale
    for n in range(count):
        capability = CAPABILITIES[n % len(CAPABILITIES)]
        item = rng.choice(by_capability[capability] or items)
        quantity = _quantity(rng, item)
        stated.append(calendar.stated(n, count))
        body = {
            "item_code": item.code,
            "quantity": quantity,
            "priority": rng.choice((1, 1, 2, 2, 3, 4)),
            "needed_by": (today + timedelta(days=rng.randint(20, 90))).isoformat(),
            "destination": rng.choice(DESTINATIONS),
            "justification": f"{item.name}: stocks at the front will not last the quarter.",
            "stated_on": stated[-1].isoformat(),
        }
        created = await client.post("request", "/requirements", body, Role.RECIPIENT)
        needs.append((created["id"], item, quantity))
        played.requirements.append(created["id"])
    say(f"{len(needs)} requirements submitted, stated since {stated[0].isoformat()}")

    # 2. Donor nations pledge, mostly against stated needs, sometimes a substitute, days to
    #    weeks after each need was stated.
    offers: list[tuple[str, str, date]] = []
    for (_, item, quantity), need_stated in zip(needs, stated, strict=True):
        for _ in range(rng.randint(1, 3)):
            donor = rng.choice(DONORS)
            code = rng.choice((item.code, *item.substitutes)) if item.substitutes else item.code
            announced = calendar.announced(need_stated, rng)
            body = {
                "donor": donor,
                "item_code": code,
                "quantity": max(1, int(quantity * rng.uniform(0.2, 0.7))),
                "source": rng.choice(("stock", "stock", "procurement", "pooled")),
                "available_from": (today + timedelta(days=rng.randint(0, 45))).isoformat(),
                "value_eur": round(rng.uniform(0.5, 80) * 1_000_000, 2),
                "source_url": f"https://example.org/{donor.lower()}/pledges/{len(offers) + 1}",
                "announced_on": announced.isoformat(),
            }
            created = await client.post("request", "/pledges", body, Role.DONOR, nation=donor)
            offers.append((created["id"], donor, announced))
            played.pledges.append(created["id"])
    say(f"{len(offers)} pledges from {len({d for _, d, _ in offers})} nations")

    # 3. The forum meets twice: each meeting endorses the needs stated (most; some re-ranked)
    #    and confirms the pledges announced since the one before; the last need and the last
    #    two pledges wait for a meeting to come.
    for index, (reference, _) in enumerate(MEETINGS):
        endorsed = [
            rid
            for (rid, _, _), day in zip(needs[:-1], stated[:-1], strict=True)
            if calendar.decided_at(day) == index
        ]
        confirmed = [pid for pid, _, day in offers[:-2] if calendar.decided_at(day) == index]
        body = {
            "meeting_date": calendar.meeting(index).isoformat(),
            "reference": reference,
            "endorse": [
                {"requirement_id": rid, "priority": 1 if n % 5 == 0 else rng.randint(1, 3)}
                for n, rid in enumerate(endorsed)
            ],
            "confirm": confirmed,
        }
        decision = await client.post("request", "/decisions", body, Role.FORUM)
        played.decisions.append(decision["id"])
    days = ", ".join(calendar.meeting(i).isoformat() for i in range(len(MEETINGS)))
    say(f"forum decisions {', '.join(played.decisions)} (meetings on {days})")

    # One confirmed pledge shrinks and one is withdrawn: the plan must follow.
    reduced_id, reduced_donor, _ = offers[1]
    pledge = await client.get("request", f"/pledges/{reduced_id}", Role.DONOR, nation=reduced_donor)
    if pledge["quantity"] > 1:
        await client.post(
            "request",
            f"/pledges/{reduced_id}/reduce",
            {"quantity": pledge["quantity"] // 2},
            Role.DONOR,
            nation=reduced_donor,
        )
    withdrawn_id, withdrawn_donor, _ = offers[2]
    await client.post(
        "request",
        f"/pledges/{withdrawn_id}/withdraw",
        {"reason": "Stock needed for national readiness."},
        Role.DONOR,
        nation=withdrawn_donor,
    )

    # 4. The command plans; planners approve proposals (one is sent back). The plan keeps
    #    moving while the reduction and withdrawal arrive, so approve in rounds until it settles.
    await client.post("allocation", "/plan/run", {}, Role.PLANNER)
    rejected = False
    gate = asyncio.Semaphore(CALLS_AT_ONCE)
    for _ in range(10):
        proposals = await _settled_proposals(client)
        if not proposals:
            break
        if not rejected and len(proposals) > 3:
            # The first is sent back (re-planned at once, in the same transaction), then the
            # rest are approved, several at once: each approval touches its allocation alone.
            while proposals and not rejected:
                first, *proposals = proposals
                try:
                    await client.post(
                        "allocation",
                        f"/allocations/{first['allocation_id']}/reject",
                        {"reason": "Hub capacity: re-plan next week."},
                        Role.PLANNER,
                    )
                    rejected = True
                except Conflict:
                    continue  # re-planned meanwhile: send back the next one
        approvals = await asyncio.gather(*(_approve(client, a, gate) for a in proposals))
        played.allocations_approved += sum(approvals)
    say(f"{played.allocations_approved} allocations approved")

    # 5. Shipments move through the hubs to the border: each one's steps in order, several
    #    shipments at once (they are separate streams). What each draws from the seed is drawn
    #    first, in the shipments' order, so the story is the same as one at a time.
    shipments = await wait_for(
        lambda: _planned(client, played.allocations_approved),
        what="planned shipments",
        within=60,
    )
    dispatches = [_dispatch_draw(rng, n) for n in range(len(shipments))]

    async def move(n: int, shipment: dict[str, Any]) -> str:
        async with gate:
            try:
                return await _move(client, dispatches[n], shipment, n, today)
            except Conflict:
                return "cancelled"  # its allocation was re-planned

    ends = await asyncio.gather(*(move(n, s) for n, s in enumerate(shipments)))
    for shipment, end in zip(shipments, ends, strict=True):
        played.shipments[shipment["shipment_id"]] = end
    say(f"{len(shipments)} shipments moved")
    return played


async def _approve(
    client: AidlineClient, allocation: dict[str, Any], gate: asyncio.Semaphore
) -> bool:
    """Approve one proposal; False when it was re-planned meanwhile (the next round sees what
    replaced it)."""
    async with gate:
        try:
            path = f"/allocations/{allocation['allocation_id']}/approve"
            await client.post("allocation", path, {}, Role.PLANNER)
        except Conflict:
            return False
        return True


async def _proposed(client: AidlineClient) -> list[dict[str, Any]]:
    page = await client.get("allocation", "/allocations?status=proposed&limit=500", Role.PLANNER)
    items: list[dict[str, Any]] = page["items"]
    return sorted(items, key=lambda a: a["allocation_id"])


async def _progress(client: AidlineClient) -> tuple[bool, list[int]]:
    """Whether everything written so far has reached the allocation service (nothing left in
    the request and allocation services' outboxes, no lag on the allocation service's
    consumers), and how many events each of its consumers has applied."""
    checks = {}
    for service in ("request", "allocation"):
        response = await client.http.get(getattr(client.endpoints, service) + "/readyz")
        checks[service] = response.json().get("checks", {})
    relays = [checks[s].get("relay", {}) for s in ("request", "allocation")]
    consumers = [c for name, c in checks["allocation"].items() if name.startswith("consumer:")]
    caught_up = all(r.get("lag") == 0 for r in relays) and all(c.get("lag") == 0 for c in consumers)
    return caught_up, [int(c.get("applied") or 0) for c in consumers]


async def _settled_proposals(client: AidlineClient) -> list[dict[str, Any]]:
    """The open proposals once the allocation service has caught up: its inputs all published
    and read, and neither the proposals nor what its consumers applied moved for
    `SETTLE_READS` reads in a row (`SETTLE_INTERVAL` apart)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    seen: list[tuple[list[dict[str, Any]], list[int]]] = []
    while loop.time() < deadline:
        caught_up, applied = await _progress(client)
        snapshot = (await _proposed(client), applied)
        seen = [*seen, snapshot] if caught_up and seen and seen[-1] == snapshot else [snapshot]
        if caught_up and len(seen) >= SETTLE_READS:
            return snapshot[0]
        await asyncio.sleep(SETTLE_INTERVAL)
    raise DemoError("the allocation plan did not settle within 30 s")


async def _planned(client: AidlineClient, approved: int) -> list[dict[str, Any]] | None:
    """The planned shipments, once there is one per approved allocation still standing."""
    page = await client.get("delivery", "/shipments?limit=200", Role.PLANNER)
    items: list[dict[str, Any]] = page["items"]
    if len(items) < approved:
        return None
    return sorted((s for s in items if s["status"] == "planned"), key=lambda s: s["shipment_id"])


def _dispatch_draw(rng: random.Random, n: int) -> dict[str, str] | None:
    """What shipment `n` draws from the seed: its mode and carrier (none if it stays planned)."""
    if n % 10 == 9:
        return None
    return {"mode": rng.choice(MODES), "carrier_ref": f"CR-{rng.randint(1000, 9999)}"}


async def _move(
    client: AidlineClient,
    dispatch: dict[str, str] | None,
    shipment: dict[str, Any],
    n: int,
    today: date,
) -> str:
    """Walk one shipment as far as the scenario takes it; returns where it ended."""
    sid, hub, donor, quantity = (
        shipment["shipment_id"],
        shipment["hub"],
        shipment["donor"],
        shipment["quantity"],
    )
    path = f"/shipments/{sid}"
    serials = (
        [f"{sid}-{k:04d}" for k in range(quantity)] if shipment["eum_class"] == "enhanced" else []
    )
    stage = n % 10  # most go all the way; some stay behind at each step
    if stage == 9 or dispatch is None:
        return "planned"
    await client.post(
        "delivery", f"{path}/dispatch", dispatch | {"serials": serials}, Role.DONOR, nation=donor
    )
    if stage == 8:
        await client.post(
            "delivery",
            f"{path}/delay",
            {
                "reason": "Border queue at the crossing.",
                "new_eta": (today + timedelta(days=4)).isoformat(),
            },
            Role.PLANNER,
        )
        return "dispatched"
    await client.post("delivery", f"{path}/arrive", {}, Role.HUB, hub=hub)
    if stage == 7:
        await client.post(
            "delivery",
            f"{path}/inspect",
            {"result": "held", "notes": "Seal broken on two crates."},
            Role.HUB,
            hub=hub,
        )
        return "held"
    if stage == 6:
        await client.post(
            "delivery",
            f"{path}/inspect",
            {"result": "held", "notes": "Paperwork missing."},
            Role.HUB,
            hub=hub,
        )
    await client.post("delivery", f"{path}/inspect", {"result": "passed"}, Role.HUB, hub=hub)
    await client.post("delivery", f"{path}/depart", {}, Role.HUB, hub=hub)
    lost = 0
    if stage == 5 and quantity > 1:
        lost = max(1, quantity // 4)
        await client.post(
            "delivery",
            f"{path}/report-loss",
            {
                "quantity": lost,
                "reason": "Truck damaged in a strike near the border.",
                "serials": serials[:lost],
            },
            Role.PLANNER,
        )
    if stage == 4:
        return "departed_hub"
    remaining = quantity - lost
    damaged = 1 if stage == 3 and remaining > 2 else 0
    await client.post(
        "delivery",
        f"{path}/handover",
        {
            "received_good": remaining - damaged,
            "damaged": damaged,
            "short": 0,
            "serials": serials[lost:],
        },
        Role.HUB,
        hub=hub,
    )
    if stage == 2:
        return "handed_over"
    await client.post("delivery", f"{path}/receive", {}, Role.RECIPIENT)
    return "received"


__all__ = ["DemoError", "Played", "play"]
