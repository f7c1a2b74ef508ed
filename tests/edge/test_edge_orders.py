"""Release orders reach a distributed edge from the warehouse's own peer.

Two member peers (the bank's and the warehouse's) run as peer services over a 3-server
JetStream cluster on free ports, executing the system and finance contracts; the regulator
submits without a peer of its own. Through the real contracts: the site's devices are
registered and a weighing anchored, a receipt is issued on it, pledged, lent against (on the
purchase's reconciled trade) and partly repaid, which writes a release order. A real edge
gateway with a plausibility rule and ``orders_url`` set to the warehouse's peer then:

* gets the order — a weight drop it covers is explained;
* loses it when the regulator freezes the receipt — a later drop is unexplained;
* skips records not of the documented shape (written by a test contract beside the finance
  contracts, as another version of a contract could leave them), with the key and the rule
  in the log, and goes on;
* keeps polling while the warehouse's peer is down, with the error in its stats, and picks up
  the next order once the peer is back.

Every wait polls a condition with a deadline; every process and port is closed at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import require_nats_server
from tally import formats as F
from tally.crypto import INTL, SigningKey, cbor, parse_sign1
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import Assurance, Registration, sign_registration
from tally.device.trust import Trust
from tally.edge.config import load_edge_config
from tally.edge.formats import BatchHeader, decode_event, sign_object
from tally.edge.gateway import EdgeGateway
from tally.edge.orders import (
    Order,
    OrderPoller,
    PeerError,
    Receipt,
    RecordError,
    parse_order,
    parse_page,
    parse_receipt,
    stop_reason,
)
from tally.edge.registry import Registry as EdgeRegistry
from tally.edge.service import EdgeService
from tally.finance.consent import make_consent
from tally.finance.evidence import evidence_for
from tally.finance.policies import default_policies, finance_contracts
from tally.ledger.bootstrap import Created, create_consortium
from tally.ledger.contract import Context, Contract, Registry, function
from tally.ledger.contracts import system_contracts
from tally.ledger.genesis import Ordering
from tally.ledger.natscluster import NatsCluster
from tally.ledger.peerservice import PeerConfig, PeerService
from tally.ledger.policy import parse_policy
from tally.ledger.remote import RemoteConsortium
from tally.merkle import Hasher, Tree

pytestmark = pytest.mark.timeout(120)

PASS = "edge-orders-test-passphrase"
MEMBERS = {"bank": ["bank"], "wh": ["warehouse"], "reg": ["regulator"]}
SITE = "S"
CELL = f"lc-{SITE}-A1"
EDGE = f"edge-{SITE}"
DAY = 86_400_000
WINDOW = 60_000
DEADLINE = 20.0
D = Decimal


class Seed(Contract):
    """Writes any record it is given (a test stand-in for a contract of another version)."""

    name = "seed"

    @function
    def put(self, ctx: Context, key: str, value: Any) -> None:
        ctx.put(key, value)


def contracts() -> Registry:
    return Registry(*system_contracts(), *finance_contracts(), Seed())


async def until(what: str, check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Wait until ``check()`` holds, polling; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


class Chain:
    """The consortium: peer services of bank and wh, and a client submitting as any member."""

    def __init__(self, created: Created, nats: list[str], directory: Path) -> None:
        self.created = created
        self.nats = nats
        self.directory = directory
        self.services: dict[str, PeerService] = {}
        self.urls: dict[str, str] = {}
        self.rc = RemoteConsortium(created.genesis, {}, timeout=DEADLINE)

    async def start(self, org: str, port: int = 0) -> str:
        cfg = PeerConfig(org=org, key_file=self.created.key_path(org),
                         genesis=self.created.genesis_path, data_dir=self.directory / org,
                         port=port, nats=self.nats)  # fmt: skip
        service = PeerService(cfg, PASS, contracts=contracts())
        self.services[org] = service
        self.urls[org] = self.rc.peers[org] = await service.start()
        return self.urls[org]

    async def stop(self, org: str) -> None:
        await self.services.pop(org).stop()

    async def close(self) -> None:
        await self.rc.close()
        for org in list(self.services):
            await self.stop(org)

    async def ok(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> None:
        key = self.created.keys[creator]
        r = await self.rc.submit(contract, fn, list(args), creator, key)
        assert r.valid, (contract, fn, r.code, r.reason, r.error)

    def state(self, org: str, key: str) -> Any:
        found = self.services[org].peer.state.get(key)
        return None if found is None else found[0]


class Site:
    """Site S of wh: its edge and the load cell under location A1."""

    def __init__(self, org_key: SigningKey) -> None:
        self.org_key = org_key
        self.edge_key = SigningKey.generate(INTL)
        self.cell = DeviceSigner(CELL, SigningKey.generate(INTL), b"\x01" * 32)

    def registrations(self) -> list[bytes]:
        def reg(kind: str, subject: str, key: SigningKey, profile: str) -> bytes:
            r = Registration(kind, subject, "wh", SITE, profile, "intl", key.public.raw,
                             Assurance.DEVICE, 1_700_000_000_000)  # fmt: skip
            return sign_registration(self.org_key, r)

        return [
            reg("edge", EDGE, self.edge_key, ""),
            reg("device", CELL, self.cell.key, "load_cell"),
        ]

    def weigh(self, weight: Decimal, t: int) -> bytes:
        m = (Measurement("weight", weight, "t"),)
        return self.cell.next(t, m, (("location", "A1"), ("stable", "1")))

    def anchored_weighing(self, weight: Decimal, t: int) -> tuple[bytes, dict[str, Any]]:
        """A weighing, the header of the batch holding it alone, and its evidence."""
        reading = self.weigh(weight, t)
        tree = Tree(Hasher.for_name(INTL.hash_name))
        tree.extend([reading])
        h = BatchHeader(EDGE, SITE, "intl", 0, b"", t, t, 1, tree.root())
        header = sign_object(self.edge_key, F.CTY_BATCH, EDGE, h.to_cbor())
        return header, evidence_for(reading, [reading], EDGE, 0, Hasher.for_name(INTL.hash_name))


def receipt_fields(no: str, weight: str, t: int) -> dict[str, Any]:
    return {
        "no": no, "depositor": "sme-1", "goods": "electrolytic copper cathode",
        "spec": "Cu-CATH-1", "quantity": D(weight) / 2, "unit": "bundle", "weight": D(weight),
        "packaging": "strapped bundles", "lot": f"LOT-{no}", "site": SITE, "location": "A1",
        "period": {"from": t - DAY, "to": t + 30 * DAY}, "fees": {"rate": 150, "currency": "CNY"},
        "insurance": None, "commodity": "copper",
    }  # fmt: skip


class Scale:
    """The edge's clock, and the load cell's readings into the gateway every 5 s of it."""

    def __init__(self, site: Site, start: int, stock: Decimal) -> None:
        self.site, self.now, self.stock = site, start, stock
        self.gateway: EdgeGateway | None = None

    def __call__(self) -> int:
        return self.now

    def run(self, ms: int) -> None:
        assert self.gateway is not None
        end = self.now + ms
        while self.now < end:
            self.now += 5_000
            r = self.gateway.ingest(self.site.weigh(self.stock, self.now), "test")
            assert r.accepted, r

    def drops(self) -> list[dict[str, Any]]:
        """The details of the plausibility rule's unexplained_weight_drop events so far."""
        assert self.gateway is not None
        out = []
        for _kind, cose, _batch in self.gateway.outbox.items("event"):
            ev = decode_event(parse_sign1(cose).payload)
            if ev.kind == "unexplained_weight_drop":
                out.append(dict(ev.detail))
        return out


