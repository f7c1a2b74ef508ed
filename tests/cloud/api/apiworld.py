"""A small SIMULATED world for the platform API's tests: two tenants of every kind, a user
of every role in each, and business owned by and among them — with an oracle, stated here
independently of the policy, of which tenant takes part in which row.

Tenants are ``<short>-a`` and ``<short>-b`` (``bank-a``, ``sup-b`` …); warehouse ``wh-a``
keeps site ``wh-a-s1``. Users are ``<role>@<tenant>``, password :data:`PW`. Every
organisation and figure is made up (names start with "Simulated").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cloud_factory import make_world

from tally.cloud import authz
from tally.cloud import identity as I
from tally.cloud.api import install_graph
from tally.cloud.app import create_app
from tally.cloud.auditlog import AuditLog
from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.identity_store import IdentityStore
from tally.cloud.keyring import LocalKeyring
from tally.cloud.live import EventHub
from tally.cloud.session_api import COOKIE, CSRF_HEADER
from tally.cloud.storage import open_storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views.model import (
    AlertRow,
    ApplicationRow,
    BlockRow,
    DocumentRow,
    LoanRow,
    NoteRow,
    OrgRow,
    ReceiptRow,
    TradeRow,
    TxRow,
)
from tally.cloud.views.store import Views

PW = "correct horse battery"
T0 = 1_767_225_600_000
DAY = 86_400_000
FAST = I.IdentityPolicy(scrypt_log_n=10)
SHORT = {
    "bank": "bank", "core_enterprise": "core", "supplier": "sup", "warehouse": "wh",
    "logistics": "log", "regulator": "reg", "government": "gov",
}  # fmt: skip
TENANTS = {f"{s}-{x}": kind for kind, s in SHORT.items() for x in "ab"}
SITES = {"wh-a": ("wh-a-s1",), "wh-b": ("wh-b-s1",)}
SITE_OWNER = {site: wh for wh, sites in SITES.items() for site in sites}
MEMBERS = {t for t, k in TENANTS.items() if k in ("bank", "core_enterprise", "warehouse",
                                                  "logistics")}  # fmt: skip
ALL_SCOPES = [f"{a}:{n}" for n in authz.SCOPE_NOUNS.values() for a in I.SCOPE_ACTIONS]
SENSITIVE = {"uscc": "91310000SIMULATED0", "bank_account": "6222 0000 SIMULATED"}
EARLIER = {"N-a2": {"sup-a"}}
"""Earlier holders of notes (the view keeps them linked)."""


def username(role: str, tenant: str) -> str:
    return f"{role}@{tenant}"


def twin(tenant: str) -> str:
    """The other tenant of the same kind."""
    return tenant[:-1] + ("b" if tenant.endswith("a") else "a")


def _org(tid: str) -> OrgRow:
    kind = TENANTS[tid]
    x = tid[-1]
    core = f"core-{x}" if kind == "supplier" else None
    bank = f"bank-{x}" if kind in ("supplier", "core_enterprise") else None
    return OrgRow(tid, f"Simulated {tid}", kind, "machining", "Jiangsu", core,
                  1 if core else None, bank, True)  # fmt: skip


def _receipt(no: str, holder: str, wh: str, bank: str | None, status: str,
             loan: str | None, k: int) -> ReceiptRow:  # fmt: skip
    site = SITES[wh][0]
    return ReceiptRow(no, holder, wh, bank, site, f"{site}/A{k}", "steel coil", "20.500", "t",
                      1_000_000 * k, status, loan, T0 + k, T0 + k, k)  # fmt: skip


def _loan(lid: str, borrower: str, bank: str, receipts: tuple[str, ...], k: int) -> LoanRow:
    return LoanRow(lid, borrower, bank, 800_000, 600_000, "0.0450", "active", 1.4, receipts,
                   None, T0 + k, T0 + k + DAY, T0 + 90 * DAY, T0 + k, k)  # fmt: skip


def _note(nid: str, root: str, parent: str | None, issuer: str, holder: str, bank: str | None,
          status: str, k: int) -> NoteRow:  # fmt: skip
    return NoteRow(nid, root, parent, issuer, holder, bank, 500_000, status, 1 if parent is None
                   else 2, None, T0 + k, T0 + 180 * DAY, T0 + k, k)  # fmt: skip


def _alert(aid: str, owner: str, bank: str | None, site: str | None, k: int) -> AlertRow:
    return AlertRow(aid, "coverage", "warning", owner, bank, site, None, None,
                    "simulated alert", T0 + k, (), None, None)  # fmt: skip


def _application(pid: str, applicant: str, bank: str, kind: str, subject: str,
                 k: int) -> ApplicationRow:  # fmt: skip
    return ApplicationRow(pid, applicant, bank, kind, subject, 100_000, "submitted", T0 + k,
                          username("operator", applicant), None, None, None)  # fmt: skip


RECEIPTS = [
    _receipt("R-a1", "sup-a", "wh-a", None, "live", None, 1),
    _receipt("R-a2", "sup-a", "wh-a", "bank-a", "pledged", "L-a1", 2),
    _receipt("R-b1", "sup-b", "wh-b", None, "live", None, 3),
    _receipt("R-b2", "sup-b", "wh-b", "bank-b", "pledged", "L-b1", 4),
    _receipt("R-c1", "core-a", "wh-b", None, "live", None, 5),
]
LOANS = [
    _loan("L-a1", "sup-a", "bank-a", ("R-a2",), 1),
    _loan("L-b1", "sup-b", "bank-b", ("R-b2",), 2),
    _loan("L-c1", "core-b", "bank-a", (), 3),
]
NOTES = [
    _note("N-a1", "N-a1", None, "core-a", "sup-a", "bank-a", "live", 1),
    _note("N-a2", "N-a1", "N-a1", "core-a", "sup-b", "bank-a", "live", 2),
    _note("N-b1", "N-b1", None, "core-b", "sup-b", "bank-b", "live", 3),
    _note("N-c1", "N-c1", None, "core-a", "sup-a", None, "financed", 4),
]
TRADES = [
    TradeRow("T-a1", "sup-a", "core-a", "bank-a", "reconciled", 900_000, (), T0, 1),
    TradeRow("T-b1", "sup-b", "core-b", "bank-b", "mismatch", 700_000, ("invoice",), T0, 2),
]
DOCUMENTS = [
    DocumentRow("d0a1", "invoice", "sup-a", "core-a", "T-a1", "INV-1", 900_000, T0 + 1, 1),
    DocumentRow("d0b1", "contract", "sup-b", "core-b", "T-b1", "CT-1", 700_000, T0 + 2, 2),
    DocumentRow("d0c1", "waybill", "log-a", None, None, "WB-1", None, T0 + 3, 3),
]
ALERTS = [
    _alert("A-a1", "bank-a", "bank-a", "wh-a-s1", 1),
    _alert("A-b1", "bank-b", "bank-b", "wh-b-s1", 2),
    _alert("A-w1", "wh-a", None, "wh-a-s1", 3),
    _alert("A-s1", "sup-b", None, None, 4),
]
APPLICATIONS = [
    _application("P-a1", "sup-a", "bank-a", "note", "N-a1", 1),
    _application("P-a2", "sup-a", "bank-a", "receipt", "R-a1", 2),
    _application("P-b1", "sup-b", "bank-b", "receipt", "R-b1", 3),
    _application("P-c1", "core-b", "bank-a", "receipt", "R-c1", 4),
]
BLOCKS = [
    (BlockRow(1, "b1" * 32, 2, T0, ("bank-a", "wh-a"), "c1" * 32),
     [TxRow("aa01", 1, 0, "loans", "disburse", "bank-a", "valid", None),
      TxRow("aa02", 1, 1, "receipts", "issue", "wh-b", "valid", None)]),
    (BlockRow(2, "b2" * 32, 1, T0 + 1, ("core-a", "bank-b"), None),
     [TxRow("bb01", 2, 0, "notes", "issue", "core-a", "valid", None)]),
]  # fmt: skip


# -- the oracle -------------------------------------------------------------------------------
def involved(kind: str, row: Any) -> set[str]:
    """The tenants that take part in ``row`` (owner, bank, parties, the keeper of its site)."""
    site_owner = {SITE_OWNER.get(getattr(row, "site", None) or "")} - {None}
    if kind == "receipt":
        who = {row.holder, row.custodian, row.bank} | site_owner
    elif kind == "loan":
        who = {row.borrower, row.bank}
    elif kind == "application":
        who = {row.applicant, row.bank}
    elif kind == "note":
        who = {row.holder, row.issuer, row.bank} | EARLIER.get(row.id, set())
    elif kind == "trade":
        who = {row.seller, row.buyer, row.bank}
    elif kind == "document":
        banks = {t.bank for t in TRADES if t.id == row.trade}
        who = {row.issuer, row.counterparty} | banks
    elif kind == "alert":
        who = {row.owner, row.bank} | site_owner
    elif kind == "org":
        who = {row.id, row.bank}
    elif kind == "block":
        who = set(MEMBERS)
    elif kind == "tx":
        who = set(MEMBERS) | {row.creator}
    else:
        raise ValueError(kind)
    return {w for w in who if w}


def may_see(tenant: str, kind: str, row: Any) -> bool:
    """The coarse rule every answer must keep: a tenant sees the rows it takes part in; the
    regulator sees all; the government portal sees none."""
    if TENANTS[tenant] == "regulator":
        return True
    if TENANTS[tenant] == "government":
        return False
    return tenant in involved(kind, row)


# -- building it ------------------------------------------------------------------------------
@dataclass
class ApiWorld:
    app: Any
    store: IdentityStore
    views: Views
    audit: AuditLog
    storage: SqlStorage
    tokens: dict[str, str] = field(default_factory=dict)
    """A token of every user with every scope, by username."""
    victims: dict[str, str] = field(default_factory=dict)
    """A spare token id per tenant, for revocation attempts."""
    factory: Any = None
    """The signing world of the cloud (:mod:`cloud_factory`): devices, edges, trust."""

    def close(self) -> None:
        self.storage.close()


def load(views: Views) -> None:
    for tid in TENANTS:
        org = _org(tid)
        views.upsert_org(org, SENSITIVE if TENANTS[tid] == "supplier" else None)
    for t in TRADES:
        views.upsert_trade(t)
    for d in DOCUMENTS:
        views.upsert_document(d)
    for r in RECEIPTS:
        views.upsert_receipt(r)
    for loan in LOANS:
        views.upsert_loan(loan)
    for n in NOTES:
        if n.id in EARLIER:  # held first by its earlier holders
            for h in sorted(EARLIER[n.id]):
                views.upsert_note(NoteRow(**{**n.__dict__, "holder": h}))
        views.upsert_note(n)
    for a in ALERTS:
        views.add_alert(a)
    for p in APPLICATIONS:
        views.add_application(p)
    for block, txs in BLOCKS:
        views.upsert_block(block, txs)


def build(
    tmp: Path, *, hub: Any = None, clock: Any = None, tokens: bool = True,
    url: str | None = None, settings: dict[str, Any] | None = None, graph: bool = True,
    **ctx: Any,
) -> ApiWorld:  # fmt: skip
    """The world on SQLite in ``tmp`` (or the database at ``url``), with every user (and,
    with ``tokens``, a token each) and, with ``graph``, the knowledge graph of
    :mod:`graphworld`; ``ctx`` goes to create_app (``genesis`` …)."""
    storage = open_storage(url or f"sqlite:///{tmp / 'cloud.db'}")
    storage.migrate()
    assert isinstance(storage, SqlStorage)
    engine = storage.engine
    ring = LocalKeyring.create(tmp / "kek.ring", "simulated passphrase", scrypt_n=1024)
    cipher = FieldCipher(engine, ring)
    views = Views(engine, cipher)
    load(views)
    store = IdentityStore(engine, FAST, clock or I.wall_clock_ms)
    audit = AuditLog(engine, clock=clock) if clock else AuditLog(engine)
    w = make_world()
    world = ApiWorld(None, store, views, audit, storage, factory=w)
    for tid, kind in TENANTS.items():
        store.create_tenant(tid, kind, f"Simulated {tid}", SITES.get(tid, ()))
        for role in I.USER_ROLES:
            store.create_user(tid, username(role, tid), PW, [role])
            if tokens:
                issued = store.issue_token(tid, ALL_SCOPES, user=username(role, tid))
                world.tokens[username(role, tid)] = issued.token
        world.victims[tid] = store.issue_token(tid, ["read:receipts"]).info.id
    kw: dict[str, Any] = {"clock": clock, **ctx} if clock else ctx
    world.app = create_app(
        w.settings(str(tmp), **(settings or {})), storage, w.trust, w.identity,
        identities=store, audit_log=audit, views=views, hub=hub, cipher=cipher, **kw,
    )  # fmt: skip
    if graph:
        from graphworld import graph_service

        install_graph(world.app, graph_service())
    return world


# -- in tests ---------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: int = T0 + 30 * 86_400_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class Api:
    """The world, its hub and clock, and a client of its app."""

    world: ApiWorld
    hub: EventHub
    clock: Clock
    client: httpx.AsyncClient

    def token(self, role: str, tenant: str) -> dict[str, str]:
        """Headers of a user's API token (every scope)."""
        return {"authorization": f"Bearer {self.world.tokens[username(role, tenant)]}"}

    def session(self, role: str, tenant: str, csrf: bool = True) -> dict[str, str]:
        """Headers of a fresh session of the user (with its CSRF token)."""
        s = self.world.store.login(username(role, tenant), PW)
        headers = {"cookie": f"{COOKIE}={s.secret}"}
        if csrf:
            headers[CSRF_HEADER] = s.csrf
        return headers

    def audit(self, action: str) -> list[Any]:
        return [e for e in self.world.audit.entries(limit=10_000) if e.action == action]


def problem(r: httpx.Response, status: int, code: str, detail: str | None = None) -> dict[str, Any]:
    """``r`` is the RFC 9457 problem ``code`` with ``status`` (and ``detail`` when given)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body: dict[str, Any] = r.json()
    assert body["type"] == f"urn:tally:problem:{code}" and body["status"] == status, body
    if detail is not None:
        assert body["detail"] == detail, body
    return body
