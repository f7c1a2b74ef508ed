"""The parties and receipts contracts: registering parties; issuing receipts only against
proven IoT readings and within the measured stock (the Qingdao check); the lifecycle
(transfer, split, pledge, release, freeze, deliver, cancel) with its consents. Every refusal
is checked for its exact message and for leaving the state unchanged; after every step the
live-receipt index agrees with the receipts."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from finance_harness import DAY, SITE, T0, FinanceChain, fields

from tally.crypto import INTL, SigningKey
from tally.device.envelope import DeviceSigner, Measurement
from tally.finance.contracts.receipt_ops import release_weight
from tally.finance.keys import party_key, receipt_key, relord_key, rloc_key, stock_key
from tally.finance.receipt import LIVE_STATES, iso
from tally.ledger.contract import Context, ContractError
from tally.ledger.contracts import members_view

D = Decimal


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[FinanceChain]:
    c = FinanceChain(tmp_path / "state.sqlite")
    yield c
    assert_index(c)
    c.close()


def assert_index(chain: FinanceChain) -> None:
    """rloc/ holds exactly the live receipts, each with its weight."""
    index = {k: v for k, v, _ in chain.state.range("rloc/")}
    live = {
        rloc_key(r["site"], r["location"], r["no"]): r["weight"]
        for _, r, _ in chain.state.range("rcpt/")
        if r["state"] in LIVE_STATES
    }
    assert index == live


# -- parties ---------------------------------------------------------------------------------


def test_a_bank_registers_and_revokes_its_party(chain: FinanceChain) -> None:
    key = SigningKey.generate(INTL)
    chain.ok("parties", "register", "sme-3", "Third Ltd", "supplier", "intl", key.public.raw)
    t = chain.t
    assert chain.get(party_key("sme-3")) == {
        "id": "sme-3", "name": "Third Ltd", "kind": "supplier", "suite": "intl",
        "pub": key.public.raw, "by": "bank", "t": t, "revoked": None,
    }  # fmt: skip
    assert chain.refused("parties", "revoke", "sme-3", "moved", creator="bank2") == (
        "party 'sme-3' was registered by 'bank', not 'bank2'"
    )
    chain.ok("parties", "revoke", "sme-3", "moved")
    assert chain.get(party_key("sme-3"))["revoked"] == {"t": chain.t, "reason": "moved"}
    assert chain.refused("parties", "revoke", "sme-3", "again") == (
        "party 'sme-3' is already revoked"
    )
    # the sponsor may register it again (a new key); another bank may not
    new = SigningKey.generate(INTL).public.raw
    args = ("sme-3", "T", "supplier", "intl", new)
    assert chain.refused("parties", "register", *args, creator="bank2") == (
        "party 'sme-3' is already registered by 'bank'"
    )
    ex = chain.ok("parties", "register", "sme-3", "Third Ltd", "supplier", "intl", new)
    assert ex.result == {"id": "sme-3", "replaced": True}


@pytest.mark.parametrize(
    ("args", "creator", "error"),
    [
        (("p", "P", "supplier", "intl", b"k" * 32), "wh",
         "parties.register: 'wh' is not a bank member"),
        (("a/b", "P", "supplier", "intl", b"k" * 32), "bank",
         "party id must not contain '/', got 'a/b'"),
        (("", "P", "supplier", "intl", b"k" * 32), "bank",
         "party id must be non-empty text, got str ''"),
        (("p", " ", "supplier", "intl", b"k" * 32), "bank",
         "party name must be non-empty text, got str ' '"),
        (("wh", "P", "supplier", "intl", b"k" * 32), "bank",
         "party 'wh' is a member organisation"),
        (("sme-1", "P", "supplier", "intl", b"k" * 32), "bank",
         "party 'sme-1' is already registered by 'bank'"),
        (("p", "P", "smuggler", "intl", b"k" * 32), "bank",
         "party kind must be one of bank, core_enterprise, supplier, warehouse, logistics, "
         "regulator, government, got 'smuggler'"),
        (("p", "P", "supplier", "rsa", b"k" * 32), "bank",
         "party 'p': unknown crypto suite 'rsa'"),
        (("p", "P", "supplier", "intl", "k"), "bank", "party 'p': key must be bytes, got str"),
    ],
)  # fmt: skip
def test_party_registration_refusals(
    chain: FinanceChain, args: tuple[Any, ...], creator: str, error: str
) -> None:
    assert chain.refused("parties", "register", *args, creator=creator) == error


def test_a_party_key_of_the_wrong_length_is_refused(chain: FinanceChain) -> None:
    err = chain.refused("parties", "register", "p", "P", "supplier", "intl", b"k" * 31)
    assert err.startswith("party 'p': key: ")
    assert chain.refused("parties", "revoke", "nobody", "x") == "party 'nobody' is not registered"


# -- issue -----------------------------------------------------------------------------------


def test_a_receipt_is_issued_against_proven_readings(chain: FinanceChain) -> None:
    f = fields("W-1", "40")
    t = chain.t
    ev = chain.stock_evidence("100.2", "A1", f["lot"])
    ex = chain.ok("receipts", "issue", f, ev, creator="wh")
    assert ex.result == {"no": "W-1", "live": D(40), "allowed": D("99.699")}
    rec = chain.receipt("W-1")
    scan_hash, weigh_hash = (INTL.hash(e["reading"]) for e in ev)
    assert rec == {
        "v": 1, **f, "custodian": "wh", "issued": chain.t, "holder": "sme-1", "state": "live",
        "pledgee": None, "loan": None, "frozen": None, "parent": None, "children": [],
        "evidence": [scan_hash, weigh_hash], "seq": 0,
        "endorsements": [{"t": chain.t, "act": "receipts.issue", "by": "wh", "to": "sme-1"}],
    }  # fmt: skip
    assert chain.live_index() == {"W-1": D(40)}
    assert chain.get(stock_key(SITE, "A1")) == {
        "weight": D("100.2"), "t": t, "device": "lc-S-A1", "reading": weigh_hash,
        "edge": "edge-S", "ctr": 0,
    }  # fmt: skip


def test_issuing_past_the_measured_stock_is_refused_with_the_numbers(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.issue("W-2", "40")
    t = chain.t
    ev = chain.stock_evidence("100.2", "A1", "LOT-W-3")
    before = chain.snapshot()
    err = chain.refused("receipts", "issue", fields("W-3", "40"), ev, creator="wh")
    assert err == (
        f"issuing 40 t at S/A1 would bring live receipts to 120 t; measured stock 100.2 t at "
        f"{iso(t)} less tolerance 0.501 t allows 99.699 t"
    )
    assert chain.snapshot() == before and chain.get(receipt_key("W-3")) is None
    ex = chain.ok("receipts", "issue", fields("W-3", "19.699"), ev, creator="wh")
    assert ex.result["live"] == D("99.699")
    assert chain.refused(
        "receipts",
        "issue",
        fields("W-4", "0.000001", quantity=D(1), lot="LOT-W-3"),
        ev,
        creator="wh",
    ) == (
        f"issuing 0.000001 t at S/A1 would bring live receipts to 99.699001 t; measured stock "
        f"100.2 t at {iso(t)} less tolerance 0.501 t allows 99.699 t"
    )
    # another location is measured on its own
    chain.ok("receipts", "issue", fields("W-5", "40", location="A2"),
             chain.stock_evidence("41", "A2"), creator="wh")  # fmt: skip


def test_only_a_newer_reading_replaces_the_stock(chain: FinanceChain) -> None:
    t_new = chain.t - 10
    old = chain.site.weigh("A1", "100", t_new - 40)
    new = chain.site.weigh("A1", "50", t_new)
    ev_old, ev_new = chain.anchor([old, new])
    ex = chain.ok("receipts", "report_stock", ev_new)
    assert ex.result == {"site": "S", "location": "A1", "weight": D(50), "t": t_new, "live": D(0)}
    assert chain.refused("receipts", "report_stock", ev_old) == (
        f"stock at S/A1 is already measured at {iso(t_new)}; this reading is from {iso(t_new - 40)}"
    )
    # an issue carrying the older (higher) reading is held to the newer stock
    err = chain.refused("receipts", "issue", fields("W-1", "60"), [ev_old], creator="wh")
    assert err == (
        f"issuing 60 t at S/A1 would bring live receipts to 60 t; measured stock 50 t at "
        f"{iso(t_new)} less tolerance 0.25 t allows 49.75 t"
    )
    chain.ok("receipts", "issue", fields("W-1", "49.75"), [ev_old], creator="wh")
    assert chain.get(stock_key(SITE, "A1"))["weight"] == D(50)
    (scan,) = chain.anchor([chain.site.scan("LOT-1", chain.t)])
    assert chain.refused("receipts", "report_stock", scan) == (
        "evidence: a 'rfid_gate' reading of 'gate-S' is not a load-cell or weighbridge weight"
    )


def test_issue_refusals(chain: FinanceChain) -> None:
    chain.issue("W-1", "10")
    t = chain.t
    site = chain.site
    weigh = site.weigh("A1", "100", t)
    leaves = [
        site.scan("LOT-W-2", t - 5),  # 0
        weigh,  # 1
        site.weigh("A2", "100", t),  # 2
        site.scan("LOT-X", t - 5),  # 3
        site.scan("LOT-W-2", t - 5, "out"),  # 4
        site.scan("LOT-W-2", t + 5),  # 5: inbound after the weighing
        site.weigh("A1", "100", t + 10 * 60_000),  # 6: from the future
        site.gate.next(t, (Measurement("rssi", D(-50), "dB"),), (("tag", "urn:x"),)),  # 7
    ]
    ev = chain.anchor(leaves)
    f = fields("W-2", "10")
    cases: list[tuple[Any, Any, str, str]] = [
        (f, [ev[1]], "bank", "receipts.issue: 'bank' is not a warehouse member"),
        (fields("W-1", "10"), [ev[1]], "wh", "receipt W-1 already exists"),
        ({**f, "depositor": "ghost"}, [ev[1]], "wh",
         "receipt field 'depositor': 'ghost' is neither a registered party nor a member"),
        ({**f, "commodity": "zinc"}, [ev[1]], "wh", "receipt field 'commodity': 'zinc' is not set"),
        (f, [], "wh", "issuing W-2: the evidence must be a non-empty list"),
        (f, ev[1], "wh", "issuing W-2: the evidence must be a non-empty list"),
        (f, [ev[0]], "wh", "issuing W-2: no load-cell or weighbridge reading of S/A1 among the "
                           "evidence"),
        (f, [ev[2]], "wh", "evidence 0: weighs location 'A2', the receipt is for 'A1'"),
        (f, [ev[3], ev[1]], "wh", "evidence 0: scans lot 'LOT-X', the receipt is for 'LOT-W-2'"),
        (f, [ev[4], ev[1]], "wh", "evidence 0: scans lot 'LOT-W-2' going 'out', not 'in'"),
        (f, [ev[5], ev[1]], "wh",
         f"evidence 1: weighed at {iso(t)}, before the lot's inbound scan at {iso(t + 5)}"),
        (f, [ev[1], ev[1]], "wh", "evidence 1 repeats evidence 0"),
        (f, [ev[7], ev[1]], "wh",
         "evidence 0: a 'rfid_gate' reading of 'gate-S' is neither a weight nor an RFID scan "
         "of a lot"),
        ({**f, "site": "T"}, [ev[1]], "wh",
         "evidence 0 (reading 0.1 of 'lc-S-A1'): device 'lc-S-A1' is registered at site 'S', "
         "not 'T'"),
        (f, [{**ev[1], "index": 0}], "wh",
         "evidence 0 (reading 0.1 of 'lc-S-A1'): not proven inside batch 1 of edge 'edge-S' at "
         "index 0: " + "calculated root"),
        (f, [ev[1]], "wh2", "evidence 0: device 'lc-S-A1' belongs to 'wh', not to the "
                            "custodian 'wh2'"),
    ]  # fmt: skip
    for given, evidence, creator, error in cases:
        got = chain.refused("receipts", "issue", given, evidence, creator=creator)
        assert got.startswith(error) if error.endswith("calculated root") else got == error, got
    assert chain.refused("receipts", "issue", f, [ev[6]], creator="wh") == (
        f"evidence 0: taken at {iso(t + 600_000)}, after the proposal at {iso(chain.t)}"
    )
    chain.ok("parties", "revoke", "sme-2", "closed")
    revoked = chain.t
    assert chain.refused("receipts", "issue", {**f, "depositor": "sme-2"}, [ev[1]],
                         creator="wh") == (
        f"receipt field 'depositor': party 'sme-2' was revoked at t={revoked} (closed)"
    )  # fmt: skip
    chain.ok("receipts", "issue", f, [ev[0], ev[1]], creator="wh")


def test_a_forged_reading_cannot_back_a_receipt(chain: FinanceChain) -> None:
    forger = DeviceSigner("lc-S-A1", SigningKey.generate(INTL), b"\x01" * 32)
    m = (Measurement("weight", D(1000), "t"),)
    (ev,) = chain.anchor([forger.next(chain.t, m, (("location", "A1"),))])
    assert chain.refused("receipts", "issue", fields("W-1", "500"), [ev], creator="wh") == (
        "evidence 0 (reading 0.0 of 'lc-S-A1'): the signature does not verify with the "
        "registered key of 'lc-S-A1'"
    )


# -- transfer and split ----------------------------------------------------------------------


def test_transfer_needs_the_holder_and_moves_the_one_controller(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    c = chain.consent("sme-1", "receipts.transfer", "W-1", {"to": "sme-2"})
    chain.ok("receipts", "transfer", "W-1", "sme-2", c)
    rec = chain.receipt("W-1")
    assert (rec["holder"], rec["seq"], rec["state"]) == ("sme-2", 1, "live")
    assert rec["endorsements"][-1] == {"t": chain.t, "act": "receipts.transfer", "by": "sme-1",
                                       "holder": "sme-2"}  # fmt: skip
    # the old holder's consent is spent, and the old holder no longer controls it
    assert chain.refused("receipts", "transfer", "W-1", "sme-2", c) == (
        "transferring W-1: 'sme-2' already holds it"
    )
    again = chain.consent("sme-1", "receipts.transfer", "W-1", {"to": "sup"})
    assert chain.refused("receipts", "transfer", "W-1", "sup", again) == (
        "receipts.transfer of W-1: consent of 'sme-2': it is signed by 'sme-1'"
    )
    stale = chain.consent("sme-2", "receipts.transfer", "W-1", {"to": "sup"}, seq=0)
    assert chain.refused("receipts", "transfer", "W-1", "sup", stale) == (
        "receipts.transfer of W-1: consent of 'sme-2': it is for seq 0, W-1 is at seq 1 "
        "(a consent is good for one transition)"
    )
    # to a member supplier, which then acts as creator without a consent
    chain.ok("receipts", "transfer", "W-1", "sup",
             chain.consent("sme-2", "receipts.transfer", "W-1", {"to": "sup"}))  # fmt: skip
    chain.ok("receipts", "transfer", "W-1", "sme-1", None, creator="sup")
    assert chain.receipt("W-1")["holder"] == "sme-1"
    assert chain.live_index() == {"W-1": D(40)}


def test_transfer_refusals(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    c = chain.consent("sme-1", "receipts.transfer", "W-1", {"to": "sme-2"})
    assert chain.refused("receipts", "transfer", "W-9", "sme-2", c) == "receipt W-9 does not exist"
    assert chain.refused("receipts", "transfer", "W/1", "sme-2", c) == (
        "receipt number must not contain '/', got 'W/1'"
    )
    assert chain.refused("receipts", "transfer", "W-1", "ghost", c) == (
        "transferring W-1: 'ghost' is neither a registered party nor a member"
    )
    assert chain.refused("receipts", "transfer", "W-1", "sme-2", None) == (
        "receipts.transfer of W-1: consent of 'sme-1' is missing"
    )
    assert chain.refused("receipts", "transfer", "W-1", "bank2", c) == (
        "receipts.transfer of W-1: consent of 'sme-1': it agrees to terms {'to': 'sme-2'}, the "
        "proposal has {'to': 'bank2'}"
    )
    chain.pledge("W-1")
    c = chain.consent("sme-1", "receipts.transfer", "W-1", {"to": "sme-2"})
    assert chain.refused("receipts", "transfer", "W-1", "sme-2", c) == (
        "receipt W-1 is pledged to bank"
    )


def test_an_expired_receipt_cannot_be_transferred_split_or_pledged(chain: FinanceChain) -> None:
    end = T0 + 2 * DAY
    chain.issue("W-1", "40", period={"from": T0, "to": end})
    chain.t = end  # the next proposal is 1 ms past the period
    msg = f"receipt W-1 expired at {iso(end)}"
    t = chain.consent("sme-1", "receipts.transfer", "W-1", {"to": "sme-2"})
    assert chain.refused("receipts", "transfer", "W-1", "sme-2", t) == msg
    kids = [{"no": "W-1.a", "quantity": D(10), "weight": D(20)}] * 2
    s = chain.consent("sme-1", "receipts.split", "W-1", {"children": kids})
    assert chain.refused("receipts", "split", "W-1", kids, s) == msg
    hc = chain.consent("sme-1", "receipts.pledge", "W-1", {"bank": "bank"})
    cc = chain.consent("wh", "receipts.pledge", "W-1", {"bank": "bank"})
    assert chain.refused("receipts", "pledge", "W-1", "bank", hc, cc) == msg
    # delivery of expired goods is still possible
    chain.ok("receipts", "deliver", "W-1", chain.consent("sme-1", "receipts.deliver", "W-1", None),
             creator="wh")  # fmt: skip
    assert chain.receipt("W-1")["state"] == "delivered"


def split_parts(*parts: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"no": n, "quantity": D(q), "weight": D(w)} for n, q, w in parts]


def test_split_children_sum_exactly_to_the_parent(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")  # quantity 20 bundles
    kids = split_parts(("W-1a", "5", "10.5"), ("W-1b", "15", "29.5"))
    c = chain.consent("sme-1", "receipts.split", "W-1", {"children": kids})
    ex = chain.ok("receipts", "split", "W-1", kids, c)
    assert ex.result == ["W-1a", "W-1b"]
    parent = chain.receipt("W-1")
    assert (parent["state"], parent["children"], parent["seq"]) == ("split", ["W-1a", "W-1b"], 1)
    for kid in kids:
        rec = chain.receipt(kid["no"])
        assert (rec["parent"], rec["holder"], rec["state"], rec["seq"]) == (
            "W-1",
            "sme-1",
            "live",
            0,
        )
        assert (rec["quantity"], rec["weight"]) == (kid["quantity"], kid["weight"])
        assert rec["endorsements"] == [{"t": chain.t, "act": "receipts.split", "by": "sme-1",
                                        "from": "W-1"}]  # fmt: skip
    assert chain.live_index() == {"W-1a": D("10.5"), "W-1b": D("29.5")}
    assert chain.refused("receipts", "transfer", "W-1", "sme-2",
                         chain.consent("sme-1", "receipts.transfer", "W-1", {"to": "sme-2"})) == (
        "receipt W-1 is split"
    )  # fmt: skip


def test_split_refusals(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.issue("W-2", "10")

    def refused(kids: Any, consent: bytes | None = None) -> str:
        c = consent or chain.consent("sme-1", "receipts.split", "W-1", {"children": kids})
        return chain.refused("receipts", "split", "W-1", kids, c)

    assert refused(split_parts(("a", "5", "10"), ("b", "15", "29.999"))) == (
        "splitting W-1: the parts hold quantity 20 and weight 39.999 t, the receipt 20 bundle "
        "and 40 t"
    )
    assert refused(split_parts(("a", "5", "10"), ("b", "16", "30"))) == (
        "splitting W-1: the parts hold quantity 21 and weight 40 t, the receipt 20 bundle and 40 t"
    )
    assert refused(split_parts(("a", "5", "10"), ("a", "15", "30"))) == (
        "splitting W-1: receipt number a appears twice"
    )
    assert refused(split_parts(("a", "5", "10"), ("W-2", "15", "30"))) == (
        "splitting W-1: receipt W-2 already exists"
    )
    assert refused(split_parts(("a/1", "5", "10"), ("b", "15", "30"))) == (
        "splitting W-1: receipt number must not contain '/', got 'a/1'"
    )
    assert refused(split_parts(("a", "20", "40"))) == (
        "splitting W-1: children must be a list of 2 to 100 parts"
    )
    assert refused(split_parts(("a", "0", "10"), ("b", "20", "30"))) == (
        "splitting W-1: child 0 quantity must be a positive Decimal, got 0"
    )
    assert refused([{"no": "a", "weight": D(1)}, {}]) == (
        "splitting W-1: child 0 must be a map of no, quantity, weight"
    )
    kids = split_parts(("a", "5", "10"), ("b", "15", "30"))
    other = chain.consent(
        "sme-1",
        "receipts.split",
        "W-1",
        {"children": split_parts(("a", "10", "20"), ("b", "10", "20"))},
    )
    assert refused(kids, other).startswith(
        "receipts.split of W-1: consent of 'sme-1': it agrees to terms {'children': ["
    )  # fmt: skip


# -- pledge, release, freeze -----------------------------------------------------------------


def test_pledge_needs_holder_custodian_and_bank_and_happens_once(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    terms = {"bank": "bank"}
    hc = chain.consent("sme-1", "receipts.pledge", "W-1", terms)
    cc = chain.consent("wh", "receipts.pledge", "W-1", terms)
    assert chain.refused("receipts", "pledge", "W-1", "bank", hc, cc, creator="wh") == (
        "receipts.pledge: 'wh' is not a bank member"
    )
    assert chain.refused("receipts", "pledge", "W-1", "bank2", hc, cc) == (
        "receipts.pledge: the pledgee 'bank2' must be the creator"
    )
    assert chain.refused("receipts", "pledge", "W-1", "bank", hc, None) == (
        "receipts.pledge of W-1: consent of 'wh' is missing"
    )
    assert chain.refused("receipts", "pledge", "W-1", "bank", None, cc) == (
        "receipts.pledge of W-1: consent of 'sme-1' is missing"
    )
    assert chain.refused("receipts", "pledge", "W-1", "bank", cc, hc) == (
        "receipts.pledge of W-1: consent of 'sme-1': it is signed by 'wh'"
    )
    chain.ok("receipts", "pledge", "W-1", "bank", hc, cc)
    rec = chain.receipt("W-1")
    assert (rec["state"], rec["pledgee"], rec["holder"], rec["seq"]) == (
        "pledged",
        "bank",
        "sme-1",
        1,
    )
    assert rec["endorsements"][-1] == {"t": chain.t, "act": "receipts.pledge", "by": "sme-1",
                                       "pledgee": "bank"}  # fmt: skip
    assert chain.live_index() == {"W-1": D(40)}
    # a double-dealing holder signs for a second bank: refused
    t2 = {"bank": "bank2"}
    hc2 = chain.consent("sme-1", "receipts.pledge", "W-1", t2)
    cc2 = chain.consent("wh", "receipts.pledge", "W-1", t2)
    assert chain.refused("receipts", "pledge", "W-1", "bank2", hc2, cc2, creator="bank2") == (
        "receipt W-1 is pledged to bank"
    )


def test_full_and_partial_release(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.pledge("W-1")
    ex = chain.ok("receipts", "release", "W-1", D("10.5"))
    assert ex.result == {"released": "W-1.1", "kept": "W-1.2"}
    one, two = chain.receipt("W-1.1"), chain.receipt("W-1.2")
    assert (one["state"], one["pledgee"], one["weight"], one["quantity"]) == (
        "live",
        None,
        D("10.5"),
        D("5.25"),
    )
    assert (two["state"], two["pledgee"], two["weight"], two["quantity"]) == (
        "pledged",
        "bank",
        D("29.5"),
        D("14.75"),
    )
    assert chain.receipt("W-1")["state"] == "split"
    assert chain.live_index() == {"W-1.1": D("10.5"), "W-1.2": D("29.5")}
    t = chain.t
    assert chain.get(relord_key(SITE, "W-1.1:release:0")) == {
        "id": "W-1.1:release:0", "receipt": "W-1.1", "site": "S", "location": "A1",
        "lot": "LOT-W-1", "weight": D("10.5"), "from": t, "to": t + 7 * DAY, "by": "bank",
        "loan": None, "kind": "release", "t": t,
    }  # fmt: skip
    ex = chain.ok("receipts", "release", "W-1.2", D("29.5"))
    assert ex.result == {"released": "W-1.2", "kept": None}
    two = chain.receipt("W-1.2")
    assert (two["state"], two["pledgee"], two["seq"]) == ("live", None, 1)
    order = chain.get(relord_key(SITE, "W-1.2:release:1"))
    assert order["weight"] == D("29.5") and order["kind"] == "release"
    assert chain.live_index() == {"W-1.1": D("10.5"), "W-1.2": D("29.5")}


def test_release_refusals(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    assert chain.refused("receipts", "release", "W-1", D(1)) == "receipt W-1 is live, not pledged"
    chain.pledge("W-1")
    assert chain.refused("receipts", "release", "W-1", D(1), creator="bank2") == (
        "receipt W-1 is pledged to bank, not bank2"
    )
    assert chain.refused("receipts", "release", "W-1", D(50)) == (
        "releasing 50 t of W-1: it holds only 40 t"
    )
    assert chain.refused("receipts", "release", "W-1", D(0)) == (
        "releasing from W-1: the weight must be a positive Decimal, got 0"
    )
    assert chain.refused("receipts", "release", "W-1", 5) == (
        "releasing from W-1: the weight must be a positive Decimal, got int 5"
    )
    chain.ok("receipts", "freeze", "W-1", "inspection")
    assert chain.refused("receipts", "release", "W-1", D(1)) == (
        "receipt W-1 is frozen by bank (inspection)"
    )


def test_a_receipt_securing_a_loan_asks_the_loan_before_release(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.pledge("W-1")
    chain.seed(receipt_key("W-1"), {**chain.receipt("W-1"), "loan": "L-404"})
    assert chain.refused("receipts", "release", "W-1", D(1)) == "loan L-404 does not exist"


def test_freeze_and_unfreeze(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.issue("W-2", "10")
    assert chain.refused("receipts", "freeze", "W-1", "x") == (
        "receipts.freeze of W-1: 'bank' is neither its pledgee nor a regulator"
    )
    chain.pledge("W-1")
    assert chain.refused("receipts", "freeze", "W-1", "x", creator="bank2") == (
        "receipts.freeze of W-1: 'bank2' is neither its pledgee nor a regulator"
    )
    assert chain.refused("receipts", "freeze", "W-1", " ") == (
        "receipts.freeze of W-1: the reason must be non-empty text"
    )
    chain.ok("receipts", "freeze", "W-1", "suspected double pledge")
    rec = chain.receipt("W-1")
    assert rec["frozen"] == {"by": "bank", "reason": "suspected double pledge", "t": chain.t,
                             "was": "pledged"}  # fmt: skip
    assert chain.live_index() == {"W-1": D(40), "W-2": D(10)}  # frozen goods still count
    assert chain.refused("receipts", "freeze", "W-1", "again", creator="reg") == (
        "receipt W-1 is already frozen by bank (suspected double pledge)"
    )
    c = chain.consent("sme-1", "receipts.transfer", "W-1", {"to": "sme-2"})
    assert chain.refused("receipts", "transfer", "W-1", "sme-2", c) == (
        "receipt W-1 is frozen by bank (suspected double pledge)"
    )
    assert chain.refused("receipts", "unfreeze", "W-1", creator="bank2") == (
        "receipts.unfreeze of W-1: 'bank2' is neither its pledgee nor a regulator"
    )
    chain.ok("receipts", "unfreeze", "W-1")
    rec = chain.receipt("W-1")
    assert (rec["state"], rec["frozen"]) == ("pledged", None)
    assert chain.refused("receipts", "unfreeze", "W-1") == "receipt W-1 is pledged, not frozen"
    # a regulator's freeze is lifted only by a regulator
    chain.ok("receipts", "freeze", "W-1", "court order", creator="reg")
    assert chain.refused("receipts", "unfreeze", "W-1") == (
        "receipt W-1 was frozen by the regulator reg: only a regulator can unfreeze it"
    )
    chain.ok("receipts", "unfreeze", "W-1", creator="reg")
    chain.ok("receipts", "freeze", "W-2", "audit", creator="reg")  # a live receipt
    assert chain.receipt("W-2")["frozen"]["was"] == "live"
    chain.ok("receipts", "unfreeze", "W-2", creator="reg")
    assert chain.receipt("W-2")["state"] == "live"


def test_deliver_and_cancel_by_the_custodian_with_the_holder(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.issue("W-2", "10")
    c1 = chain.consent("sme-1", "receipts.deliver", "W-1", None)
    assert chain.refused("receipts", "deliver", "W-1", c1, creator="wh2") == (
        "receipts.deliver of W-1: only its custodian wh can, not wh2"
    )
    assert chain.refused("receipts", "deliver", "W-1", None, creator="wh") == (
        "receipts.deliver of W-1: consent of 'sme-1' is missing"
    )
    chain.ok("receipts", "deliver", "W-1", c1, creator="wh")
    rec = chain.receipt("W-1")
    assert (rec["state"], rec["seq"]) == ("delivered", 1)
    order = chain.get(relord_key(SITE, "W-1:delivery:1"))
    assert (order["kind"], order["weight"], order["by"]) == ("delivery", D(40), "wh")
    assert chain.refused("receipts", "deliver", "W-1", c1, creator="wh") == (
        "receipt W-1 is delivered"
    )
    c2 = chain.consent("sme-1", "receipts.cancel", "W-2", None)
    assert chain.refused("receipts", "cancel", "W-2", c1, creator="wh") == (
        "receipts.cancel of W-2: consent of 'sme-1': it is a consent to 'receipts.deliver'"
    )
    chain.ok("receipts", "cancel", "W-2", c2, creator="wh")
    assert chain.receipt("W-2")["state"] == "cancelled"
    assert chain.live_index() == {}
    assert list(chain.state.range("relord/S/W-2")) == []
    # the freed stock can be receipted again
    chain.issue("W-3", "99")


def test_pledged_goods_cannot_be_delivered_or_cancelled(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.pledge("W-1")
    c = chain.consent("sme-1", "receipts.cancel", "W-1", None)
    assert chain.refused("receipts", "cancel", "W-1", c, creator="wh") == (
        "receipt W-1 is pledged to bank"
    )


def test_a_full_lifecycle_keeps_one_controller_and_the_index(chain: FinanceChain) -> None:
    chain.issue("W-1", "60")
    kids = split_parts(("W-1a", "10", "20"), ("W-1b", "20", "40"))
    chain.ok("receipts", "split", "W-1", kids,
             chain.consent("sme-1", "receipts.split", "W-1", {"children": kids}))  # fmt: skip
    chain.ok("receipts", "transfer", "W-1b", "sme-2",
             chain.consent("sme-1", "receipts.transfer", "W-1b", {"to": "sme-2"}))  # fmt: skip
    chain.pledge("W-1b", "bank2")
    chain.ok("receipts", "release", "W-1b", D(15), creator="bank2")
    chain.ok("receipts", "deliver", "W-1b.1",
             chain.consent("sme-2", "receipts.deliver", "W-1b.1", None), creator="wh")  # fmt: skip
    holders = {r["no"]: (r["holder"], r["state"]) for _, r, _ in chain.state.range("rcpt/")}
    assert holders == {
        "W-1": ("sme-1", "split"), "W-1a": ("sme-1", "live"), "W-1b": ("sme-2", "split"),
        "W-1b.1": ("sme-2", "delivered"), "W-1b.2": ("sme-2", "pledged"),
    }  # fmt: skip
    assert chain.live_index() == {"W-1a": D(20), "W-1b.2": D(25)}
    assert_index(chain)


# -- shared operations ---------------------------------------------------------------------------


def op_ctx(chain: FinanceChain, creator: str = "bank") -> Context:
    members = members_view(chain.state, chain.genesis)
    return Context(chain.state, creator, b"tx", chain.t + 1, members, chain=chain.genesis.chain)


def test_release_weight_for_a_disposal_keeps_the_rest_frozen(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    chain.pledge("W-1")
    chain.ok("receipts", "freeze", "W-1", "loan L-1 defaulted")
    ctx = op_ctx(chain)
    assert release_weight(ctx, "W-1", D(10), kind="disposal", loan="L-1") == ["W-1.1", "W-1.2"]
    writes = dict(ctx.writes())
    sold, kept = writes["rcpt/W-1.1"], writes["rcpt/W-1.2"]
    assert (sold["state"], sold["frozen"], sold["weight"], sold["quantity"]) == (
        "disposed",
        None,
        D(10),
        D(5),
    )
    assert (kept["state"], kept["frozen"]["was"], kept["pledgee"]) == ("frozen", "pledged", "bank")
    assert writes["rcpt/W-1"]["state"] == "split"
    assert writes["rloc/S/A1/W-1"] is None and writes["rloc/S/A1/W-1.2"] == D(30)
    assert "rloc/S/A1/W-1.1" not in writes
    order = writes[relord_key(SITE, "W-1.1:disposal:0")]
    assert (order["kind"], order["loan"], order["weight"]) == ("disposal", "L-1", D(10))


def test_release_weight_refusals(chain: FinanceChain) -> None:
    chain.issue("W-1", "40")
    long_no = "W" * 63
    chain.issue(long_no, "10", lot="LOT-long")

    def refusal(no: str, weight: Any, kind: str = "release") -> str:
        with pytest.raises(ContractError) as err:
            release_weight(op_ctx(chain), no, weight, kind=kind, loan=None)
        return err.value.reason

    assert refusal("W-1", D(1), "gift") == (
        "release kind must be one of release, delivery, disposal, got 'gift'"
    )
    assert refusal("W-1", D(41)) == "releasing 41 t of W-1: it holds only 40 t"
    assert refusal("W-1", D(-1)) == (
        "releasing from W-1: the weight must be a positive Decimal, got -1"
    )
    assert refusal(long_no, D(1)) == (
        f"releasing 1 t of {long_no}: the part's receipt number {long_no}.1 would be longer "
        "than 64 characters"
    )
    chain.ok("receipts", "cancel", "W-1", chain.consent("sme-1", "receipts.cancel", "W-1", None),
             creator="wh")  # fmt: skip
    assert refusal("W-1", D(1)) == "receipt W-1 is cancelled: it holds no goods to release"
    # a whole-receipt release needs no new number
    assert release_weight(op_ctx(chain), long_no, D(10), kind="delivery", loan=None) == [long_no]


def test_a_part_quantity_is_pro_rata_and_the_parts_sum_exactly(chain: FinanceChain) -> None:
    chain.issue("W-1", "30", quantity=D(7))
    chain.pledge("W-1")
    chain.ok("receipts", "release", "W-1", D(10))
    one, two = chain.receipt("W-1.1"), chain.receipt("W-1.2")
    assert one["quantity"] == D("2.333333") and two["quantity"] == D("4.666667")
    assert one["quantity"] + two["quantity"] == D(7)
    assert one["weight"] + two["weight"] == D(30)