def stand_in(label: str) -> bytes:
    """A 32-byte stand-in for a hash the chain holds (a document's, a report's)."""
    return hashlib.sha256(label.encode()).digest()


async def attach_trade(chain: Chain, loan_id: str, amount: int) -> None:
    """The purchase loan ``loan_id`` pays for (sme-1 buys ``amount`` fen from the seller
    ``smelter``, registered by the bank): its invoice and waybill anchored (stand-in hashes),
    the trade attested reconciled through the real ``trades`` contract, and attached."""
    await chain.ok("parties", "register", "smelter", "Smelter", "supplier", "intl",
                   SigningKey.generate(INTL).public.raw)  # fmt: skip
    tid = f"T-{loan_id}"
    docs = [stand_in(f"{kind} document of {tid}") for kind in ("invoice", "waybill")]
    for kind, h in zip(("invoice", "waybill"), docs, strict=True):
        await chain.ok("trades", "anchor", kind, h, tid)
    record = {
        "v": 1, "id": tid, "seller": "smelter", "buyer": "sme-1", "status": "reconciled",
        "amount": amount, "currency": "CNY", "invoiced": amount, "paid": 0,
        "invoices": [stand_in(f"invoice identity of {tid}")],
        "waybills": [stand_in(f"waybill identity of {tid}")], "docs": docs,
        "result": stand_in(f"reconciliation of {tid}"), "reasons": [],
    }  # fmt: skip
    await chain.ok("trades", "attest", tid, record)
    await chain.ok("loans", "attach_trade", loan_id, tid)


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Chain]:
    require_nats_server()
    policies = {**default_policies(MEMBERS), "seed.*": parse_policy("org:wh")}
    created = create_consortium(tmp_path / "consortium", MEMBERS, PASS, name="edge-orders",
                                policies=policies, ordering=Ordering("jetstream", 20, 20),
                                scrypt_n=1 << 10)  # fmt: skip
    async with NatsCluster(tmp_path / "nats", size=3) as cluster:
        c = Chain(created, cluster.urls, tmp_path / "peers")
        try:
            await c.start("bank")
            await c.start("wh")
            yield c
        finally:
            await c.close()


