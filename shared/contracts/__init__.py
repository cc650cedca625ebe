"""The events on Aidline's three topics (DESIGN.md §3): pure dataclasses with explicit names.

Each module is one topic's event registry. The producing service raises these events from its
domain; consumers decode them with the same registry. JSON Schemas and the AsyncAPI document are
generated from here (`python -m shared.contracts.docs`, into docs/events/).
"""

from shared.contracts.allocations import registry as allocations
from shared.contracts.deliveries import registry as deliveries
from shared.contracts.requests import registry as requests

REGISTRIES = {c.topic: c for c in (requests, allocations, deliveries)}

__all__ = ["REGISTRIES", "allocations", "deliveries", "requests"]
