"""Serial-number rules for end-use monitoring (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from shared.domain import DomainError


def clean(serials: Iterable[str], *, what: str) -> list[str]:
    """Serials with surrounding blanks removed; blanks and repeats are refused."""
    cleaned = [s.strip() for s in serials]
    if any(not s for s in cleaned):
        raise DomainError(f"The serial numbers {what} include an empty one.")
    repeated = sorted(s for s, n in Counter(cleaned).items() if n > 1)
    if repeated:
        raise DomainError(f"The serial numbers {what} repeat {', '.join(repeated)}.")
    return cleaned


def difference(expected: Sequence[str], given: Sequence[str]) -> tuple[list[str], list[str]]:
    """(missing, unexpected): expected but not given, and given but not expected."""
    return sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
