"""Pledges and forum decisions (pure): confirmation, reduction, withdrawal, all-or-nothing."""

from __future__ import annotations

from datetime import date

import pytest

from services.request.domain import Decision, Pledge, PledgeStatus, Requirement
from shared.catalogue import base_items
from shared.contracts.requests import (
    DecisionRecorded,
    Endorsement,
    PledgeConfirmed,
    PledgeReduced,
    PledgeWithdrawn,
    RequirementEndorsed,
)
from shared.domain import DomainError

SHELLS = base_items()["ART-155-HE"]


def pledge(pledge_id: str = "PLG-1", quantity: int = 100) -> Pledge:
    p = Pledge.announce(
        pledge_id,
        donor="PL",
        item=SHELLS,
        quantity=quantity,
        source="stock",
        available_from=date(2030, 1, 1),
        value_eur=1.5e6,
    )
    p.pending = []
    return p


def requirement(requirement_id: str = "REQ-1") -> Requirement:
    r = Requirement.submit(
        requirement_id,
        item=SHELLS,
        quantity=100,
        priority=3,
        needed_by=date(2030, 1, 1),
        destination="Dnipro",
        justification="why",
    )
    r.pending = []
    return r


def test_confirm_once_and_never_a_withdrawn_pledge() -> None:
    p = pledge()
    p.confirm("DEC-1")
    assert p.pending == [PledgeConfirmed(decision_id="DEC-1")]
    with pytest.raises(DomainError, match="already confirmed by decision DEC-1"):
        p.confirm("DEC-2")
    gone = pledge()
    gone.withdraw("stocks needed at home")
    with pytest.raises(
        DomainError, match=r"withdrawn \(stocks needed at home\); it cannot be confirmed"
    ):
        gone.confirm("DEC-1")


def test_reduce_must_lower_the_pledge() -> None:
    p = pledge(quantity=100)
    p.reduce(60)
    assert p.pending == [PledgeReduced(quantity=60)] and p.quantity == 60
    with pytest.raises(DomainError, match="stands at 60 rounds"):
        p.reduce(60)
    with pytest.raises(DomainError, match="stands at 60 rounds"):
        p.reduce(80)  # no reducing above the current quantity
    with pytest.raises(DomainError, match="between 1 and"):
        p.reduce(0)


def test_a_confirmed_pledge_may_still_be_reduced_and_withdrawn() -> None:
    p = pledge()
    p.confirm("DEC-1")
    p.reduce(10)
    p.withdraw("lost in transit to the hub")
    assert p.status is PledgeStatus.WITHDRAWN
    assert p.pending[-1] == PledgeWithdrawn(reason="lost in transit to the hub")
    with pytest.raises(DomainError, match="cannot be withdrawn"):
        p.withdraw("again")
    with pytest.raises(DomainError, match="cannot be reduced"):
        p.reduce(5)


def test_a_decision_endorses_and_confirms_with_its_id_on_every_event() -> None:
    r1, r2, p1 = requirement("REQ-1"), requirement("REQ-2"), pledge("PLG-1")
    decision = Decision.record(
        "DEC-9",
        meeting_date=date(2030, 1, 10),
        reference="UDCG-25",
        endorse=[(r1, 1), (r2, None)],
        confirm=[p1],
    )
    assert r1.pending == [RequirementEndorsed(priority=1, decision_id="DEC-9")]
    assert r2.pending == [RequirementEndorsed(priority=3, decision_id="DEC-9")]
    assert p1.pending == [PledgeConfirmed(decision_id="DEC-9")]
    assert decision.pending == [
        DecisionRecorded(
            decision_id="DEC-9",
            meeting_date=date(2030, 1, 10),
            reference="UDCG-25",
            endorsed=[
                Endorsement(requirement_id="REQ-1", priority=1),
                Endorsement(requirement_id="REQ-2", priority=3),
            ],
            confirmed=["PLG-1"],
        )
    ]


def test_a_decision_breaking_any_rule_is_refused_naming_every_problem() -> None:
    cancelled = requirement("REQ-1")
    cancelled.cancel("covered")
    confirmed = pledge("PLG-1")
    confirmed.confirm("DEC-1")
    with pytest.raises(DomainError) as refused:
        Decision.record(
            "DEC-2",
            meeting_date=date(2030, 1, 10),
            reference="UDCG-26",
            endorse=[(cancelled, None), (requirement("REQ-2"), None)],
            confirm=[confirmed],
        )
    assert "REQ-1 was cancelled" in str(refused.value)
    assert "PLG-1 was already confirmed" in str(refused.value)


def test_a_decision_must_name_something_and_each_item_once() -> None:
    with pytest.raises(DomainError, match="must endorse a requirement or confirm a pledge"):
        Decision.record("DEC-1", meeting_date=date(2030, 1, 1), reference="x")
    r = requirement()
    with pytest.raises(DomainError, match="repeated: REQ-1"):
        Decision.record(
            "DEC-1", meeting_date=date(2030, 1, 1), reference="x", endorse=[(r, 1), (r, 2)]
        )
