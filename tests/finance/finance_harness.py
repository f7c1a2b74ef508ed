"""Test harness for the finance contracts: a site's IoT (edge, load cells, RFID gate) whose
batches get anchored, and a chain executing proposals against a real SQLite state with the
system contracts and the finance contracts registered, committed one per block as a peer
does (no signatures, no ordering)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from tally import formats as F
from tally.crypto import INTL, SigningKey, Suite
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import Assurance, Registration, sign_registration
from tally.edge.formats import BatchHeader, sign_object
from tally.finance.consent import make_consent
from tally.finance.contracts.market import Market
from tally.finance.contracts.parties import Parties
from tally.finance.contracts.receipts import Receipts
from tally.finance.evidence import evidence_for
from tally.finance.keys import receipt_key
from tally.ledger.contract import Execution, Registry, execute
from tally.ledger.contracts import members_view, system_contracts
from tally.ledger.formats import Proposal
from tally.ledger.genesis import Genesis, Member
from tally.ledger.state import SqliteState
from tally.merkle import Hasher, Tree

T0 = 1_700_000_000_000
DAY = 86_400_000
SITE = "S"
LOCATIONS = ("A1", "A2")
ORGS: dict[str, tuple[str, ...]] = {
    "bank": ("bank",),
    "bank2": ("bank",),
    "wh": ("warehouse",),
    "wh2": ("warehouse",),
    "reg": ("regulator",),
    "sup": ("supplier",),
}
POLICIES: dict[str, Any] = {
    "membership.*": "org:bank",
    "registry.*": "role:warehouse",
    "anchoring.*": "role:warehouse",
    "market.*": "role:bank",
    "parties.*": "role:bank",
    "receipts.*": "AND(role:warehouse, role:bank)",
}
PARTIES = ("sme-1", "sme-2")
COMMODITY = "copper"
TOLERANCE = Decimal("0.005")


def fixed_key(n: int, suite: Suite = INTL) -> SigningKey:
    """A deterministic Ed25519 key (seed = 32 bytes of ``n``)."""
    return SigningKey(suite, bytes([n]) * 32)


class Site:
    """The IoT of one warehouse site of org ``org``: edge ``edge-<site>``, a load cell
    ``lc-<loc>`` per location and an RFID gate ``gate-<site>``; batches chain per edge."""

    def __init__(
        self, org: str, org_key: SigningKey, site: str = SITE, locations: Sequence[str] = LOCATIONS
    ) -> None:
        self.org, self.org_key, self.site = org, org_key, site
        self.suite = org_key.suite
        self.edge = f"edge-{site}"
        self.edge_key = SigningKey.generate(self.suite)
        fw = b"\x01" * 32
        self.cells = {
            loc: DeviceSigner(f"lc-{site}-{loc}", SigningKey.generate(self.suite), fw)
            for loc in locations
        }
        self.gate = DeviceSigner(f"gate-{site}", SigningKey.generate(self.suite), fw)
        self.headers: list[bytes] = []

    def registration(self, kind: str, subject: str, key: SigningKey, profile: str = "",
                     assurance: Assurance = Assurance.DEVICE, site: str | None = None,
                     t: int = T0) -> bytes:  # fmt: skip
        reg = Registration(kind, subject, self.org, self.site if site is None else site,
                           profile, self.suite.name, key.public.raw, assurance, t)  # fmt: skip
        return sign_registration(self.org_key, reg)

    def registrations(self) -> list[bytes]:
        out = [self.registration("edge", self.edge, self.edge_key)]
        for cell in self.cells.values():
            out.append(self.registration("device", cell.dev, cell.key, "load_cell"))
        out.append(self.registration("device", self.gate.dev, self.gate.key, "rfid_gate"))
        return out

    def weigh(self, loc: str, weight: Decimal | str, t: int) -> bytes:
        """A load-cell reading of ``loc``'s stock at ``t``."""
        m = (Measurement("weight", Decimal(weight), "t"),)
        return self.cells[loc].next(t, m, (("location", loc), ("stable", "1")))

    def scan(self, lot: str, t: int, direction: str = "in") -> bytes:
        """An RFID gate reading of ``lot`` passing at ``t``."""
        m = (Measurement("rssi", Decimal("-55"), "dB"),)
        labels = (("direction", direction), ("lot", lot), ("tag", f"urn:epc:{lot}"))
        return self.gate.next(t, m, labels)

    def header(self, leaves: Sequence[bytes], t0: int, t1: int, **kw: Any) -> bytes:
        """The next batch header of the edge over ``leaves``."""
        ctr = len(self.headers)
        hasher = Hasher.for_name(self.suite.hash_name)
        tree = Tree(hasher)
        tree.extend(leaves)
        prev = self.suite.hash(self.headers[-1]) if self.headers else b""
        h = BatchHeader(self.edge, self.site, self.suite.name, ctr, prev, t0, t1,
                        len(leaves), tree.root())  # fmt: skip
        h = replace(h, **kw)
        cose = sign_object(self.edge_key, F.CTY_BATCH, self.edge, h.to_cbor())
        self.headers.append(cose)
        return cose

    def evidence(self, leaves: Sequence[bytes], ctr: int) -> list[dict[str, Any]]:
        hasher = Hasher.for_name(self.suite.hash_name)
        return [evidence_for(leaf, leaves, self.edge, ctr, hasher) for leaf in leaves]