async def test_orders_reach_the_edge_are_revoked_skipped_and_retried(
    chain: Chain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tally.edge.orders")
    # -- on chain: a receipt on anchored evidence, a pledge, a loan, a partial repayment ---------
    site = Site(chain.created.keys["wh"])
    sme = SigningKey.generate(INTL)
    for reg in site.registrations():
        await chain.ok("registry", "register", reg, creator="wh")
    await chain.ok("market", "set_commodity", "copper", "t", D("0.005"))
    await chain.ok("market", "set_price", "copper", D(70000), "CNY")
    await chain.ok("market", "set_params", "copper", D("0.9"), D("0.6"), D("1.3"), D("1.2"),
                   3 * DAY)  # fmt: skip
    await chain.ok("parties", "register", "sme-1", "sme-1 Ltd", "supplier", "intl", sme.public.raw)
    t = time.time_ns() // 1_000_000 - 1000
    header, evidence = site.anchored_weighing(D(101), t)
    await chain.ok("anchoring", "anchor_batch", header, creator="wh")
    await chain.ok("receipts", "issue", receipt_fields("W-1", "100", t), [evidence], creator="wh")
    terms, cid = {"bank": "bank"}, chain.created.genesis.chain
    holder = make_consent(sme, cid, "sme-1", "receipts.pledge", "W-1", 0, terms)
    wh_key = chain.created.keys["wh"]
    custodian = make_consent(wh_key, cid, "wh", "receipts.pledge", "W-1", 0, terms)
    await chain.ok("receipts", "pledge", "W-1", "bank", holder, custodian)
    loan = {"bank": "bank", "receipts": ["W-1"], "amount": 300_000_000, "term_days": 90,
            "seller": "smelter", "seller_account": "6222 0000 1111"}  # fmt: skip
    borrower = make_consent(sme, cid, "sme-1", "loans.apply", "L-1", 0, loan)
    await chain.ok("loans", "apply", "L-1", "sme-1", ["W-1"], 300_000_000, 90, "smelter",
                   "6222 0000 1111", borrower)  # fmt: skip
    await attach_trade(chain, "L-1", 300_000_000)
    await chain.ok("loans", "approve", "L-1", D("0.0435"))
    await chain.ok("loans", "disburse", "L-1", bytes(32))
    await chain.ok("loans", "repay", "L-1", 100_000_000, b"\x01" * 32)  # a third: W-1.1 is freed
    (key,) = [k for k, _, _ in chain.services["wh"].peer.state.range(f"relord/{SITE}/")]
    written = chain.state("wh", key)
    assert (written["receipt"], written["kind"], written["loan"]) == ("W-1.1", "release", "L-1")

    # -- the edge, reading the warehouse's peer -----------------------------------------------
    rule = {"id": "plaus-A1", "type": "plausibility", "location": "A1", "devices": [CELL],
            "tolerance": "0.2", "window_ms": WINDOW}  # fmt: skip
    cfg = load_edge_config({"edge": {
        "id": EDGE, "org": "wh", "site": SITE, "data_dir": str(tmp_path / "edge"),
        "rules": [rule], "orders_url": chain.urls["wh"], "orders_interval_ms": 100,
    }})  # fmt: skip
    registry = EdgeRegistry(Trust(INTL, {"wh": chain.created.keys["wh"].public}))
    for reg in site.registrations():
        registry.add_registration(reg)
    scale = Scale(site, written["from"] + 1000, D(101))
    gateway = scale.gateway = EdgeGateway(cfg, key=site.edge_key, registry=registry, clock=scale)
    service = EdgeService(gateway)
    await service.start()
    try:
        assert service.orders is not None
        poller = service.orders
        await until("the order is handed over", lambda: len(poller.handed) == 1)
        (order,) = poller.handed
        assert (order.id, order.location, order.lot, order.weight, order.valid_from,
                order.valid_to) == (written["id"], "A1", "LOT-W-1", written["weight"],
                                    written["from"], written["to"])  # fmt: skip
        assert order.weight > 30

        # a drop the order covers is explained
        scale.run(WINDOW)
        scale.stock -= 20
        scale.run(3 * WINDOW)
        assert scale.drops() == []

        # the regulator freezes the released receipt: the order is revoked at the edge
        await chain.ok("receipts", "freeze", "W-1.1", "court order", creator="reg")
        await until("the order is revoked", lambda: poller.revoked == [order.id])
        assert "revoked: receipt W-1.1 is frozen by reg (court order)" in caplog.text
        scale.run(WINDOW)
        scale.stock -= 10  # the order's rest (13.333 t) would have covered it
        scale.run(3 * WINDOW)
        (drop,) = scale.drops()
        assert (drop["unexplained_t"], drop["explained_release_t"]) == (D(10), D(0))
        assert gateway.stats()["events"] == {"plaus-A1": 1}

        # records not of the documented shape are skipped with their key and reason
        bad_weight = {**written, "id": "W-1.1:release:7", "weight": "12"}
        await chain.ok("seed", "put", "relord/S/W-1.1:release:7", bad_weight, creator="wh")
        await chain.ok("seed", "put", "relord/S/bad", {"id": "bad"}, creator="wh")
        await chain.ok("seed", "put", "rcpt/W-9", {"v": 2, "no": "W-9"}, creator="wh")
        order9 = {**written, "id": "W-9:release:0", "receipt": "W-9", "location": "B9"}
        await chain.ok("seed", "put", "relord/S/W-9:release:0", order9, creator="wh")
        want = {
            "relord/S/W-1.1:release:7": "field 'weight' must be a positive Decimal (t) with at "
                                        "most 6 places, got str '12'",
            "relord/S/bad": "missing field 'receipt'",
            "rcpt/W-9": "missing field 'state'",
        }  # fmt: skip
        await until("the records are skipped", lambda: poller.malformed == want)
        for k, reason in want.items():
            assert f"record skipped: {k}: {reason}" in caplog.text
        assert poller.error == "" and len(poller.handed) == 1  # W-9 waits for its receipt
        await chain.ok("seed", "put", "rcpt/W-9", {"v": 1, "no": "W-9", "state": "live",
                                                   "frozen": None}, creator="wh")  # fmt: skip
        await until("W-9's order is handed over", lambda: len(poller.handed) == 2)
        assert poller.handed[1].id == "W-9:release:0" and "rcpt/W-9" not in poller.malformed

        # the warehouse's peer stops: the poller keeps trying, and picks up again
        port = int(chain.urls["wh"].rsplit(":", 1)[1])
        await chain.stop("wh")
        await until("two failed polls", lambda: poller.consecutive_failures >= 2)
        stats = service.adapter_stats()["orders"]
        assert stats["error"].startswith(f"{chain.urls['wh']}/v1/state?prefix=relord/S/: Connect")
        assert stats["consecutive_failures"] >= 2 and stats["handed"] == 2
        await chain.start("wh", port)
        await until("a good poll", lambda: poller.error == "")
        assert poller.consecutive_failures == 0 and poller.last_error.startswith(chain.urls["wh"])
        wh, bank = chain.services["wh"].peer, chain.services["bank"].peer
        await until("the warehouse's peer caught up", lambda: wh.height == bank.height)
        await chain.ok("loans", "repay", "L-1", 50_000_000, b"\x02" * 32)
        await until("the next order is handed over", lambda: len(poller.handed) == 3)
        assert poller.handed[2].receipt == "W-1.2.1" and poller.handed[2].loan == "L-1"
        assert poller.revoked == [order.id] and poller.withheld == []
    finally:
        await service.stop()


# -- the records and pages, refused precisely ------------------------------------------------

ORDER = {"id": "W-1.1:release:3", "receipt": "W-1.1", "site": "S", "location": "A1",
         "lot": "LOT-W-1", "weight": D("33.333"), "from": 1000, "to": 1000 + 7 * DAY,
         "by": "bank", "loan": "L-1", "kind": "release", "t": 1000}  # fmt: skip
OKEY = "relord/S/W-1.1:release:3"
FIELDS = "id, receipt, site, location, lot, weight, from, to, by, loan, kind, t"


def test_a_documented_order_parses() -> None:
    o = parse_order(OKEY, ORDER, "S")
    assert o == Order("W-1.1:release:3", "W-1.1", "A1", "LOT-W-1", D("33.333"), 1000,
                      1000 + 7 * DAY, "bank", "L-1", "release", 1000)  # fmt: skip
    assert parse_order(OKEY, {**ORDER, "loan": None}, "S").loan is None


@pytest.mark.parametrize(
    ("key", "change", "reason"),
    [
        ("relord/T/W-1.1:release:3", {}, "not a release order of site S (those are relord/S/<id>)"),
        (OKEY, None, "a release order must be a map, got list"),
        (OKEY, {"lot": ...}, "missing field 'lot'"),
        (OKEY, {"extra": 1}, f"unknown field 'extra' (the fields are {FIELDS})"),
        (OKEY, {"id": ""}, "field 'id' must be non-empty text, got str ''"),
        (OKEY, {"receipt": "W/1"}, "field 'receipt' must not contain '/', got 'W/1'"),
        (OKEY, {"receipt": "W" * 65}, "field 'receipt' must be at most 64 characters, got 65"),
        (OKEY, {"site": "T"}, "field 'site' must be this edge's site 'S', got str 'T'"),
        (OKEY, {"location": "A\n1"},
         "field 'location' must not contain control characters, got 'A\\n1'"),
        (OKEY, {"lot": 7}, "field 'lot' must be non-empty text, got int 7"),
        (OKEY, {"weight": D(0)}, "field 'weight' must be a positive Decimal (t) with at most 6 "
                                 "places, got Decimal 0"),
        (OKEY, {"weight": D("-1")}, "field 'weight' must be a positive Decimal (t) with at most "
                                    "6 places, got Decimal -1"),
        (OKEY, {"weight": D("0.0000001")}, "field 'weight' must be a positive Decimal (t) with "
                                           "at most 6 places, got Decimal 0.0000001"),
        (OKEY, {"weight": D("NaN")}, "field 'weight' must be a positive Decimal (t) with at "
                                     "most 6 places, got Decimal NaN"),
        (OKEY, {"weight": 12}, "field 'weight' must be a positive Decimal (t) with at most 6 "
                               "places, got int 12"),
        (OKEY, {"from": True}, "field 'from' must be an unsigned integer, got bool True"),
        (OKEY, {"to": -1}, "field 'to' must be an unsigned integer, got int -1"),
        (OKEY, {"to": 1000}, "field 'to' (1000) must be after 'from' (1000)"),
        (OKEY, {"by": ""}, "field 'by' must be non-empty text, got str ''"),
        (OKEY, {"loan": 5}, "field 'loan' must be non-empty text, got int 5"),
        (OKEY, {"kind": "theft"}, "field 'kind' must be one of release, delivery, disposal, "
                                  "got str 'theft'"),
        (OKEY, {"t": D(1)}, "field 't' must be an unsigned integer, got Decimal 1"),
        (OKEY, {"id": "W-2:release:3"}, "field 'id' must be W-1.1:release:<seq>, "
                                        "got 'W-2:release:3'"),
        (OKEY, {"id": "W-1.1:release:x"}, "field 'id' must be W-1.1:release:<seq>, "
                                          "got 'W-1.1:release:x'"),
        (OKEY, {"id": "W-1.1:release:4"}, "the key must be relord/S/<id>, and the id is "
                                          "'W-1.1:release:4'"),
    ],
)  # fmt: skip
def test_orders_not_of_the_documented_shape_are_refused(
    key: str, change: dict[str, Any] | None, reason: str
) -> None:
    value: Any = [ORDER] if change is None else {**ORDER, **change}
    if change and change.get("lot") is ...:
        del value["lot"]
    with pytest.raises(RecordError) as exc:
        parse_order(key, value, "S")
    assert (exc.value.key, exc.value.reason) == (key, reason)
    assert str(exc.value) == f"{key}: {reason}"


RECEIPT = {"v": 1, "no": "W-1", "state": "frozen", "weight": D(100),
           "frozen": {"by": "reg", "reason": "court order", "t": 5, "was": "pledged"}}  # fmt: skip


def test_receipts_and_when_they_stop_an_order() -> None:
    frozen = parse_receipt("rcpt/W-1", RECEIPT, "W-1")
    assert frozen == Receipt("W-1", "frozen", "reg", "court order")
    o = parse_order(OKEY, ORDER, "S")
    sale = parse_order("relord/S/W-1.1:disposal:4", {**ORDER, "id": "W-1.1:disposal:4",
                                                     "kind": "disposal"}, "S")  # fmt: skip
    assert stop_reason(o, frozen) == "receipt W-1 is frozen by reg (court order)"
    assert stop_reason(sale, frozen) == "receipt W-1 is frozen by reg (court order)"
    for state, kind_stopped in [("live", False), ("pledged", False), ("split", False),
                                ("delivered", False), ("disposed", True)]:  # fmt: skip
        r = parse_receipt("rcpt/W-1", {**RECEIPT, "state": state, "frozen": None}, "W-1")
        assert (stop_reason(o, r) is not None) == kind_stopped
        assert stop_reason(sale, r) is None
    assert stop_reason(o, None) is None  # no receipt on chain: nothing stops the order


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (None, "a receipt must be a map, got str"),
        ({"state": ...}, "missing field 'state'"),
        ({"v": 2}, "field 'v' must be 1, got int 2"),
        ({"v": True}, "field 'v' must be 1, got bool True"),
        ({"no": "W-2"}, "field 'no' must be 'W-1', got str 'W-2'"),
        ({"state": "stolen"}, "field 'state' must be one of live, pledged, frozen, split, "
                              "delivered, cancelled, disposed, got str 'stolen'"),
        ({"frozen": None}, "field 'frozen' must be a map when the state is 'frozen'"),
        ({"frozen": "yes"}, "field 'frozen' must be a map, got str"),
        ({"frozen": {"by": "reg", "reason": "r", "t": 5}}, "missing field 'was'"),
        ({"frozen": {"by": "reg", "reason": "r", "t": 5, "was": "live", "x": 1}},
         "unknown field 'x' (the fields are by, reason, t, was)"),
        ({"frozen": {"by": "", "reason": "r", "t": 5, "was": "live"}},
         "field 'frozen.by' must be non-empty text, got str ''"),
        ({"frozen": {"by": "reg", "reason": "r", "t": -5, "was": "live"}},
         "field 'frozen.t' must be an unsigned integer, got int -5"),
        ({"frozen": {"by": "reg", "reason": "r", "t": 5, "was": "split"}},
         "field 'frozen.was' must be live or pledged, got str 'split'"),
    ],
)  # fmt: skip
def test_receipts_not_of_the_documented_shape_are_refused(
    change: dict[str, Any] | None, reason: str
) -> None:
    value: Any = "W-1" if change is None else {**RECEIPT, **change}
    if change and change.get("state") is ...:
        del value["state"]
    with pytest.raises(RecordError) as exc:
        parse_receipt("rcpt/W-1", value, "W-1")
    assert (exc.value.key, exc.value.reason) == ("rcpt/W-1", reason)


