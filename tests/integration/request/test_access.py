"""Who may not: wrong role (403), another nation (403), no or bad token (401) — and nothing is
stored when refused."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth import mint_token
from tests.integration.request.conftest import (
    ADMIN,
    DONOR_DE,
    DONOR_PL,
    FORUM,
    OBSERVER,
    RECIPIENT,
    Service,
    auth,
    pledge_body,
    requirement_body,
)


async def forbidden(
    svc: Service, path: str, body: Any, headers: dict[str, str], status: int = 403
) -> str:
    before = await svc.snapshot()
    answer = await svc.post(path, body, headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert await svc.snapshot() == before
    return str(answer.json()["type"])


async def test_a_donor_cannot_act_for_another_nation(service: Service) -> None:
    kind = await forbidden(service, "/pledges", pledge_body(donor="PL"), DONOR_DE)
    assert kind.endswith("forbidden-nation")
    pledge_id = await service.pledge(DONOR_PL)
    for action, body in (("reduce", {"quantity": 1}), ("withdraw", {"reason": "not ours"})):
        kind = await forbidden(service, f"/pledges/{pledge_id}/{action}", body, DONOR_DE)
        assert kind.endswith("forbidden-nation")
    no_nation = auth("donor", sub="stateless")
    await forbidden(service, "/pledges", pledge_body(), no_nation)


@pytest.mark.parametrize(
    "headers",
    [RECIPIENT, DONOR_PL, OBSERVER, ADMIN],
    ids=["recipient", "donor", "observer", "admin"],
)
async def test_only_the_forum_endorses_confirms_and_decides(
    service: Service, headers: dict[str, str]
) -> None:
    requirement_id, pledge_id = await service.submit(), await service.pledge()
    for path in (f"/requirements/{requirement_id}/endorse", f"/pledges/{pledge_id}/confirm"):
        kind = await forbidden(service, path, {}, headers)
        assert kind.endswith("forbidden-role")
    decision = {"meeting_date": "2025-01-01", "reference": "x", "confirm": [pledge_id]}
    await forbidden(service, "/decisions", decision, headers)


async def test_roles_per_endpoint(service: Service) -> None:
    requirement_id = await service.submit()
    await forbidden(service, "/requirements", requirement_body(), FORUM)
    await forbidden(service, "/requirements", requirement_body(), DONOR_PL)
    await forbidden(service, f"/requirements/{requirement_id}/cancel", {"reason": "x"}, FORUM)
    await forbidden(service, f"/requirements/{requirement_id}/amend", {"priority": 1}, OBSERVER)
    await forbidden(service, "/pledges", pledge_body(), FORUM)
    await forbidden(service, "/pledges", pledge_body(), RECIPIENT)
    item = {"code": "IT-X", "name": "x", "capability": "it", "unit": "devices"}
    await forbidden(service, "/catalogue/items", item, FORUM)
    csv = b"donor,item_code,quantity,source,available_from,value_eur,source_url\n"
    for headers in (DONOR_PL, RECIPIENT, OBSERVER):
        answer = await service.client.post(
            "/imports/pledges", content=csv, headers=headers | {"Content-Type": "text/csv"}
        )
        assert answer.status_code == 403


async def test_the_forum_amends_priority_only(service: Service) -> None:
    requirement_id = await service.submit()
    kind = await forbidden(service, f"/requirements/{requirement_id}/amend", {"quantity": 5}, FORUM)
    assert kind.endswith("forbidden-field")


async def test_no_or_bad_token_is_401(service: Service) -> None:
    requirement_id = await service.submit()
    await forbidden(service, "/requirements", requirement_body(), {}, status=401)
    wrong_key = mint_token("another-secret-of-at-least-32-bytes!", "mallory", ["recipient"])
    await forbidden(
        service, "/requirements", requirement_body(), {"Authorization": f"Bearer {wrong_key}"}, 401
    )
    answer = await service.client.get(f"/requirements/{requirement_id}")
    assert answer.status_code == 401 and "bearer" in answer.headers["www-authenticate"].lower()
    # Who you are is checked before what you sent.
    text = await service.client.post(
        "/requirements", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert text.status_code == 401


async def test_every_role_may_read(service: Service) -> None:
    requirement_id = await service.submit()
    for role in ("recipient", "donor", "forum", "planner", "hub", "observer", "admin"):
        answer = await service.client.get(f"/requirements/{requirement_id}", headers=auth(role))
        assert answer.status_code == 200, role
        items = await service.client.get("/catalogue/items", headers=auth(role))
        assert items.status_code == 200, role
