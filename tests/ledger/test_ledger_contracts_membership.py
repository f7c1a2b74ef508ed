"""The membership system contract, run through the contract runtime against SQLite state:
exact write sets, every refusal, and the views a peer builds from the state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from contract_chain import ContractChain

from tally.crypto import GM, INTL, SigningKey, cbor
from tally.ledger.contracts import (
    SYSTEM_CONTRACTS,
    member_records,
    members_view,
    policy_view,
    revoked_view,
    system_contracts,
)
from tally.ledger.genesis import Member
from tally.ledger.policy import parse_policy

ORGS = {"bank": ("bank",), "core": ("core_enterprise",), "wh": ("warehouse",)}


class Chain(ContractChain):
    def __init__(self, path: Path, suite: Any = INTL) -> None:
        policies = {"membership.*": ["k_of", 2, *(["org", o] for o in ORGS)],
                    "toy.*": ["org", "bank"], "toy.special": ["org", "wh"]}  # fmt: skip
        super().__init__(path, ORGS, policies, suite, quorum=2)


@pytest.fixture
def chain(tmp_path: Path) -> Any:
    c = Chain(tmp_path / "state.sqlite")
    yield c
    c.state.close()


def test_system_contracts_are_named() -> None:
    assert [c.name for c in system_contracts()] == list(SYSTEM_CONTRACTS)
    assert sorted(type(system_contracts()[0]).functions) == [
        "add_member", "revoke_key", "rotate_key", "set_policy"
    ]  # fmt: skip


def test_add_member_writes_one_record(chain: Chain) -> None:
    new = SigningKey.generate(INTL)
    ex = chain.ok("membership", "add_member", "log", ["logistics", "warehouse"], new.public.raw)
    assert ex.result == "log"
    assert ex.reads == (("member/log", None),)
    assert ex.writes == (
        ("member/log", {"roles": ["logistics", "warehouse"], "pub": new.public.raw,
                        "revoked": False, "t": chain.t}),
    )  # fmt: skip
    view = members_view(chain.state, chain.genesis)
    assert list(view) == ["bank", "core", "log", "wh"]
    assert view["log"] == Member("log", ("logistics", "warehouse"), new.public.raw)
    assert member_records(chain.state, chain.genesis)["log"].version == (1, 0)
    assert member_records(chain.state, chain.genesis)["bank"].version is None
    # added members are members: a second add is refused
    err = chain.refused("membership", "add_member", "log", ["bank"], b"\x01" * 32)
    assert err == "add_member: 'log' is already a member"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("bank", ["bank"], b"\x07" * 32), "add_member: 'bank' is already a member"),
        (("", ["bank"], b"\x07" * 32), "add_member: org must be non-empty text, got ''"),
        ((7, ["bank"], b"\x07" * 32), "add_member: org must be non-empty text, got 7"),
        (("x/y", ["bank"], b"\x07" * 32), "add_member: organisation id 'x/y' must not contain '/'"),
        (("new", [], b"\x07" * 32), "add_member: roles must be a non-empty list"),
        (("new", "bank", b"\x07" * 32), "add_member: roles must be a non-empty list"),
        (
            ("new", ["banker"], b"\x07" * 32),
            "add_member: unknown role 'banker' (one of bank, "
            "core_enterprise, supplier, warehouse, logistics, regulator, government)",
        ),
        (("new", ["bank", "bank"], b"\x07" * 32), "add_member: role 'bank' given twice"),
        (
            ("new", ["bank"], b"\x07" * 31),
            "add_member: the key has 31 bytes, consortium keys have 32",
        ),
        (("new", ["bank"], "07" * 32), "add_member: the key must be bytes, got str"),
    ],
)
def test_add_member_refusals(chain: Chain, args: tuple[Any, ...], error: str) -> None:
    assert chain.refused("membership", "add_member", *args) == error


def test_a_key_cannot_serve_two_members(chain: Chain) -> None:
    bank_pub = chain.keys["bank"].public.raw
    err = chain.refused("membership", "add_member", "new", ["bank"], bank_pub)
    assert err == "add_member: the key is already the key of 'bank'"
    err = chain.refused("membership", "rotate_key", "wh", bank_pub)
    assert err == "rotate_key: the key is already the key of 'bank'"


def test_rotate_key_replaces_the_key_and_keeps_the_roles(chain: Chain) -> None:
    new = SigningKey.generate(INTL).public.raw
    ex = chain.ok("membership", "rotate_key", "wh", new)
    assert ex.reads == (("member/wh", None),)
    assert ex.writes == (
        ("member/wh", {"roles": ["warehouse"], "pub": new, "revoked": False, "t": chain.t}),
    )
    assert members_view(chain.state, chain.genesis)["wh"].pub == new
    assert chain.refused("membership", "rotate_key", "wh", new) == (
        "rotate_key: the new key of 'wh' is its current key"
    )
    assert chain.refused("membership", "rotate_key", "nobody", b"\x09" * 32) == (
        "rotate_key: 'nobody' is not a member"
    )
    # the second rotation reads the record the first one wrote, at its version
    ex = chain.ok("membership", "rotate_key", "wh", SigningKey.generate(INTL).public.raw)
    assert ex.reads == (("member/wh", (1, 0)),)


def test_revoke_key_takes_effect_at_the_committing_block(chain: Chain) -> None:
    chain.ok("membership", "set_policy", "toy.*", "org:core")  # height 1: something else
    ex = chain.ok("membership", "revoke_key", "core")  # height 2
    assert ex.writes == (
        ("member/core", {"roles": ["core_enterprise"], "pub": chain.keys["core"].public.raw,
                         "revoked": True, "t": chain.t}),
    )  # fmt: skip
    assert revoked_view(chain.state, chain.genesis) == {"core": 2}
    # still a member (its roles count in policies), but its key is withdrawn
    assert "core" in members_view(chain.state, chain.genesis)
    assert chain.refused("membership", "revoke_key", "core") == (
        "revoke_key: the key of 'core' is already revoked"
    )
    assert chain.refused("membership", "revoke_key", "nobody") == (
        "revoke_key: 'nobody' is not a member"
    )
    # a rotation lifts the revocation
    chain.ok("membership", "rotate_key", "core", SigningKey.generate(INTL).public.raw)
    assert revoked_view(chain.state, chain.genesis) == {}


def test_set_policy_stores_the_cbor_form(chain: Chain) -> None:
    ex = chain.ok("membership", "set_policy", "toy.*", "and(org:bank, ROLE:warehouse)")
    want = ["and", ["org", "bank"], ["role", "warehouse"]]
    assert ex.result == want
    assert ex.writes == (("policy/toy.*", want),)
    assert ex.reads == ()
    assert cbor.decode(cbor.encode(ex.writes[0][1])) == parse_policy(
        "AND(org:bank, role:warehouse)"
    )
    ex = chain.ok("membership", "set_policy", "loan.pledge", ["or", ["org", "core"]])
    assert ex.writes == (("policy/loan.pledge", ["or", ["org", "core"]]),)


def test_policy_view_prefers_the_most_specific_name_then_the_state(chain: Chain) -> None:
    g, s = chain.genesis, chain.state
    assert policy_view(s, g, "toy", "put") == ["org", "bank"]
    assert policy_view(s, g, "toy", "special") == ["org", "wh"]
    assert policy_view(s, g, "loan", "pledge") is None
    chain.ok("membership", "set_policy", "toy.*", "org:core")
    assert policy_view(s, g, "toy", "put") == ["org", "core"]
    assert policy_view(s, g, "toy", "special") == ["org", "wh"]  # genesis exact beats state *
    chain.ok("membership", "set_policy", "toy.special", "org:bank")
    assert policy_view(s, g, "toy", "special") == ["org", "bank"]
    chain.ok("membership", "set_policy", "membership.*", "3-OF(org:bank, org:core, org:wh)")
    assert policy_view(s, g, "membership", "add_member") == [
        "k_of", 3, ["org", "bank"], ["org", "core"], ["org", "wh"]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "policy", "error"),
    [
        ("toy", "org:bank", "set_policy: policy name 'toy' is not contract.function"),
        (".x", "org:bank", "set_policy: policy name '.x' is not contract.function"),
        ("toy.", "org:bank", "set_policy: policy name 'toy.' is not contract.function"),
        ("", "org:bank", "set_policy: name must be non-empty text, got ''"),
        (
            "toy.*",
            "org:bnak",
            "set_policy: policy toy.* at [1]: unknown org 'bnak' (members: bank, core, wh)",
        ),
        (
            "toy.*",
            ["k_of", 3, ["org", "bank"]],
            "set_policy: policy toy.* at [1]: k_of k=3 out of range 1..1 (its policies)",
        ),
        ("toy.*", 5, "set_policy: policy toy.*: a policy is a non-empty array, got int 5"),
        (
            "toy.*",
            "AND(org:bank",
            "set_policy toy.*: policy text at position 12: expected ',' or "
            "')' in AND(…), found end of text",
        ),
    ],
)
def test_set_policy_refusals(chain: Chain, name: str, policy: Any, error: str) -> None:
    assert chain.refused("membership", "set_policy", name, policy) == error


def test_a_policy_may_name_a_member_added_on_chain(chain: Chain) -> None:
    assert "unknown org 'log'" in chain.refused("membership", "set_policy", "toy.*", "org:log")
    chain.ok("membership", "add_member", "log", ["logistics"], SigningKey.generate(INTL).public.raw)
    chain.ok("membership", "set_policy", "toy.*", "org:log")
    assert policy_view(chain.state, chain.genesis, "toy", "x") == ["org", "log"]


def test_gm_consortium_keys_are_64_bytes(tmp_path: Path) -> None:
    c = Chain(tmp_path / "gm.sqlite", GM)
    try:
        err = c.refused("membership", "add_member", "new", ["bank"], b"\x01" * 32)
        assert err == "add_member: the key has 32 bytes, consortium keys have 64"
        c.ok("membership", "add_member", "new", ["bank"], SigningKey.generate(GM).public.raw)
    finally:
        c.state.close()
