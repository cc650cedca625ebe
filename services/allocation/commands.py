"""The allocation service's commands (handled in handlers.py; the version a caller expects
travels as `ctx.expected_version`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Approve:
    allocation_id: str


@dataclass(frozen=True)
class Reject:
    allocation_id: str
    reason: str


@dataclass(frozen=True)
class RunPlan:
    run_id: str
