"""The README's walk-through through typed clients generated from each running service's
`/openapi.json` by openapi-python-client, as an integrator would: a need stated, a pledge, the
forum's decision, the planner's approval, the shipment's milestones to receipt, the board and
the decision's execution view. A client that cannot be generated, a call whose arguments the
document misnames, or an answer its models cannot parse fails here.

The generator runs in an environment of its own (`deploy/local/test-tools.sh` installs it under
`.aidline/tools`): its pins (typer < 0.28) differ from the project's.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from shared.auth import Role
from tests.authkit import token
from tests.e2e.stack import SERVICES, Stack
from tests.infra import eventually

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / ".aidline" / "tools" / "bin" / "openapi-python-client"


async def _generate(service: str, url: str, into: Path) -> None:
    spec = into / f"{service}.json"
    async with httpx.AsyncClient(timeout=60) as http:  # the first ask builds the document
        spec.write_bytes((await http.get(f"{url}/openapi.json")).raise_for_status().content)
    config = into / f"{service}.yaml"
    # No post hooks: they would format the code with a ruff from PATH.
    config.write_text(f"package_name_override: {service}_client\npost_hooks: []\n")
    process = await asyncio.create_subprocess_exec(
        str(GENERATOR), "generate", "--path", str(spec), "--config", str(config),
        "--meta", "none", "--output-path", str(into / f"{service}_client"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, out.decode()[-3000:]


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.content.decode()[:1000]
    return response.parsed


async def _found(what: str, look: Callable[[], Awaitable[Any]]) -> Any:
    """`look()` once it returns something (events travel between the services)."""
    found: list[Any] = []

    async def there() -> bool:
        value = await look()
        if value:
            found.append(value)
        return bool(value)

    await eventually(there, timeout=60, what=what)
    return found[-1]


@pytest.fixture(scope="module")
async def clients(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    if not os.access(GENERATOR, os.X_OK):
        pytest.fail(f"{GENERATOR} is missing; run deploy/local/test-tools.sh", pytrace=False)
    into = tmp_path_factory.mktemp("clients")
    await asyncio.gather(*(_generate(s, stack.url(s), into) for s in SERVICES))
    sys.path.insert(0, str(into))
    try:
        yield {s: stack.url(s) for s in SERVICES}
    finally:
        sys.path.remove(str(into))
        for name in [m for m in sys.modules if m.split(".")[0].endswith("_client")]:
            del sys.modules[name]


async def test_the_walkthrough_through_generated_clients(clients: dict[str, str]) -> None:
    def client(service: str, *roles: Role, **claims: str) -> Any:
        authenticated = _module(f"{service}_client").AuthenticatedClient
        return authenticated(base_url=clients[service], token=token(*roles, **claims))

    def key() -> str:
        return str(uuid.uuid4())

    today = datetime.now(UTC).date()
    request_models = _module("request_client.models")
    recipient, donor = client("request", Role.RECIPIENT), client("request", Role.DONOR)
    forum = client("request", Role.FORUM)

    # 1. A need, 2. a pledge, 3. the forum's decision (business time: days ago).
    submit = _module("request_client.api.requirements.submit_requirement")
    need = request_models.RequirementIn.from_dict({
        "item_code": "ART-155-HE", "quantity": 400, "priority": 1,
        "needed_by": str(today + timedelta(days=45)), "destination": "Operational Command East",
        "justification": "generated client", "stated_on": str(today - timedelta(days=10)),
    })  # fmt: skip
    requirement = _ok(await submit.asyncio_detailed(client=recipient, body=need,
                                                    idempotency_key=key()), 201).id  # fmt: skip
    announce = _module("request_client.api.pledges.announce_pledge")
    offer = request_models.PledgeIn.from_dict({
        "donor": "PL", "item_code": "ART-155-HE", "quantity": 400, "source": "stock",
        "available_from": str(today), "value_eur": 1_600_000,
        "announced_on": str(today - timedelta(days=6))})  # fmt: skip
    pledge = _ok(await announce.asyncio_detailed(client=donor, body=offer,
                                                 idempotency_key=key()), 201).id  # fmt: skip
    record = _module("request_client.api.decisions.record_decision")
    decided = request_models.DecisionIn.from_dict({
        "meeting_date": str(today - timedelta(days=3)), "reference": "UDCG-generated",
        "endorse": [{"requirement_id": requirement, "priority": 1}], "confirm": [pledge],
    })  # fmt: skip
    decision = _ok(await record.asyncio_detailed(client=forum, body=decided,
                                                 idempotency_key=key()), 201).id  # fmt: skip

    # 4. The planner approves the proposal, naming the version read (If-Match).
    planner = client("allocation", Role.PLANNER)
    allocations = _module("allocation_client.api.allocation")
    importlib.import_module("allocation_client.api.allocation.list_allocations")
    importlib.import_module("allocation_client.api.allocation.get_allocation")
    importlib.import_module("allocation_client.api.allocation.approve")

    async def proposed() -> Any:
        page = _ok(await allocations.list_allocations.asyncio_detailed(
            client=planner, requirement_id=requirement))  # fmt: skip
        return page.items[0] if page.items else None

    allocation = (await _found("a proposed allocation", proposed)).allocation_id
    read = await allocations.get_allocation.asyncio_detailed(allocation, client=planner)
    approved = await allocations.approve.asyncio_detailed(
        allocation, client=planner, idempotency_key=key(), if_match=read.headers["etag"]
    )
    _ok(approved)

    # 5. The shipment's milestones, each by the role that reports it.
    delivery_models = _module("delivery_client.models")
    shipments = "delivery_client.api.shipments"
    for name in ("list_shipments", "get_shipment", "dispatch", "arrive", "inspect", "depart",
                 "handover", "receive"):  # fmt: skip
        importlib.import_module(f"{shipments}.{name}")
    api = _module(shipments)
    reader = client("delivery", Role.PLANNER)

    async def planned() -> Any:
        page = _ok(await api.list_shipments.asyncio_detailed(client=reader, limit=500))
        return next((s for s in page.items if s.allocation_id == allocation), None)

    shipment = await _found("the planned shipment", planned)
    hub = client("delivery", Role.HUB, hub=shipment.hub)
    sender, recipient_ops = client("delivery", Role.DONOR), client("delivery", Role.RECIPIENT)
    steps = [
        (api.dispatch, sender, delivery_models.Dispatch.from_dict(
            {"mode": "road", "carrier_ref": "PL-GEN-1"})),
        (api.arrive, hub, None),
        (api.inspect, hub, delivery_models.Inspect.from_dict({"result": "passed"})),
        (api.depart, hub, None),
        (api.handover, hub, delivery_models.Handover.from_dict(
            {"received_good": shipment.quantity, "damaged": 0, "short": 0})),
        (api.receive, recipient_ops, None),
    ]  # fmt: skip
    answer: Any = None
    for step, who, body in steps:
        extra = {"body": body} if body is not None else {}
        answer = _ok(await step.asyncio_detailed(shipment.shipment_id, client=who,
                                                 idempotency_key=key(), **extra))  # fmt: skip
    received = answer.event_id

    # 6. The board and 7. the decision's execution, once the receipt is applied.
    board = importlib.import_module("projection_client.api.read_models.requirement")
    execution = importlib.import_module("projection_client.api.read_models.decision_execution")
    projection_models = _module("projection_client.models")
    shown = _ok(await board.asyncio_detailed(
        requirement, client=client("projection", Role.PLANNER), after_event=received))  # fmt: skip
    # The generated model parsed the answer: its schema is the service's truth.
    assert isinstance(shown, projection_models.RequirementDetail), shown
    assert shown.status in ("delivered", "fulfilled"), shown
    assert (shown.requested, shown.delivered) == (400, 400), shown
    assert [a.quantity for a in shown.allocations] == [400], shown
    assert [s.status for s in shown.shipments] == ["received"], shown
    view = _ok(await execution.asyncio_detailed(
        decision, client=client("projection", Role.FORUM), after_event=received))  # fmt: skip
    assert isinstance(view, projection_models.DecisionExecution), view
    (line,) = [x for x in view.lines if x.kind == "requirement"]
    assert line.subject == requirement
    assert (line.confirmed, line.received, list(line.stuck)) == (400, 400, []), line
    assert view.requirements.received == 400 and view.shipments == [], view  # forum: no shipments
