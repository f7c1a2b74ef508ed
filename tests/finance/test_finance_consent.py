"""Consents: the format (with its test vector), and require() accepting exactly the party's
own consent for this chain to this act, subject, seq and terms, refusing everything else
precisely."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import FinanceChain

from tally.crypto import GM, INTL, DecodeError, SigningKey, cbor, parse_sign1, sign1
from tally.finance.consent import (
    CTY_CONSENT,
    Consent,
    decode_consent,
    make_consent,
    parse_consent,
    require,
)
from tally.ledger.contract import Context, ContractError
from tally.ledger.contracts import members_view

VECTOR_SEED = bytes(range(32))
VECTOR_PUB = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
VECTOR_CHAIN = bytes.fromhex("a9d43f3e87c4a9c00ed5bd27a66c8e4896a49e4bc21c7c7df9faa6ad660073bc")
"""The chain id of the ledger vectors' genesis (tests/vectors/ledger/intl-genesis.json)."""
VECTOR_HEX = (
    "d284582ba3012703781e6170706c69636174696f6e2f74616c6c792e636f6e73656e742b63626f7204"
    "45736d652d31a0586ba7617601626f6e63572d31636163746f72656365697074732e706c656467656373"
    "65710065636861696e5820a9d43f3e87c4a9c00ed5bd27a66c8e4896a49e4bc21c7c7df9faa6ad660073"
    "bc65706172747965736d652d31657465726d73a16462616e6b6662616e6b2d6158403a847c18f8a0dcf7"
    "dcc447ef0d2e627cff16009e2ddd2609b4474e84db041659abd5321180d8f70c118b0328dd3bd5f70915"
    "650f7fc842ffa2d346fb986ebd08"
)
"""sme-1's consent to receipts.pledge of W-1 at seq 0 with terms {"bank": "bank-a"} on chain
VECTOR_CHAIN, signed with the Ed25519 key whose seed is 00 01 02 … 1f (docs/formats.md,
"Finance: consent")."""
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "ledger"

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
ACT, ON = "receipts.pledge", "W-1"
TERMS = {"bank": "bank"}


def test_the_test_vector_is_exact() -> None:
    key = SigningKey(INTL, VECTOR_SEED)
    assert key.public.raw.hex() == VECTOR_PUB
    data = make_consent(key, VECTOR_CHAIN, "sme-1", ACT, ON, 0, {"bank": "bank-a"})
    assert data.hex() == VECTOR_HEX
    msg, c = parse_consent(data)
    assert (msg.content_type, msg.kid) == (CTY_CONSENT, "sme-1")
    assert c == Consent(VECTOR_CHAIN, "sme-1", ACT, ON, 0, {"bank": "bank-a"})
    assert cbor.decode(msg.payload) == {
        "v": 1, "chain": VECTOR_CHAIN, "party": "sme-1", "act": ACT, "on": ON, "seq": 0,
        "terms": {"bank": "bank-a"},
    }  # fmt: skip
    msg.verify(key.public)


def test_the_vector_chain_is_the_ledger_vectors_chain() -> None:
    genesis = json.loads((VECTORS / "intl-genesis.json").read_text())
    assert bytes.fromhex(genesis["chain"]) == VECTOR_CHAIN


def _doc_section() -> str:
    """The consent section of docs/formats.md, up to the next section."""
    text = DOC.read_text()
    found = re.search(r"^## \d+ Finance: consent\n(.*?)(?=^## )", text, re.S | re.M)
    assert found is not None, "docs/formats.md has no 'Finance: consent' section"
    return found.group(1)


def test_the_docs_show_the_test_vector() -> None:
    text = _doc_section()
    wrapped = "\n".join(VECTOR_HEX[i : i + 64] for i in range(0, len(VECTOR_HEX), 64))
    assert f"```\n{wrapped}\n```" in text
    assert VECTOR_PUB in text
    assert VECTOR_CHAIN.hex() in text
    assert INTL.hash(bytes.fromhex(VECTOR_HEX)).hex() in text