def page(height: Any = 3, items: Any = (), more: Any = False, **extra: Any) -> bytes:
    return cbor.encode({"height": height, "items": list(items), "more": more, **extra})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff", "the page is not deterministic CBOR: state page: malformed CBOR"),
        (b"\xa1\x61a\xf9\x3c\x00", "the page is not deterministic CBOR: state page:"),
        (cbor.encode([1]), "the page must be a map of height, items, more; got list"),
        (page(next=1), "the page must be a map of height, items, more; got 'height', "
                       "'items', 'more', 'next'"),
        (page(height=-1), "the page's height must be an unsigned integer, got int -1"),
        (page(height=False), "the page's height must be an unsigned integer, got bool False"),
        (page(more=1), "the page's more must be a boolean and items a list of at most 2"),
        (page(items=[["p/1", 1]] * 3), "the page's more must be a boolean and items a list of "
                                       "at most 2"),
        (page(items=[["p/1"]]), "item 0 of the page is not [key, value]"),
        (page(items=[[1, 1]]), "item 0 of the page is not [key, value]"),
        (page(items=[["q/1", 1]]), "item 0 of the page: 'q/1' is not a next key in 'p/'"),
        (page(items=[["p/2", 1], ["p/1", 1]]), "item 1 of the page: 'p/1' is not a next key "
                                               "in 'p/'"),
        (page(items=[["p/0", 1]]), "item 0 of the page: 'p/0' is not a next key in 'p/'"),
        (page(more=True), "the page says more follows but holds no items"),
    ],
)  # fmt: skip
def test_pages_not_of_the_documented_shape_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(PeerError) as exc:
        parse_page(data, "p/", "p/0", 2)
    assert str(exc.value).startswith(reason), str(exc.value)
    assert parse_page(page(items=[["p/1", 1], ["p/2", {"a": D("1.5")}]], more=True), "p/",
                      "p/0", 2) == (3, [("p/1", 1), ("p/2", {"a": D("1.5")})], True)  # fmt: skip


