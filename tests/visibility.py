"""The leakage tests' common parts: viewers generated from the visibility table, the secrets a
scenario plants (each with every place it legitimately appears), and the check of one read
surface's answers against what the table keeps from a viewer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shared.auth import DEV_SECRET, Principal, Role, mint_token
from shared.auth.visibility import SURFACES, TABLE, Reach, Resource, Surface, hidden_fields

HUBS = ("PL-RZE", "RO-SUC")
NATIONS = ("PL", "DE")


@dataclass(frozen=True)
class Viewer:
    name: str
    principal: Principal

    @property
    def headers(self) -> dict[str, str]:
        p = self.principal
        token = mint_token(DEV_SECRET, p.sub, list(p.roles), nation=p.nation, hub=p.hub)
        return {"Authorization": f"Bearer {token}"}


def _viewers() -> list[Viewer]:
    """One per role, and per hub and nation where the table scopes the role."""
    out = []
    for role in Role:
        reaches = {TABLE[resource][role].reach for resource in Resource}
        if Reach.OWN_HUB in reaches:
            out += [
                Viewer(f"{role}@{h}", Principal(f"v-{role}-{h}", frozenset({role}), hub=h))
                for h in HUBS
            ]
        elif Reach.OWN_NATION in reaches:
            out += [
                Viewer(f"{role}@{n}", Principal(f"v-{role}-{n}", frozenset({role}), nation=n))
                for n in NATIONS
            ]
        else:
            out.append(Viewer(str(role), Principal(f"v-{role}", frozenset({role}))))
    return out


VIEWERS = _viewers()


@dataclass(frozen=True)
class Place:
    resource: Resource
    fields: frozenset[str]  # the fields it is found under
    hub: str | None = None
    donor: str | None = None


@dataclass
class Secrets:
    """What must not leak: each value, with every place it legitimately appears."""

    places: dict[str, list[Place]] = field(default_factory=dict)

    def add(self, value: str, place: Place) -> str:
        self.places.setdefault(value, []).append(place)
        return value

    def kept_from(self, viewer: Viewer) -> list[str]:
        """The values `viewer` may see in none of the places they appear."""
        return [
            value
            for value, places in self.places.items()
            if all(_kept(viewer.principal, p) for p in places)
        ]


def refused(principal: Principal, place: Place) -> bool:
    return hidden_fields(principal, place.resource, hub=place.hub, donor=place.donor) is None


def _kept(principal: Principal, place: Place) -> bool:
    hidden = hidden_fields(principal, place.resource, hub=place.hub, donor=place.donor)
    return hidden is None or place.fields <= hidden


@dataclass(frozen=True)
class Call:
    """One request a surface answers, as a viewer sends it."""

    label: str
    send: Callable[[Viewer], Awaitable[bytes | tuple[int, bytes]]]
    record: Place | None = None  # the record asked for by id: refused -> 403/404
    unknown: bool = False  # asks for an id that does not exist: 404 unless refused (403)


def get(
    client: httpx.AsyncClient, path: str, **params: str
) -> Callable[[Viewer], Awaitable[tuple[int, bytes]]]:
    async def send(viewer: Viewer) -> tuple[int, bytes]:
        response = await client.get(path, params=params, headers=viewer.headers)
        # A problem names the path asked for (`instance`): the caller's own words, not a leak.
        return response.status_code, response.content.replace(path.encode(), b"")

    return send


def _refused_everywhere(viewer: Viewer, surface: Surface) -> bool:
    """The viewer's roles see no record of any of the surface's resources: the route refuses."""
    return all(
        TABLE[resource][role].reach is Reach.NONE
        for resource in surface.resources
        for role in viewer.principal.roles
    )


async def leaks(viewer: Viewer, surface: Surface, calls: list[Call], secrets: Secrets) -> list[str]:
    """What is wrong with the surface's answers to `viewer`: a held-back value shown, or a
    status other than the table's (403/404 refused, 200 otherwise, 404 for an unknown id)."""
    kept = secrets.kept_from(viewer)
    problems = []
    for call in calls:
        sent = await call.send(viewer)
        status, body = sent if isinstance(sent, tuple) else (200, sent)
        is_refused = _refused_everywhere(viewer, surface) or (
            call.record is not None and refused(viewer.principal, call.record)
        )
        if is_refused and status not in (403, 404):
            problems.append(f"{call.label}: {status}, expected 403/404 (refused by the table)")
        elif not is_refused and status != (404 if call.unknown else 200):
            problems.append(f"{call.label}: {status}, expected 200: {body[:300]!r}")
        leaked = sorted(value for value in kept if value.encode() in body)
        if leaked:
            problems.append(f"{call.label}: shows {leaked}")
    return problems


def cases(*services: str) -> list[Any]:
    """Every viewer x every read surface of `services` (pytest parameters)."""
    return [
        pytest.param(viewer, surface, id=f"{viewer.name}-{surface.service}-{surface.path}")
        for surface in SURFACES
        if surface.service in services
        for viewer in VIEWERS
    ]
