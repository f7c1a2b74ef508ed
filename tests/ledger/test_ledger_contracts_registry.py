"""The registry system contract: registrations verified against the members' keys on chain,
rotation by a newer registration, revocation; every refusal with its exact reason."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from contract_chain import T0, ContractChain

from tally import formats as F
from tally.crypto import GM, INTL, SigningKey, sign1
from tally.device.registration import (
    Assurance,
    Registration,
    Revocation,
    sign_registration,
    sign_revocation,
)

ORGS = {"bank": ("bank",), "core": ("core_enterprise",), "wh": ("warehouse",)}


class Chain(ContractChain):
    def __init__(self, path: Path) -> None:
        policies = {"registry.*": ["org", "bank"], "membership.*": ["org", "bank"]}
        super().__init__(path, ORGS, policies, quorum=2)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    c = Chain(tmp_path / "state.sqlite")
    yield c
    c.state.close()


DEVICE_KEY = SigningKey.generate(INTL)


def device(t: int = T0, org: str = "wh", pub: bytes | None = None) -> Registration:
    return Registration(
        kind="device", id="site-1/lc-03", org=org, site="site-1", profile="load_cell",
        suite="intl", pub=DEVICE_KEY.public.raw if pub is None else pub,
        assurance=Assurance.DEVICE, t=t,
    )  # fmt: skip


def test_register_records_the_signed_bytes_and_fields(chain: Chain) -> None:
    cose = sign_registration(chain.keys["wh"], device())
    ex = chain.ok("registry", "register", cose)
    assert ex.result == {"id": "site-1/lc-03", "kind": "device", "replaced": False}
    assert ex.reads == (("member/wh", None), ("reg/site-1/lc-03", None))
    assert ex.writes == (
        ("reg/site-1/lc-03", {
            "kind": "device", "org": "wh", "site": "site-1", "profile": "load_cell",
            "suite": "intl", "pub": DEVICE_KEY.public.raw, "assurance": "device", "t": T0,
            "cose": cose, "revoked": None,
        }),
    )  # fmt: skip


def test_a_device_without_a_key_and_an_edge(chain: Chain) -> None:
    scale = replace(device(), id="site-1/scale-07", pub=b"", assurance=Assurance.EDGE)
    ex = chain.ok("registry", "register", sign_registration(chain.keys["wh"], scale))
    assert ex.writes[0][1]["pub"] == b"" and ex.writes[0][1]["assurance"] == "edge"
    edge = replace(device(), kind="edge", id="edge-1", profile="", org="core")
    ex = chain.ok("registry", "register", sign_registration(chain.keys["core"], edge))
    assert ex.writes[0][0] == "reg/edge-1" and ex.writes[0][1]["kind"] == "edge"


def test_a_newer_registration_rotates_the_key(chain: Chain) -> None:
    chain.ok("registry", "register", sign_registration(chain.keys["wh"], device()))
    new = SigningKey.generate(INTL).public.raw
    ex = chain.ok(
        "registry", "register", sign_registration(chain.keys["wh"], device(T0 + 5, pub=new))
    )
    assert ex.result["replaced"] is True
    assert ex.reads[-1] == ("reg/site-1/lc-03", (1, 0))
    assert chain.state.get("reg/site-1/lc-03") is not None
    found = chain.state.get("reg/site-1/lc-03")
    assert found is not None and found[0]["pub"] == new and found[0]["t"] == T0 + 5


def test_older_repeated_and_foreign_registrations_are_refused(chain: Chain) -> None:
    cose = sign_registration(chain.keys["wh"], device(T0 + 10))
    chain.ok("registry", "register", cose)
    assert chain.refused("registry", "register", cose) == (
        "registration of 'site-1/lc-03' is already recorded"
    )
    for t in (T0 + 10, T0 + 9):
        other = sign_registration(
            chain.keys["wh"], device(t, pub=SigningKey.generate(INTL).public.raw)
        )
        assert chain.refused("registry", "register", other) == (
            f"registration of 'site-1/lc-03' (t={t}) is not newer than the current one "
            f"(t={T0 + 10})"
        )
    hijack = sign_registration(chain.keys["core"], device(T0 + 20, org="core"))
    assert chain.refused("registry", "register", hijack) == (
        "registration of 'site-1/lc-03': 'site-1/lc-03' is registered to 'wh'"
    )


def test_an_unknown_org_is_refused(chain: Chain) -> None:
    acme = SigningKey.generate(INTL)
    cose = sign_registration(acme, device(org="acme"))
    assert chain.refused("registry", "register", cose) == (
        "registration of 'site-1/lc-03': organisation 'acme' is not a consortium member"
    )


def test_a_bad_signature_is_refused(chain: Chain) -> None:
    forged = sign_registration(SigningKey.generate(INTL), device())  # kid "wh", another key
    assert chain.refused("registry", "register", forged) == (
        "registration of 'site-1/lc-03': the signature does not verify with the key of 'wh'"
    )
    good = sign_registration(chain.keys["wh"], device())
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    assert "the signature does not verify" in chain.refused("registry", "register", flipped)
    # a flipped bit in the payload breaks the decoding or the signature
    i = good.index(b"load_cell")
    tampered = good[:i] + b"l0ad_cell" + good[i + 9 :]
    assert "the signature does not verify" in chain.refused("registry", "register", tampered)


def test_org_mismatch_wrong_type_and_suite_are_refused(chain: Chain) -> None:
    reg = device(org="bank")
    cose = sign1(chain.keys["wh"], F.CTY_REGISTRATION, "wh", reg.to_cbor())
    assert chain.refused("registry", "register", cose) == (
        "registration of 'site-1/lc-03': signed by 'wh' but names org 'bank'"
    )
    rev = sign_revocation(chain.keys["wh"], Revocation("site-1/lc-03", "wh", T0, "lost"))
    assert chain.refused("registry", "register", rev) == (
        "registration: COSE_Sign1: content type 'application/tally.revocation+cbor', expected "
        "'application/tally.registration+cbor'"
    )
    assert chain.refused("registry", "register", "not bytes") == (
        "registration: must be COSE_Sign1 bytes, got str"
    )
    assert chain.refused("registry", "register", b"\xa0").startswith("registration: COSE_Sign1")
    gm_cose = sign_registration(SigningKey.generate(GM), device())
    assert chain.refused("registry", "register", gm_cose) == (
        "registration of 'site-1/lc-03': signed with suite gm, but 'wh' holds a key of "
        "another suite"
    )
    bad = sign1(chain.keys["wh"], F.CTY_REGISTRATION, "wh", b"\xa1avb")
    assert chain.refused("registry", "register", bad).startswith("registration: ")


def test_revocation(chain: Chain) -> None:
    chain.ok("registry", "register", sign_registration(chain.keys["wh"], device()))
    rev = sign_revocation(chain.keys["wh"], Revocation("site-1/lc-03", "wh", T0 + 50, "stolen"))
    ex = chain.ok("registry", "revoke", rev)
    assert ex.result == {"id": "site-1/lc-03", "t": T0 + 50}
    value = ex.writes[0][1]
    assert value["revoked"] == {"t": T0 + 50, "reason": "stolen", "cose": rev}
    assert value["pub"] == DEVICE_KEY.public.raw  # the rest of the record is kept
    again = sign_revocation(chain.keys["wh"], Revocation("site-1/lc-03", "wh", T0 + 60, "x"))
    assert chain.refused("registry", "revoke", again) == (
        "revocation of 'site-1/lc-03': 'site-1/lc-03' is already revoked"
    )
    # a newer registration brings the subject back with a fresh key
    fresh = device(T0 + 70, pub=SigningKey.generate(INTL).public.raw)
    ex = chain.ok("registry", "register", sign_registration(chain.keys["wh"], fresh))
    assert ex.writes[0][1]["revoked"] is None


def test_revocation_refusals(chain: Chain) -> None:
    def rev(org: str = "wh", t: int = T0 + 1, subject: str = "site-1/lc-03") -> bytes:
        return sign_revocation(chain.keys[org], Revocation(subject, org, t, "test"))

    assert chain.refused("registry", "revoke", rev()) == (
        "revocation of 'site-1/lc-03': 'site-1/lc-03' is not registered"
    )
    chain.ok("registry", "register", sign_registration(chain.keys["wh"], device(T0 + 10)))
    assert chain.refused("registry", "revoke", rev(t=T0 + 9)) == (
        f"revocation of 'site-1/lc-03' (t={T0 + 9}) is older than its registration (t={T0 + 10})"
    )
    assert chain.refused("registry", "revoke", rev(org="core", t=T0 + 11)) == (
        "revocation of 'site-1/lc-03': 'site-1/lc-03' is registered to 'wh'"
    )
    forged = sign_revocation(
        SigningKey.generate(INTL), Revocation("site-1/lc-03", "wh", T0 + 11, "x")
    )
    assert chain.refused("registry", "revoke", forged) == (
        "revocation of 'site-1/lc-03': the signature does not verify with the key of 'wh'"
    )
    assert chain.refused("registry", "revoke", b"").startswith("revocation: COSE_Sign1")


def test_the_member_key_on_chain_is_the_one_that_counts(chain: Chain) -> None:
    new_wh = SigningKey.generate(INTL)
    chain.ok("membership", "rotate_key", "wh", new_wh.public.raw)
    old = sign_registration(chain.keys["wh"], device())
    assert "does not verify with the key of 'wh'" in chain.refused("registry", "register", old)
    ex = chain.ok("registry", "register", sign_registration(new_wh, device()))
    assert ex.reads[0] == ("member/wh", (1, 0))  # a later change of wh's key conflicts

    chain.ok("membership", "revoke_key", "wh")
    again = sign_registration(new_wh, device(T0 + 1))
    assert chain.refused("registry", "register", again) == (
        "registration of 'site-1/lc-03': the key of organisation 'wh' is revoked"
    )


def test_a_member_added_on_chain_can_register(chain: Chain) -> None:
    log = SigningKey.generate(INTL)
    chain.ok("membership", "add_member", "log", ["logistics"], log.public.raw)
    truck = replace(device(org="log"), id="truck-9")
    ex = chain.ok("registry", "register", sign_registration(log, truck))
    assert ex.writes[0][0] == "reg/truck-9"
