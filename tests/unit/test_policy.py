"""The access table in code, and how it renders into the docs."""

from __future__ import annotations

import pytest

from shared.auth import AccessPolicy, Role, Scope, rule

POLICY = AccessPolicy(
    "request",
    {
        "pledges.announce": rule(
            Role.DONOR, description="announce a pledge", scope=Scope.OWN_NATION
        ),
        "catalogue.add": rule(Role.ADMIN, description="add an item"),
    },
)


def test_a_rule_allows_its_roles_only() -> None:
    assert POLICY["pledges.announce"].allows(frozenset({Role.DONOR, Role.OBSERVER}))
    assert not POLICY["pledges.announce"].allows(frozenset({Role.FORUM}))
    assert not POLICY["pledges.announce"].allows(frozenset())


def test_a_missing_rule_fails_loudly_at_import() -> None:
    with pytest.raises(KeyError, match=r"request has no access rule named 'pledges\.anounce'"):
        POLICY["pledges.anounce"]


def test_markdown_lists_rules_with_roles_in_the_contract_order() -> None:
    assert POLICY.markdown().splitlines() == [
        "| rule | roles | scope | what |",
        "|---|---|---|---|",
        "| `pledges.announce` | donor | own nation | announce a pledge |",
        "| `catalogue.add` | admin | none | add an item |",
    ]
    assert rule(Role.ADMIN, Role.RECIPIENT, description="x").roles == {Role.RECIPIENT, Role.ADMIN}
    everyone = AccessPolicy("s", {"r": rule(*reversed(Role), description="x")}).markdown()
    assert "recipient, donor, forum, planner, hub, observer, admin" in everyone


def test_markdown_with_endpoints() -> None:
    table = POLICY.markdown({"pledges.announce": ["POST /pledges"]}).splitlines()
    assert table[0] == "| rule | endpoints | roles | scope | what |"
    assert (
        table[2]
        == "| `pledges.announce` | `POST /pledges` | donor | own nation | announce a pledge |"
    )
    assert table[3] == "| `catalogue.add` | — | admin | none | add an item |"
