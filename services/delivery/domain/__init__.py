"""The delivery service's pure domain: the Shipment aggregate and its rules (no I/O)."""

from services.delivery.domain.shipment import MOVING, Shipment, Status

__all__ = ["MOVING", "Shipment", "Status"]
