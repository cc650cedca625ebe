"""Readable, server-generated identifiers: `REQ-01J9Z3...` (a prefix and a ULID).

A ULID is 48 bits of milliseconds and 80 random bits in Crockford base32: 26 characters that
sort by creation time, so lists and logs read in order. `stable_id` derives an id from content
instead, for imports whose re-sending must address the same aggregate.
"""

from __future__ import annotations

import hashlib
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LENGTH = 26  # 130 bits of base32; a ULID uses the low 128


def _base32(value: int) -> str:
    chars = []
    for _ in range(_LENGTH):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`<prefix>-<ULID>`, unique and sortable by time."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    return f"{prefix}-{_base32(value)}"


def stable_id(prefix: str, *parts: str) -> str:
    """`<prefix>-<26 characters>` derived from `parts`: the same parts always give the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return f"{prefix}-{_base32(int.from_bytes(digest[:16]))}"
