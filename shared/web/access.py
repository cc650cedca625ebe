"""Which access rule guards each route of an app: what the docs render and the access test walks.

Routes are read through `fastapi.routing.iter_route_contexts`, which sees the routes of included
routers with their prefixes and router-level dependencies as they are served.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from shared.web.deps import Authorize

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


@dataclass(frozen=True)
class AppRoute:
    """One route as served: its path, methods and the `Authorize` dependencies guarding it."""

    path: str
    methods: tuple[str, ...]  # empty for what is not an HTTP endpoint (mounts, websockets)
    guards: tuple[Authorize, ...]
    context: RouteContext

    @property
    def param_convertors(self) -> Mapping[str, Any]:
        convertors: Mapping[str, Any] = getattr(self.context, "param_convertors", None) or {}
        return convertors

    def url(self, **params: Any) -> str:
        return str(self.context.url_path_for(self.context.name or "", **params))


def authorizers(dependant: Dependant | None) -> Iterator[Authorize]:
    """The `Authorize` dependencies of a route, however deeply they are nested."""
    for dependency in dependant.dependencies if dependant is not None else ():
        if isinstance(dependency.call, Authorize):
            yield dependency.call
        yield from authorizers(dependency)


def app_routes(app: FastAPI) -> list[AppRoute]:
    found = []
    for context in iter_route_contexts(app.routes):
        is_api = isinstance(context.original_route, APIRoute)
        methods = sorted(set(context.methods or ()) - IGNORED_METHODS) if is_api else []
        dependant = getattr(context, "dependant", None) if is_api else None
        found.append(
            AppRoute(
                path=context.path or repr(context.original_route),
                methods=tuple(methods),
                guards=tuple(authorizers(dependant)),
                context=context,
            )
        )
    return found


def endpoints_by_rule(app: FastAPI) -> dict[str, list[str]]:
    """`{"pledges.confirm": ["POST /pledges/{pledge_id}/confirm"], ...}` for an app's routes."""
    found: dict[str, list[str]] = {}
    for route in app_routes(app):
        for guard in route.guards:
            found.setdefault(guard.name, []).extend(f"{m} {route.path}" for m in route.methods)
    return found
