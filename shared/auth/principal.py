"""Who is calling: the verified claims of a bearer token."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.auth.policy import Role


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    nation: str | None = None  # donors: ISO 3166-1 alpha-2, upper case
    hub: str | None = None  # hub operators: the hub they run
    # When its token stops being accepted (epoch seconds, leeway included); None: not from a
    # token. Not part of who it is: two tokens of one person are the same principal.
    expires_at: float | None = field(default=None, compare=False)

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def actor(self) -> str:
        """What events record as ce_actor: the subject and, where it matters, its scope."""
        scope = self.nation or self.hub
        return f"{self.sub}@{scope}" if scope else self.sub