def test_terms_may_be_any_cbor_and_round_trip() -> None:
    key = SigningKey.generate(INTL)
    terms = {"children": [{"no": "W-1.1", "weight": Decimal("1.5")}], "n": None}
    _, c = parse_consent(make_consent(key, b"\x07" * 32, "p", "receipts.split", "W-1", 7, terms))
    assert c.terms == terms and c.seq == 7 and c.chain == b"\x07" * 32


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"v": 1, "chain": b"c", "party": "p", "act": "a", "on": "o", "seq": -1, "terms": None},
         "field 'seq' must not be negative, got -1"),
        ({"v": 1, "chain": b"c", "party": "p", "act": "a", "on": "o", "seq": 0},
         "missing field(s) ['terms']"),
        ({"v": 1, "party": "p", "act": "a", "on": "o", "seq": 0, "terms": None},
         "missing field(s) ['chain']"),
        ({"v": 1, "chain": "c", "party": "p", "act": "a", "on": "o", "seq": 0, "terms": None},
         "field 'chain' must be bytes, got str"),
        ({"v": 2, "chain": b"c", "party": "p", "act": "a", "on": "o", "seq": 0, "terms": None},
         "unsupported format version 2"),
        ({"v": 1, "chain": b"c", "party": 5, "act": "a", "on": "o", "seq": 0, "terms": None},
         "field 'party' must be str, got int"),
    ],
)  # fmt: skip
def test_a_malformed_consent_payload_is_refused(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_consent(cbor.encode(payload))
    assert err.value.reason == reason


class Probe:
    """require() run in a Context over the chain's state as ``creator``."""

    def __init__(self, chain: FinanceChain) -> None:
        self.chain = chain

    def __call__(self, party: str, consent: Any, creator: str = "bank", seq: int = 3,
                 terms: Any = TERMS) -> None:  # fmt: skip
        c = self.chain
        members = members_view(c.state, c.genesis)
        ctx = Context(c.state, creator, b"tx", c.t, members, chain=c.genesis.chain)
        require(ctx, party, ACT, ON, seq, terms, consent)
        assert ctx.writes() == ()

    def refusal(self, party: str, consent: Any, **kw: Any) -> str:
        with pytest.raises(ContractError) as err:
            self(party, consent, **kw)
        return err.value.reason


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[FinanceChain]:
    c = FinanceChain(tmp_path / "state.sqlite")
    yield c
    c.close()


@pytest.fixture
def probe(chain: FinanceChain) -> Probe:
    return Probe(chain)


def consent(chain: FinanceChain, party: str = "sme-1", act: str = ACT, on: str = ON,
            seq: int = 3, terms: Any = TERMS, key: SigningKey | None = None,
            chain_id: bytes | None = None) -> bytes:  # fmt: skip
    k = key or chain.party_keys.get(party) or chain.keys[party]
    cid = chain.genesis.chain if chain_id is None else chain_id
    return make_consent(k, cid, party, act, on, seq, terms)


def test_a_party_consent_is_accepted(chain: FinanceChain, probe: Probe) -> None:
    probe("sme-1", consent(chain))
    # the terms compare as deterministic CBOR: a tuple is the same list
    probe("sme-1", consent(chain, terms={"x": [1, 2]}), terms={"x": (1, 2)})


def test_a_member_consents_with_its_member_key_or_by_creating(
    chain: FinanceChain, probe: Probe
) -> None:
    probe("wh", consent(chain, "wh"))
    probe("wh", None, creator="wh")
    probe("sme-1", consent(chain), creator="sme-1")  # a consent is fine from the creator too
    assert probe.refusal("wh", consent(chain, "wh", key=chain.keys["bank"])) == (
        "receipts.pledge of W-1: consent of 'wh': the signature does not verify with the key "
        "of 'wh'"
    )


def test_refusals_say_what_is_wrong(chain: FinanceChain, probe: Probe) -> None:
    what = "receipts.pledge of W-1: consent of 'sme-1'"
    good = consent(chain)
    cases: list[tuple[Any, str]] = [
        (None, f"{what} is missing"),
        ("yes", f"{what}: must be COSE_Sign1 bytes, got str"),
        (b"\x01\x02", f"{what}: COSE_Sign1: not tagged 18 (COSE_Sign1)"),
        (good[:-1], f"{what}: COSE_Sign1: "),
        (consent(chain, "sme-2"), f"{what}: it is signed by 'sme-2'"),
        (consent(chain, key=chain.party_keys["sme-2"]),
         f"{what}: the signature does not verify with the key of 'sme-1'"),
        (consent(chain, chain_id=b"\xee" * 32),
         f"{what}: it is for chain {'ee' * 8}…, this is {chain.genesis.chain[:8].hex()}…"),
        (consent(chain, act="receipts.transfer"),
         f"{what}: it is a consent to 'receipts.transfer'"),
        (consent(chain, on="W-2"), f"{what}: it is for 'W-2'"),
        (consent(chain, seq=2),
         f"{what}: it is for seq 2, W-1 is at seq 3 (a consent is good for one transition)"),
        (consent(chain, terms={"bank": "bank2"}),
         f"{what}: it agrees to terms {{'bank': 'bank2'}}, the proposal has {{'bank': 'bank'}}"),
    ]  # fmt: skip
    for given, message in cases:
        got = probe.refusal("sme-1", given)
        assert got.startswith(message) if message.endswith(": ") else got == message, got


def test_the_payload_must_name_the_signer(chain: FinanceChain, probe: Probe) -> None:
    key = chain.party_keys["sme-1"]
    payload = Consent(chain.genesis.chain, "sme-2", ACT, ON, 3, TERMS).to_cbor()
    forged = sign1(key, CTY_CONSENT, "sme-1", payload)
    assert probe.refusal("sme-1", forged) == (
        "receipts.pledge of W-1: consent of 'sme-1': it names party 'sme-2'"
    )
    other_cty = sign1(key, "application/tally.reading+cbor", "sme-1", b"\xa0")
    assert "content type 'application/tally.reading+cbor'" in probe.refusal("sme-1", other_cty)


def test_an_unknown_or_revoked_party_cannot_consent(chain: FinanceChain, probe: Probe) -> None:
    stranger = SigningKey.generate(INTL)
    assert probe.refusal("nobody", consent(chain, "nobody", key=stranger)) == (
        "receipts.pledge of W-1: consent of 'nobody': 'nobody' is neither a registered party "
        "nor a member"
    )
    chain.ok("parties", "revoke", "sme-1", "KYC expired")
    revoked_at = chain.t
    assert probe.refusal("sme-1", consent(chain)) == (
        f"receipts.pledge of W-1: consent of 'sme-1': party 'sme-1' was revoked at "
        f"t={revoked_at} (KYC expired)"
    )


def test_a_consent_in_another_suite_than_the_party_key_is_refused(
    chain: FinanceChain, probe: Probe
) -> None:
    gm = SigningKey.generate(GM)
    assert probe.refusal("sme-1", consent(chain, key=gm)) == (
        "receipts.pledge of W-1: consent of 'sme-1': signed with suite gm, the key of party "
        "'sme-1' is intl"
    )


def test_a_revoked_member_key_cannot_consent(chain: FinanceChain, probe: Probe) -> None:
    chain.ok("membership", "revoke_key", "wh")
    assert probe.refusal("wh", consent(chain, "wh")) == (
        "receipts.pledge of W-1: consent of 'wh': the key of organisation 'wh' is revoked"
    )


def test_consent_bytes_are_a_strict_cose_sign1() -> None:
    key = SigningKey.generate(INTL)
    data = make_consent(key, VECTOR_CHAIN, "p", ACT, ON, 0, None)
    msg = parse_sign1(data, content_type=CTY_CONSENT)
    assert msg.payload_obj()["terms"] is None
    with pytest.raises(DecodeError):
        parse_consent(data + b"\x00")


def test_a_consent_for_another_chain_is_refused(chain: FinanceChain, probe: Probe) -> None:
    here = chain.genesis.chain
    other_id = bytes(b ^ 0xFF for b in here)  # another chain's id: same length, not a prefix
    assert probe.refusal("sme-1", consent(chain, chain_id=other_id)) == (
        f"receipts.pledge of W-1: consent of 'sme-1': it is for chain {other_id[:8].hex()}…, "
        f"this is {here[:8].hex()}…"
    )
    # an empty chain id (as a consent made with no chain) is named as such
    assert probe.refusal("sme-1", consent(chain, chain_id=b"")) == (
        f"receipts.pledge of W-1: consent of 'sme-1': it is for chain (empty), this is "
        f"{here[:8].hex()}…"
    )
    # a member's consent is bound to the chain too
    assert probe.refusal("wh", consent(chain, "wh", chain_id=other_id)) == (
        f"receipts.pledge of W-1: consent of 'wh': it is for chain {other_id[:8].hex()}…, "
        f"this is {here[:8].hex()}…"
    )


def test_a_consent_is_not_replayed_from_one_consortium_to_another(tmp_path: Path) -> None:
    """sme-1 uses one key on a test chain and on the production chain, which number their
    receipts alike: its pledge consent on the test chain does not pledge on production."""
    test, prod = FinanceChain(tmp_path / "test.sqlite"), FinanceChain(tmp_path / "prod.sqlite")
    try:
        assert test.genesis.chain != prod.genesis.chain
        key = test.party_keys["sme-1"]
        prod.ok("parties", "revoke", "sme-1", "new key")  # the same key on both chains
        prod.ok("parties", "register", "sme-1", "sme-1 Ltd", "supplier", "intl", key.public.raw)
        prod.party_keys["sme-1"] = key
        for c in (test, prod):
            c.issue("W-1")
        terms = {"bank": "bank"}
        seen = test.consent("sme-1", ACT, ON, terms)
        test.ok("receipts", "pledge", ON, "bank", seen, test.consent("wh", ACT, ON, terms))
        assert test.receipt(ON)["state"] == "pledged"

        before = prod.receipt(ON)
        assert before["seq"] == 0 and before["state"] == "live"
        custodian = prod.consent("wh", ACT, ON, terms)
        assert prod.refused("receipts", "pledge", ON, "bank", seen, custodian) == (
            f"receipts.pledge of W-1: consent of 'sme-1': it is for chain "
            f"{test.genesis.chain[:8].hex()}…, this is {prod.genesis.chain[:8].hex()}…"
        )  # refused() checks that nothing changed
        assert prod.receipt(ON) == before
        # the party's own consent for this chain pledges
        prod.ok("receipts", "pledge", ON, "bank", prod.consent("sme-1", ACT, ON, terms), custodian)
        assert prod.receipt(ON)["state"] == "pledged"
    finally:
        test.close()
        prod.close()
