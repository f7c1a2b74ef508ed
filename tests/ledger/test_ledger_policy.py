"""Endorsement policies: checking the CBOR form, the text form both ways, and evaluation
compared with a brute-force reference over every subset of the members."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.ledger.formats import ROLES
from tally.ledger.genesis import GenesisError, Member
from tally.ledger.policy import (
    MAX_DEPTH,
    PolicyError,
    PolicySyntaxError,
    check_policy,
    describe,
    parse_policy,
    satisfied,
)

MEMBERS = {
    "bank": Member("bank", ("bank",), b""),
    "core": Member("core", ("core_enterprise", "supplier"), b""),
    "wh": Member("wh", ("warehouse",), b""),
    "log": Member("log", ("logistics", "warehouse"), b""),
    "reg": Member("reg", ("regulator",), b""),
}


# -- check_policy --------------------------------------------------------------------------


def test_check_accepts_every_form() -> None:
    check_policy(
        ["and", ["org", "bank"], ["or", ["role", "warehouse"], ["k_of", 2, ["org", "wh"],
         ["org", "log"], ["role", "regulator"]]]],
        MEMBERS, "policy loan.pledge",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            ["org", "bnak"],
            "policy c.f at [1]: unknown org 'bnak' (members: bank, core, log, reg, wh)",
        ),
        (
            ["and", ["org", "bank"], ["or", ["org", "wh"], ["org", "x"]]],
            "policy c.f at [2][2][1]: unknown org 'x'",
        ),
        (["role", "banker"], "policy c.f at [1]: unknown role 'banker'"),
        (
            ["or", ["role", "bank"], ["role", 7]],
            "policy c.f at [2][1]: role must be non-empty text, got 7",
        ),
        (["org", ""], "policy c.f at [1]: org must be non-empty text"),
        (["and"], "policy c.f: and needs at least one policy, got none"),
        (["or", ["and"]], "policy c.f at [1]: and needs at least one policy"),
        (["k_of", 0, ["org", "bank"]], "policy c.f at [1]: k_of k=0 out of range 1..1"),
        (
            ["k_of", 3, ["org", "bank"], ["org", "wh"]],
            "policy c.f at [1]: k_of k=3 out of range 1..2",
        ),
        (["k_of", 1], "policy c.f: k_of needs at least one policy"),
        (["k_of", True, ["org", "bank"]], "policy c.f at [1]: k_of needs an integer k, got True"),
        (["k_of", "2", ["org", "bank"]], "policy c.f at [1]: k_of needs an integer k, got '2'"),
        (["k_of"], "policy c.f at [1]: k_of needs an integer k, got nothing"),
        (["xor", ["org", "bank"]], "policy c.f at [0]: unknown operator 'xor'"),
        (["org", "bank", "wh"], 'policy c.f: ["org", name] has 2 elements, got 3'),
        (["org"], 'policy c.f: ["org", name] has 2 elements, got 1'),
        ("org:bank", "policy c.f: a policy is a non-empty array, got str 'org:bank'"),
        ([], "policy c.f: a policy is a non-empty array, got list []"),
        (
            ["and", ["org", "bank"], {"org": "wh"}],
            "policy c.f at [2]: a policy is a non-empty array, got dict",
        ),
    ],
)
def test_check_rejects_with_the_path_of_the_fault(policy: Any, message: str) -> None:
    with pytest.raises(GenesisError) as err:
        check_policy(policy, MEMBERS, "policy c.f")
    assert message in str(err.value), str(err.value)


def test_check_refuses_deep_nesting() -> None:
    p: list[Any] = ["org", "bank"]
    for _ in range(MAX_DEPTH + 1):
        p = ["and", p]
    with pytest.raises(GenesisError, match=f"nested deeper than {MAX_DEPTH}"):
        check_policy(p, MEMBERS, "policy c.f")


# -- the text form -------------------------------------------------------------------------


def test_parse_the_documented_examples() -> None:
    assert parse_policy("AND(org:bank, role:warehouse)") == [
        "and", ["org", "bank"], ["role", "warehouse"]
    ]  # fmt: skip
    assert parse_policy(" 2-of ( org:a,org:b ,\n org:c ) ") == [
        "k_of", 2, ["org", "a"], ["org", "b"], ["org", "c"]
    ]  # fmt: skip
    assert parse_policy("or(ORG:x, Role:bank)") == ["or", ["org", "x"], ["role", "bank"]]
    assert parse_policy('org:"ACME, Ltd. \\"north\\""') == ["org", 'ACME, Ltd. "north"']


@pytest.mark.parametrize(
    ("text", "pos", "expected"),
    [
        ("", 0, "a policy"),
        ("AND()", 4, "a policy"),
        ("AND(org:a", 9, "',' or ')' in AND(…)"),
        ("AND(org:a org:b)", 10, "',' or ')' in AND(…)"),
        ("AND org:a", 4, "'(' after AND"),
        ("org bank", 4, "':' after org"),
        ("org:", 4, "a non-empty org name"),
        ('org:""', 4, "a non-empty org name"),
        ("role:banker", 5, "a role (one of bank,"),
        ("0-OF(org:a)", 0, "k between 1 and 1"),
        ("3-OF(org:a, org:b)", 0, "k between 1 and 2"),
        ("XOR(org:a)", 0, "a policy"),
        ("org:a)", 5, "end of text after a complete policy"),
        ('org:"ab', 4, "a closing '\"' for the quoted org name"),
        ('org:"a\\b"', 6, '\\" or \\\\ after a backslash'),
    ],
)
def test_parse_errors_say_where_and_what(text: str, pos: int, expected: str) -> None:
    with pytest.raises(PolicySyntaxError) as err:
        parse_policy(text)
    assert err.value.pos == pos
    assert err.value.expected.startswith(expected), err.value.expected
    assert f"at position {pos}: expected {expected}" in str(err.value)


def test_parse_reports_what_it_found() -> None:
    with pytest.raises(PolicySyntaxError) as err:
        parse_policy("AND(org:a; org:b)")
    assert err.value.found == "'; org:b)'"
    with pytest.raises(PolicySyntaxError) as err:
        parse_policy("OR(org:a,")
    assert err.value.found == "end of text"


def test_describe() -> None:
    p = ["and", ["org", "bank"], ["k_of", 2, ["org", "a b"], ["role", "warehouse"], ["org", "c"]]]
    assert describe(p) == 'AND(org:bank, 2-OF(org:"a b", role:warehouse, org:c))'
    with pytest.raises(PolicyError, match=r"at \[2\]\[1\]: k_of k=7"):
        describe(["and", ["org", "bank"], ["k_of", 7, ["org", "a"]]])


# -- generated policies --------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(sorted(MEMBERS)),
    st.text(min_size=1, max_size=8),  # anything, quoted when needed
)


def policies(org_names: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.tuples(st.just("org"), org_names).map(list),
        st.tuples(st.just("role"), st.sampled_from(ROLES)).map(list),
    )

    def branch(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        subs = st.lists(children, min_size=1, max_size=4)
        return st.one_of(
            subs.map(lambda s: ["and", *s]),
            subs.map(lambda s: ["or", *s]),
            subs.flatmap(lambda s: st.integers(1, len(s)).map(lambda k: ["k_of", k, *s])),
        )

    return st.recursive(leaf, branch, max_leaves=12)


@given(policies(names))
@settings(max_examples=300, deadline=None)
def test_parse_of_describe_is_identity(p: Any) -> None:
    assert parse_policy(describe(p)) == p


def _family(policy: Any) -> set[frozenset[str]]:
    """Reference semantics: the set of member subsets that satisfy ``policy``, built by set
    algebra over the whole power set rather than by evaluating a given subset."""
    orgs = sorted(MEMBERS)
    universe = {frozenset(c) for n in range(len(orgs) + 1) for c in combinations(orgs, n)}
    op = policy[0]
    if op == "org":
        return {s for s in universe if policy[1] in s}
    if op == "role":
        return {s for s in universe if any(policy[1] in MEMBERS[o].roles for o in s)}
    if op == "and":
        out = set(universe)
        for sub in policy[1:]:
            out &= _family(sub)
        return out
    if op == "or":
        out = set()
        for sub in policy[1:]:
            out |= _family(sub)
        return out
    fams = [_family(sub) for sub in policy[2:]]
    return {s for s in universe if sum(s in f for f in fams) >= policy[1]}


@given(
    policies(st.sampled_from(sorted(MEMBERS))),
    st.sets(st.sampled_from([*sorted(MEMBERS), "outsider"])),
)
@settings(max_examples=300, deadline=None)
def test_satisfied_agrees_with_the_reference(p: Any, orgs: set[str]) -> None:
    check_policy(p, MEMBERS, "generated")
    assert satisfied(p, orgs, MEMBERS) == (frozenset(orgs - {"outsider"}) in _family(p))


def test_satisfied_examples() -> None:
    pledge = parse_policy("AND(org:core, role:bank, role:warehouse)")
    assert satisfied(pledge, {"core", "bank", "wh"}, MEMBERS)
    assert satisfied(pledge, {"core", "bank", "log"}, MEMBERS)  # log is also a warehouse
    assert not satisfied(pledge, {"core", "bank"}, MEMBERS)
    two = parse_policy("2-OF(org:bank, org:wh, org:reg)")
    assert satisfied(two, {"wh", "reg"}, MEMBERS)
    assert not satisfied(two, {"wh", "core"}, MEMBERS)
    # an org outside the membership holds no roles and counts for nothing
    assert not satisfied(["role", "bank"], {"mallory"}, MEMBERS)
    with pytest.raises(PolicyError):
        satisfied(["and"], {"bank"}, MEMBERS)
