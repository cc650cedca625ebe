"""The events on Aidline's three topics (DESIGN.md §3): pure dataclasses with explicit names.

Each module is one topic's catalogue. The producing service raises these events from its domain;
consumers decode them with the same catalogue. JSON Schemas and the AsyncAPI document are
generated from here (`python -m shared.contracts.docs`, into docs/events/).
"""

from shared.contracts.allocations import catalogue as allocations
from shared.contracts.deliveries import catalogue as deliveries
from shared.contracts.requests import catalogue as requests

CATALOGUES = {c.topic: c for c in (requests, allocations, deliveries)}

__all__ = ["CATALOGUES", "allocations", "deliveries", "requests"]
