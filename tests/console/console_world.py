"""A small SIMULATED world for the console tests: a read model written row by row with
``Views.upsert_*``, one identity user per role, and a warehouse (``acme``, site ``s1``)
whose devices have signed readings stored in the cloud.

Organisations: a bank (``bank-1``), a supplier (``sup-1``, tier 1 of ``core-1``), its own
supplier ``sup-2`` (tier 2) and another (``sup-3``), a core enterprise (``core-1``), the
warehouse ``acme`` (the test world's device owner), a regulator (``reg``) and a government
portal (``gov``). Every organisation is marked simulated and named so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_factory import T0, World

from tally.cloud import identity as I
from tally.cloud.app import create_app
from tally.cloud.auditlog import AuditLog
from tally.cloud.console import install_console
from tally.cloud.identity_store import IdentityStore
from tally.cloud.proofs import build_bundle
from tally.cloud.storage.api import ItemQuery, Storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views.model import (
    AlertRow,
    ApplicationRow,
    BlockRow,
    LimitRow,
    LoanRow,
    NoteRow,
    OrgRow,
    ReceiptRow,
    TradeRow,
    TxRow,
)
from tally.cloud.views.store import Views

PW = "correct horse battery"
FAST = I.IdentityPolicy(scrypt_log_n=10, lockout_failures=3)
H = 3_600_000
DAY = 24 * H

# username → (tenant, roles)
USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "officer@bank-1": ("bank-1", ("credit_officer",)),
    "viewer@bank-1": ("bank-1", ("viewer",)),
    "op@sup-1": ("sup-1", ("operator",)),
    "op@core-1": ("core-1", ("operator",)),
    "op@acme": ("acme", ("operator",)),
    "auditor@reg": ("reg", ("auditor",)),
    "viewer@gov": ("gov", ("viewer",)),
}
TENANTS = {
    "bank-1": ("bank", "Simulated Jiangnan Bank", ()),
    "sup-1": ("supplier", "Simulated Suzhou Steel Trading", ()),
    "core-1": ("core_enterprise", "Simulated Yangtze Machinery", ()),
    "acme": ("warehouse", "Simulated Acme Warehousing", ("s1",)),
    "reg": ("regulator", "Simulated Regulator", ()),
    "gov": ("government", "Simulated Provincial Portal", ()),
}
FREE_RECEIPT = "WR-1001"


def _org(id: str, kind: str, name: str, **kw: Any) -> OrgRow:
    base: dict[str, Any] = {"industry": None, "region": None, "core": None, "tier": None,
                            "bank": None}  # fmt: skip
    base.update(kw)
    return OrgRow(id=id, name=name, kind=kind, simulated=True, **base)


ORGS = [
    _org("bank-1", "bank", "Simulated Jiangnan Bank"),
    _org("core-1", "core_enterprise", "Simulated Yangtze Machinery", industry="machinery",
         region="Jiangsu"),
    _org("sup-1", "supplier", "Simulated Suzhou Steel Trading", core="core-1", tier=1,
         bank="bank-1", industry="steel", region="Jiangsu"),
    _org("sup-2", "supplier", "Simulated Wuxi Castings", core="core-1", tier=2, bank="bank-1",
         industry="steel", region="Jiangsu"),
    _org("sup-3", "supplier", "Simulated Hangzhou Textiles", core="core-1", tier=1,
         bank="bank-1", industry="textiles", region="Zhejiang"),
    _org("acme", "warehouse", "Simulated Acme Warehousing"),
    _org("reg", "regulator", "Simulated Regulator"),
    _org("gov", "government", "Simulated Provincial Portal"),
]  # fmt: skip


def _receipt(no: str, holder: str, status: str, value: int, bank: str | None = None,
             loan: str | None = None, at: int = T0) -> ReceiptRow:  # fmt: skip
    return ReceiptRow(no, holder, "acme", bank, "s1", "s1/bay-3", "hot-rolled coil", "120.5",
                      "t", value, status, loan, at, at, 3)  # fmt: skip


def _loan(id: str, who: str, principal: int, outstanding: int, status: str,
          coverage: float | None, receipts: tuple[str, ...], applied: int,
          disbursed: int | None) -> LoanRow:  # fmt: skip
    return LoanRow(id, who, "bank-1", principal, outstanding, "0.0435", status, coverage,
                   receipts, None, applied, disbursed, applied + 180 * DAY, applied, 3)  # fmt: skip


RECEIPTS = [
    _receipt(FREE_RECEIPT, "sup-1", "live", 80_000_000),
    _receipt("WR-1002", "sup-1", "pledged", 150_000_000, "bank-1", "LN-1"),
    _receipt("WR-1003", "sup-2", "pledged", 40_000_000, "bank-1", "LN-2"),
]
LOANS = [
    _loan("LN-1", "sup-1", 100_000_000, 100_000_000, "active", 1.5, ("WR-1002",), T0 - 9 * DAY,
          T0 - 8 * DAY),
    _loan("LN-2", "sup-2", 35_000_000, 32_000_000, "margin_call", 1.25, ("WR-1003",),
          T0 - 20 * DAY, T0 - 19 * DAY),
    _loan("LN-3", "sup-3", 20_000_000, 20_000_000, "active", None, (), T0 - 5 * DAY,
          T0 - 5 * DAY + 30 * H),
]  # fmt: skip
NOTES = [
    NoteRow("NT-1", "NT-1", None, "core-1", "sup-1", None, 60_000_000, "live", 1, "TR-1",
            T0 - 3 * DAY, T0 + 150 * DAY, T0, 3),
    NoteRow("NT-2", "NT-2", None, "core-1", "sup-3", None, 20_000_000, "live", 1, None,
            T0 - 2 * DAY, T0 + 120 * DAY, T0, 3),
]  # fmt: skip
TRADES = [TradeRow("TR-1", "sup-1", "core-1", "bank-1", "reconciled", 60_000_000, (), T0, 3)]
LIMITS = [LimitRow("bank-1", "sup-1", "limit", 300_000_000, 100_000_000, "CNY", "0.0435",
                   T0 + 300 * DAY, T0, 3)]  # fmt: skip
ALERTS = [
    AlertRow("AL-1", "coverage_warning", "warning", "sup-2", "bank-1", None, "LN-2", "WR-1003",
             "coverage below the warning line (simulated)", T0 - H, ("LN-2",), None, None),
    AlertRow("AL-2", "tamper", "critical", "acme", None, "s1", None, None,
             "a door switch opened out of hours (simulated)", T0 - 2 * H, (), None, None),
]  # fmt: skip
APPLICATIONS = [
    ApplicationRow("app-seed-1", "sup-3", "bank-1", "note", "NT-2", 15_000_000, "submitted",
                   T0 - H, "op@sup-3", None, None, None),
]  # fmt: skip


def _blocks() -> list[tuple[BlockRow, list[TxRow]]]:
    out = []
    for h in (1, 2, 3):
        txs = [TxRow(f"{h:02x}{i:02x}" * 16, h, i, "receipts", "issue", "acme", "valid", None)
               for i in range(2)]  # fmt: skip
        signers = ("bank-1", "acme", "core-1") if h < 3 else ()
        out.append((BlockRow(h, f"{h:064x}", len(txs), T0 + h * 1000, signers, "ab" * 32), txs))
    return out


def load_views(views: Views) -> None:
    for o in ORGS:
        views.upsert_org(o)
    for r in RECEIPTS:
        views.upsert_receipt(r)
    for ln in LOANS:
        views.upsert_loan(ln)
    for n in NOTES:
        views.upsert_note(n)
    for tr in TRADES:
        views.upsert_trade(tr)
    for lim in LIMITS:
        views.upsert_limit(lim)
    for a in ALERTS:
        views.add_alert(a)
    for ap in APPLICATIONS:
        views.add_application(ap)
    for block, txs in _blocks():
        views.upsert_block(block, txs)


def load_identities(store: IdentityStore) -> None:
    for tid, (kind, name, sites) in TENANTS.items():
        store.create_tenant(tid, kind, name, sites)
    for username, (tenant, roles) in USERS.items():
        store.create_user(tenant, username, PW, roles)


@dataclass
class ConsoleWorld:
    """The app and what the tests look at."""

    app: Any
    storage: Storage
    views: Views
    store: IdentityStore
    audit: AuditLog
    bundle: bytes = b""
    readings: list[int] = field(default_factory=list)


def make_console_app(world: World, storage: Storage, tmp: Path, **create: Any) -> ConsoleWorld:
    """The cloud app with the API and the console over ``storage`` (migrated, empty), the
    world's registrations, a few signed readings of ``d1`` and ``d2``, and a proof bundle."""
    assert isinstance(storage, SqlStorage)
    engine = storage.engine
    store = IdentityStore(engine, FAST)
    load_identities(store)
    views = Views(engine)
    load_views(views)
    audit = AuditLog(engine)
    world.register_all(storage)
    app = create_app(world.settings(str(tmp)), storage, world.trust, world.identity,
                     identities=store, audit_log=audit, views=views, **create)  # fmt: skip
    install_console(app, app.state.api)
    items = [world.reading(dev, T0 + k * 60_000, f"{20 + k % 5}.5")
             for k in range(12) for dev in ("d1", "d2")]  # fmt: skip
    app.state.cloud.ingestor.ingest_upload(world.upload("e1", items))
    got = storage.items(ItemQuery(device="d1", limit=1))
    bundle = build_bundle(storage, world.trust, got.items[0], world.identity.id,
                          world.identity.registration).encode()  # fmt: skip
    return ConsoleWorld(
        app, storage, views, store, audit, bundle, [T0 + k * 60_000 for k in range(12)]
    )
