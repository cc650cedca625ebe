"""Roles, scopes and the access rules each service declares in one table.

Each service keeps its rules in `services/<name>/access.py` as an `AccessPolicy`: one named rule
per endpoint. A route states its rule by name, so a route without a rule cannot be written, and
the table renders into the docs and drives the role-by-endpoint test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from shared.domain.errors import Forbidden

if TYPE_CHECKING:
    from shared.auth.principal import Principal


class Role(StrEnum):
    RECIPIENT = "recipient"
    DONOR = "donor"
    FORUM = "forum"
    PLANNER = "planner"
    HUB = "hub"
    OBSERVER = "observer"
    ADMIN = "admin"


class Scope(StrEnum):
    """A further check on the resource, done by the handler once the resource is loaded."""

    NONE = "none"
    OWN_NATION = "own nation"  # donors act only for their own nation
    OWN_HUB = "own hub"  # hub operators act only at their own hub


READERS = frozenset(Role)  # every authenticated role may read unless a rule says otherwise


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    description: str
    scope: Scope = Scope.NONE

    def allows(self, roles: frozenset[Role]) -> bool:
        return bool(self.roles & roles)


class AccessPolicy(Mapping[str, Rule]):
    def __init__(self, service: str, rules: Mapping[str, Rule]) -> None:
        self.service = service
        self._rules = dict(rules)

    def __getitem__(self, name: str) -> Rule:
        try:
            return self._rules[name]
        except KeyError:
            raise KeyError(f"{self.service} has no access rule named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def markdown(self, endpoints: Mapping[str, Sequence[str]] | None = None) -> str:
        """The rules as a Markdown table; with `endpoints` (rule -> routes), a column for them."""
        head = ["rule", *(["endpoints"] if endpoints is not None else []), "roles", "scope", "what"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, rule in self._rules.items():
            cells = [f"`{name}`"]
            if endpoints is not None:
                cells.append("<br>".join(f"`{e}`" for e in endpoints.get(name, ())) or "—")
            roles = ", ".join(role for role in Role if role in rule.roles)
            cells += [roles, str(rule.scope), rule.description]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def rule(*roles: Role, description: str, scope: Scope = Scope.NONE) -> Rule:
    return Rule(frozenset(roles), description, scope)


def require_own_nation(principal: Principal, nation: str, *, unless: tuple[Role, ...] = ()) -> None:
    """Donors act for their own nation only; roles in `unless` act for any nation."""
    if principal.has(*unless):
        return
    if principal.nation is None or principal.nation != nation.upper():
        raise Forbidden(
            f"Your token is for nation {principal.nation or '(none)'}, not {nation.upper()}.",
            kind="forbidden-nation",
        )


def require_own_hub(principal: Principal, hub: str, *, unless: tuple[Role, ...] = ()) -> None:
    """Hub operators act at their own hub only; roles in `unless` act at any hub."""
    if principal.has(*unless):
        return
    if principal.hub is None or principal.hub != hub:
        raise Forbidden(
            f"Your token is for hub {principal.hub or '(none)'}, not {hub}.", kind="forbidden-hub"
        )
