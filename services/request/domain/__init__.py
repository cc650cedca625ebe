"""The request service's pure domain: requirements, pledges, forum decisions, catalogue items."""

from services.request.domain.catalogue import CatalogueItem
from services.request.domain.decision import Decision
from services.request.domain.pledge import Pledge, PledgeStatus
from services.request.domain.requirement import Requirement, RequirementStatus
from services.request.domain.rules import MAX_QUANTITY, PRIORITIES

__all__ = [
    "MAX_QUANTITY",
    "PRIORITIES",
    "CatalogueItem",
    "Decision",
    "Pledge",
    "PledgeStatus",
    "Requirement",
    "RequirementStatus",
]