def fields(no: str = "W-1", weight: Decimal | str = "40", **kw: Any) -> dict[str, Any]:
    """Valid receipt fields (at site S, location A1, lot LOT-<no>, for sme-1)."""
    f: dict[str, Any] = {
        "no": no,
        "depositor": "sme-1",
        "goods": "electrolytic copper cathode",
        "spec": "Cu-CATH-1, GB/T 467-2010",
        "quantity": Decimal(weight) / 2,
        "unit": "bundle",
        "weight": Decimal(weight),
        "packaging": "strapped bundles on pallets",
        "lot": f"LOT-{no}",
        "site": SITE,
        "location": "A1",
        "period": {"from": T0, "to": T0 + 30 * DAY},
        "fees": {"rate": 150, "currency": "CNY"},
        "insurance": {"insurer": "PICC", "policy": "P-2023-001", "amount": 50_000_000},
        "commodity": COMMODITY,
    }
    f.update(kw)
    return f


class FinanceChain:
    """Members :data:`ORGS` with fresh keys; the system, parties, receipts and market
    contracts; a site S of ``wh`` registered; commodity copper; parties sme-1, sme-2 of bank.

    Each proposal gets its own time ``t`` (one ms after the previous one)."""

    def __init__(self, path: Path, suite: Suite = INTL) -> None:
        self.suite = suite
        self.keys = {o: SigningKey.generate(suite) for o in ORGS}
        self.genesis = Genesis(
            name="finance test",
            suite=suite,
            t=T0,
            members={o: Member(o, r, self.keys[o].public.raw) for o, r in ORGS.items()},
            policies={},
            checkpoint_quorum=1,
        )
        self.state = SqliteState(path)
        self.registry = Registry(*system_contracts(), Parties(), Receipts(), Market())
        self.height = 0
        self.t = T0 + 1000
        self.site = Site("wh", self.keys["wh"])
        self.party_keys = {p: SigningKey.generate(suite) for p in PARTIES}
        for reg in self.site.registrations():
            self.ok("registry", "register", reg, creator="wh")
        self.ok("market", "set_commodity", COMMODITY, "t", TOLERANCE)
        for p in PARTIES:
            pub = self.party_keys[p].public.raw
            self.ok("parties", "register", p, f"{p} Ltd", "supplier", suite.name, pub)

    # -- executing proposals ----------------------------------------------------------------

    def run(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> Execution:
        self.t += 1
        p = Proposal(self.genesis.chain, contract, fn, args, creator, self.t.to_bytes(8), self.t)
        members = members_view(self.state, self.genesis)
        return execute(self.registry, self.state, p, self.suite.hash(p.to_cbor()), members)

    def commit(self, ex: Execution) -> None:
        self.height += 1
        self.state.apply(self.height, [(k, v, (self.height, 0)) for k, v in ex.writes], b"c")

    def ok(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> Execution:
        ex = self.run(contract, fn, *args, creator=creator)
        assert ex.error == "", ex.error
        self.commit(ex)
        return ex

    def seed(self, key: str, value: Any) -> None:
        """Write ``key`` directly, as another contract's committed transaction would."""
        self.height += 1
        self.state.apply(self.height, [(key, value, (self.height, 0))], b"c")

    def snapshot(self) -> list[tuple[str, Any, Any]]:
        return list(self.state.range(""))

    def refused(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> str:
        """The refusal of a proposal, checked to change nothing."""
        before = self.snapshot()
        ex = self.run(contract, fn, *args, creator=creator)
        assert ex.error, "expected a refusal"
        assert (ex.reads, ex.writes, ex.result) == ((), (), None)
        assert self.snapshot() == before
        return ex.error

    def get(self, key: str) -> Any:
        found = self.state.get(key)
        return None if found is None else found[0]

    def receipt(self, no: str) -> dict[str, Any]:
        rec = self.get(receipt_key(no))
        assert rec is not None, f"no receipt {no}"
        return dict(rec)

    # -- IoT ----------------------------------------------------------------------------

    def anchor(self, leaves: Sequence[bytes]) -> list[dict[str, Any]]:
        """Anchor a batch of ``leaves``; return the evidence of each."""
        header = self.site.header(leaves, T0, self.t)
        ctr = len(self.site.headers) - 1
        self.ok("anchoring", "anchor_batch", header, creator="wh")
        return self.site.evidence(leaves, ctr)

    def stock_evidence(
        self, weight: Decimal | str, loc: str = "A1", lot: str | None = None
    ) -> list[dict[str, Any]]:
        """Anchored evidence: an inbound scan of ``lot`` (if given), then a weighing."""
        leaves = []
        if lot is not None:
            leaves.append(self.site.scan(lot, self.t - 10))
        leaves.append(self.site.weigh(loc, weight, self.t))
        return self.anchor(leaves)

    # -- finance ------------------------------------------------------------------------

    def consent(self, party: str, act: str, on: str, terms: Any, seq: int | None = None) -> bytes:
        key = self.party_keys.get(party) or self.keys[party]
        if seq is None:
            seq = self.receipt(on)["seq"]
        return make_consent(key, self.genesis.chain, party, act, on, seq, terms)

    def issue(
        self, no: str = "W-1", weight: Decimal | str = "40", stock: Decimal | str = "100.2",
        creator: str = "wh", **kw: Any,
    ) -> Execution:  # fmt: skip
        f = fields(no, weight, **kw)
        ev = self.stock_evidence(stock, f["location"], f["lot"])
        return self.ok("receipts", "issue", f, ev, creator=creator)

    def pledge(self, no: str, bank: str = "bank") -> Execution:
        terms = {"bank": bank}
        holder = self.receipt(no)["holder"]
        hc = self.consent(holder, "receipts.pledge", no, terms)
        cc = self.consent("wh", "receipts.pledge", no, terms)
        return self.ok("receipts", "pledge", no, bank, hc, cc, creator=bank)

    def live_index(self, site: str = SITE, loc: str = "A1") -> dict[str, Decimal]:
        prefix = f"rloc/{site}/{loc}/"
        return {k[len(prefix) :]: v for k, v, _ in self.state.range(prefix)}

    def close(self) -> None:
        self.state.close()


def members_of(orgs: Mapping[str, Sequence[str]]) -> list[tuple[str, list[str]]]:
    return [(o, list(r)) for o, r in orgs.items()]
