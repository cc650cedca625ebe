"""Errors the domain layers and command handlers raise; the web layer maps each to one
problem+json answer (`shared.web.problems.problem_for`), so no handler knows about HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule forbids the command (answered 409 with this message). `kind` and `title`
    name the rule where a client should tell it from others (the problem's type and title)."""

    def __init__(
        self, message: str, *, kind: str = "rule-violation", title: str = "Conflict"
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.title = title


class NotFound(LookupError):
    """The addressed aggregate does not exist (answered 404)."""


class Forbidden(Exception):
    """The caller may use the operation, but not on this aggregate or with these fields
    (another nation's pledge, another hub's shipment; answered 403). `kind` names the rule."""

    def __init__(self, message: str, *, kind: str = "forbidden") -> None:
        super().__init__(message)
        self.kind = kind


class VersionMismatch(Exception):
    """The caller expected another version of the aggregate (If-Match; answered 412)."""

    def __init__(self, current: int, expected: int) -> None:
        super().__init__(
            f"The resource is at version {current}, not {expected}; reload it and try again."
        )
        self.current = current
        self.expected = expected


class InvalidInput(Exception):
    """Fields of the command are well-formed but refer to nothing usable (an unknown item
    code; answered 422 naming each field). `errors`: (field, message) for each of them."""

    def __init__(self, field: str, message: str, *, detail: str | None = None) -> None:
        super().__init__(detail or message)
        self.errors = [(field, message)]

    @classmethod
    def each(cls, detail: str, errors: list[tuple[str, str]]) -> InvalidInput:
        """One answer naming several fields (`errors` not empty)."""
        invalid = cls(*errors[0], detail=detail)
        invalid.errors = errors
        return invalid


class TooLarge(InvalidInput):
    """What the command would store is bigger than where it goes can take: an event Kafka
    would refuse (answered 413, naming the field responsible). Nothing is stored."""
