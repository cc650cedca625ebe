"""The projection's commands (shared.commands' contract): one frozen dataclass per command."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rebuild:
    """Replay every topic into a new generation of the read models; swap it in when caught up."""
