"""A forum decision: one meeting endorses requirements and confirms pledges, all or nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date

from services.request.domain.pledge import Pledge
from services.request.domain.requirement import Requirement
from shared.contracts.requests import DecisionRecorded, Endorsement
from shared.domain import Aggregate, DomainError, DomainEvent

PREFIX = "DEC"


class Decision(Aggregate):
    def __init__(self, decision_id: str) -> None:
        super().__init__(decision_id)
        self.meeting_date = date.min
        self.reference = ""
        self.endorsed: list[Endorsement] = []
        self.confirmed: list[str] = []

    @classmethod
    def record(
        cls,
        decision_id: str,
        *,
        meeting_date: date,
        reference: str,
        endorse: Sequence[tuple[Requirement, int | None]] = (),
        confirm: Sequence[Pledge] = (),
    ) -> Decision:
        """Endorse and confirm on the given aggregates (which then hold the new events) and
        record the decision; raises one DomainError listing every rule the decision breaks."""
        if not endorse and not confirm:
            raise DomainError("A decision must endorse a requirement or confirm a pledge.")
        ids = [r.id for r, _ in endorse] + [p.id for p in confirm]
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            raise DomainError(f"A decision names each item once; repeated: {', '.join(repeated)}.")
        problems: list[str] = []
        for requirement, priority in endorse:
            try:
                requirement.endorse(decision_id, priority)
            except DomainError as exc:
                problems.append(str(exc))
        for pledge in confirm:
            try:
                pledge.confirm(decision_id)
            except DomainError as exc:
                problems.append(str(exc))
        if problems:
            raise DomainError(" ".join(problems))
        decision = cls(decision_id)
        decision._record(
            DecisionRecorded(
                decision_id=decision_id,
                meeting_date=meeting_date,
                reference=reference,
                endorsed=[
                    Endorsement(requirement_id=r.id, priority=r.priority) for r, _ in endorse
                ],
                confirmed=[p.id for p in confirm],
            )
        )
        return decision

    def apply(self, event: DomainEvent) -> None:
        match event:
            case DecisionRecorded():
                self.meeting_date, self.reference = event.meeting_date, event.reference
                self.endorsed, self.confirmed = list(event.endorsed), list(event.confirmed)
            case _:
                raise TypeError(f"a decision does not apply {event.TYPE}")
