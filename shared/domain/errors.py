"""Errors the pure domain layers raise; the web layer maps them to problem+json."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule forbids the command (answered 409 with this message)."""


class NotFound(LookupError):
    """The addressed aggregate does not exist (answered 404)."""
