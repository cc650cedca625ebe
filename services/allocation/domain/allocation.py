"""The Allocation aggregate: one pledge's quantity set aside for one requirement (pure).

proposed → approved → cancelled
proposed → rejected | cancelled
Approved allocations are commitments: only a cancellation with a reason ends them.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from services.allocation.domain.model import Proposal
from shared.contracts.allocations import (
    AllocationApproved,
    AllocationCancelled,
    AllocationProposed,
    AllocationRejected,
)
from shared.domain import Aggregate, DomainError, DomainEvent

Status = Literal["proposed", "approved", "rejected", "cancelled"]


class Allocation(Aggregate):
    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status: Status = "proposed"
        self.requirement_id = ""
        self.pledge_id = ""
        self.item_code = ""
        self.quantity = 0
        self.hub = ""
        self.handover_by = date.min
        self.rationale = ""
        self.approved_by: str | None = None
        self.reason: str | None = None  # why it was rejected or cancelled
        # The lineage: the decisions that endorsed the requirement and confirmed the pledge.
        self.endorsed_by_decision: str | None = None
        self.confirmed_by_decision: str | None = None

    @classmethod
    def propose(cls, allocation_id: str, proposal: Proposal) -> Allocation:
        if proposal.quantity <= 0:
            raise DomainError("an allocation needs a positive quantity")
        allocation = cls(allocation_id)
        allocation._record(
            AllocationProposed(
                allocation_id=allocation_id,
                requirement_id=proposal.requirement_id,
                pledge_id=proposal.pledge_id,
                item_code=proposal.item_code,
                quantity=proposal.quantity,
                hub=proposal.hub,
                handover_by=proposal.handover_by,
                rationale=proposal.rationale,
                endorsed_by_decision=proposal.endorsed_by_decision,
                confirmed_by_decision=proposal.confirmed_by_decision,
            )
        )
        return allocation

    def approve(self, approved_by: str) -> None:
        self._require("proposed", "approved")
        self._record(AllocationApproved(approved_by=approved_by))

    def reject(self, reason: str) -> None:
        self._require("proposed", "rejected")
        if not reason.strip():
            raise DomainError("a rejection needs a reason")
        self._record(AllocationRejected(reason=reason))

    def cancel(self, reason: str) -> None:
        if self.status not in ("proposed", "approved"):
            raise DomainError(f"allocation {self.id} is already {self.status}")
        self._record(AllocationCancelled(reason=reason))

    @property
    def live(self) -> bool:
        return self.status in ("proposed", "approved")

    def _require(self, status: Status, action: str) -> None:
        if self.status != status:
            raise DomainError(
                f"allocation {self.id} is {self.status}; only a {status} allocation can be {action}"
            )

    def apply(self, event: DomainEvent) -> None:
        match event:
            case AllocationProposed():
                self.requirement_id = event.requirement_id
                self.pledge_id = event.pledge_id
                self.item_code = event.item_code
                self.quantity = event.quantity
                self.hub = event.hub
                self.handover_by = event.handover_by
                self.rationale = event.rationale
                self.endorsed_by_decision = event.endorsed_by_decision
                self.confirmed_by_decision = event.confirmed_by_decision
                self.status = "proposed"
            case AllocationApproved(approved_by=approved_by):
                self.status, self.approved_by = "approved", approved_by
            case AllocationRejected(reason=reason):
                self.status, self.reason = "rejected", reason
            case AllocationCancelled(reason=reason):
                self.status, self.reason = "cancelled", reason