# -- the poller against a peer that answers as told ------------------------------------------


class FakePeer:
    """``GET /v1/state`` over a dict, as the peer pages it; or an answer forced on it."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.height = 1
        self.answer: httpx.Response | None = None
        self.asked: list[dict[str, str]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        self.asked.append(q)
        if self.answer is not None:
            return self.answer
        keys = sorted(k for k in self.state if k.startswith(q["prefix"]) and k > q.get("after", ""))
        limit = int(q["limit"])
        items = [[k, self.state[k]] for k in keys[:limit]]
        body = page(self.height, items, len(keys) > limit)
        return httpx.Response(200, content=body, headers={"content-type": "application/cbor"})

    def put(self, key: str, value: Any) -> None:
        self.state[key] = value
        self.height += 1

    def order(self, no: str, kind: str = "release", seq: int = 0) -> str:
        oid = f"{no}:{kind}:{seq}"
        self.put(f"relord/S/{oid}", {**ORDER, "id": oid, "receipt": no, "kind": kind})
        return oid

    def receipt(self, no: str, state: str) -> None:
        frozen = {"by": "bank", "reason": "loan L-1 defaulted", "t": 5, "was": "pledged"}
        self.put(f"rcpt/{no}", {"v": 1, "no": no, "state": state,
                                "frozen": frozen if state == "frozen" else None})  # fmt: skip


class Edge:
    def __init__(self) -> None:
        self.authorised: list[str] = []
        self.revoked: list[str] = []
        self.fail_authorise = self.fail_revoke = False

    def authorise(self, location: str, weight: Decimal, lots: tuple[str, ...], start: int,
                  end: int, ref: str) -> None:  # fmt: skip
        if self.fail_authorise:
            raise ValueError(f"release {ref!r} was revoked: it cannot be authorised again")
        self.authorised.append(ref)

    def revoke(self, ref: str) -> bool:
        if self.fail_revoke:
            raise RuntimeError("rules engine busy")
        self.revoked.append(ref)
        return True


def poller(peer: FakePeer, edge: Edge, limit: int = 500) -> OrderPoller:
    return OrderPoller("S", "http://peer-wh", edge.authorise, edge.revoke, limit=limit,
                       transport=httpx.MockTransport(peer.handler))  # fmt: skip


async def test_orders_are_paged_handed_once_withheld_and_revoked() -> None:
    peer, edge = FakePeer(), Edge()
    for i in range(5):
        peer.order(f"W-{i}")
    peer.receipt("W-3", "frozen")
    p = poller(peer, edge, limit=2)
    assert await p.poll_once()
    assert edge.authorised == ["W-0:release:0", "W-1:release:0", "W-2:release:0",
                               "W-4:release:0"]  # fmt: skip
    assert [o.id for o in p.withheld] == ["W-3:release:0"]
    orders = [q for q in peer.asked if q["prefix"] == "relord/S/"]
    assert [q.get("after") for q in orders] == [None, "relord/S/W-1:release:0",
                                                "relord/S/W-3:release:0"]  # fmt: skip
    assert await p.poll_once() and len(edge.authorised) == 4  # once
    peer.receipt("W-3", "live")  # unfrozen: a withheld order stays withheld
    peer.receipt("W-0", "frozen")
    peer.receipt("W-1", "disposed")
    sale = peer.order("W-2", "disposal", 1)
    peer.receipt("W-2", "disposed")  # the sale's own receipt: its order leaves, the earlier not
    assert await p.poll_once()
    assert edge.revoked == ["W-0:release:0", "W-1:release:0", "W-2:release:0"]
    assert edge.authorised[-1] == sale and "W-3:release:0" not in edge.authorised
    assert p.stats() | {"last_ok_ms": 0} == {
        "url": "http://peer-wh", "site": "S", "polls": 3, "failures": 0,
        "consecutive_failures": 0, "error": "", "last_error": "", "last_ok_ms": 0,
        "height": peer.height, "handed": 5, "live": 2, "revoked": 3, "withheld": 1,
        "refused": {}, "malformed": {},
    }  # fmt: skip


async def test_receipts_are_read_again_only_when_the_height_moved() -> None:
    peer, edge = FakePeer(), Edge()
    peer.order("W-1")
    p = poller(peer, edge)
    assert await p.poll_once()
    reads = [q for q in peer.asked if q["prefix"] == "rcpt/W-1"]
    assert len(reads) == 1 and reads[0]["limit"] == "1"
    assert await p.poll_once() and len(peer.asked) == 3  # the orders only: nothing moved
    peer.put("other/x", 1)
    assert await p.poll_once() and len(peer.asked) == 5  # the height moved: W-1 read again


async def test_the_edge_refusing_or_failing_is_kept_and_retried_where_it_can_be() -> None:
    peer, edge = FakePeer(), Edge()
    peer.order("W-1")
    edge.fail_authorise = True
    p = poller(peer, edge)
    assert await p.poll_once()
    assert p.refused == {"W-1:release:0": "release 'W-1:release:0' was revoked: it cannot be "
                                          "authorised again"}  # fmt: skip
    edge.fail_authorise = False
    assert await p.poll_once() and edge.authorised == []  # refused orders are not tried again
    peer.order("W-2")
    assert await p.poll_once() and edge.authorised == ["W-2:release:0"]
    peer.receipt("W-2", "frozen")
    edge.fail_revoke = True
    assert await p.poll_once() and edge.revoked == []
    edge.fail_revoke = False
    assert await p.poll_once()  # the height did not move, the failed revocation is tried again
    assert edge.revoked == ["W-2:release:0"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(400, json={"type": "urn:tally:ledger:malformed", "detail": "parameter "
                                   "'limit' must be an integer from 1 to 1000, got '0'"},
                        headers={"content-type": "application/problem+json"}),
         "HTTP 400: parameter 'limit' must be an integer from 1 to 1000, got '0'"),
        (httpx.Response(404, text="Not Found"), "HTTP 404: Not Found"),
        (httpx.Response(200, json={"height": 1}), "the answer is application/json, not "
                                                  "application/cbor"),
        (httpx.Response(200, content=page(more=True), headers={"content-type": "application/cbor"}),
         "the page says more follows but holds no items"),
    ],
)  # fmt: skip
async def test_a_peer_that_cannot_be_read_is_retried_with_the_error_kept(
    answer: httpx.Response, error: str
) -> None:
    peer, edge = FakePeer(), Edge()
    peer.order("W-1")
    peer.answer = answer
    p = poller(peer, edge)
    assert not await p.poll_once() and not await p.poll_once()
    want = f"http://peer-wh/v1/state?prefix=relord/S/: {error}"
    assert (p.error, p.last_error, p.failures, p.consecutive_failures) == (want, want, 2, 2)
    assert edge.authorised == [] and p.last_ok_ms is None
    peer.answer = None
    assert await p.poll_once() and edge.authorised == ["W-1:release:0"]
    assert (p.error, p.last_error, p.consecutive_failures) == ("", want, 0)
