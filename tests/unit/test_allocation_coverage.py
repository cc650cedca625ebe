"""The coverage explanation: every pledge that could serve a need, and why it was (not) used."""

from __future__ import annotations

from datetime import date

from services.allocation.domain import explain
from tests.unit.allocation_support import (
    HE,
    HE_ER,
    TANK,
    approved,
    need,
    offer,
    planner,
    proposed,
)


def test_each_candidate_says_why_it_was_or_was_not_used() -> None:
    me, rival = need("R-me", 100, priority=3), need("R-rival", 50, priority=1)
    offers = [
        offer("P-used", 60, available=date(2025, 2, 25)),  # 3 days late with 7 lead days
        offer("P-taken", 50, item=HE_ER),
        offer("P-new", 10, status="announced"),
        offer("P-gone", 10, status="withdrawn", status_reason="stock ran out"),
        offer("P-rejected", 10),
        offer("P-tank", 10, item=TANK),  # not compatible: not a candidate
    ]
    placed = [
        proposed("A-1", "R-me", "P-used", 60),
        approved("A-2", "R-rival", "P-taken", 50, HE_ER),
    ]
    coverage = explain(
        me,
        offers,
        placed,
        {"R-me": me, "R-rival": rival},
        frozenset({("R-me", "P-rejected")}),
        planner().items,
        lead_days=7,
    )
    assert (coverage.approved, coverage.proposed, coverage.open) == (0, 60, 40)
    assert coverage.summary == (
        "0 approved and 60 proposed of 100; 40 short: the confirmed pledges that fit are "
        "allocated elsewhere"
    )
    assert {c.pledge_id: c.why for c in coverage.candidates} == {
        "P-used": "used: 60 allocated here (3 days late)",
        "P-taken": "fully allocated to R-rival (priority 1, 50 approved)",
        "P-new": "not confirmed by the forum yet: only confirmed pledges are matched",
        "P-gone": "withdrawn by the donor",
        "P-rejected": "a planner rejected this pairing",
    }
    assert [c.substitute for c in coverage.candidates if c.pledge_id == "P-taken"] == [True]
    assert [c.withdraw_reason for c in coverage.candidates if c.pledge_id == "P-gone"] == [
        "stock ran out"
    ]


def test_a_need_not_yet_endorsed_says_so() -> None:
    coverage = explain(
        need("R-1", 5, status="submitted"), [offer("P-1", 5)], [], {}, frozenset(),
        planner().items, lead_days=7,
    )  # fmt: skip
    assert coverage.summary.startswith("not endorsed yet")
    assert coverage.candidates[0].why == "not considered: the requirement is not open for matching"
    assert coverage.item_code == HE
