"""The projection's pure core: read-model rows, how each event changes them, board statuses."""

from services.projection.domain.model import (
    Allocation,
    Decision,
    ItemRow,
    Pledge,
    Requirement,
    Shipment,
    requirement_status,
)
from services.projection.domain.projector import Changes, Keys, keys_of

__all__ = [
    "Allocation",
    "Changes",
    "Decision",
    "ItemRow",
    "Keys",
    "Pledge",
    "Requirement",
    "Shipment",
    "keys_of",
    "requirement_status",
]
