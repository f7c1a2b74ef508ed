"""``tally demo``'s platform side: the read model the console and the API v1 show, kept up to
date from the consortium while the demo runs.

:class:`DemoConsole` opens, on the cloud's own database (``<data dir>/cloud/cloud.db``):

* a :class:`~tally.cloud.fieldcrypt.FieldCipher` over a :class:`~tally.cloud.keyring.LocalKeyring`
  made for the run (``<data dir>/cloud/keyring.tky``, its passphrase random and held in memory
  only), which seals the organisations' sensitive fields;
* :class:`~tally.cloud.views.store.Views` and an :class:`~tally.cloud.live.EventHub`, handed to
  the cloud (``build_service(views=, hub=, cipher=)``);
* the organisations' profiles (:data:`PROFILES`): every member, the small firms of the
  stories and the government portal, with industry, region and place in the core's supply
  chain, all simulated; their sensitive fields (USCC, legal representative's id, bank
  account, a year's figures), made up and sealed;
* the knowledge graph (:mod:`tally.sim.demo_graph`): a small synthetic economy (labelled
  simulated) around the demo's tenants — the economy's busiest bank is the demo's bank, a
  strong core and two of its suppliers are the demo's core and tier-1/tier-2 firms — served
  at ``/v1/graph/…`` and on the console's graph pages, and kept current from the chain (it
  re-reads the finance state after every projected block);
* a :class:`~tally.cloud.views.project.Projector` that follows the bank's peer
  (:class:`~tally.cloud.views.sources.ConsortiumSource`) every second in the background, and
  the :class:`~tally.cloud.views.alertfeed.AlertFeed` where the bank's collateral monitor's
  alerts go (counted in the cloud's metrics, published live).

The console's demo logins (:data:`CONSOLE_TENANTS`, :data:`EXTRA_ROLES`): the bank's admin and
credit officer, the second bank's credit officer, each small firm of the stories as a
``supplier`` tenant (its party id), the core enterprise, the warehouse (with its site), the
logistics firm, the regulator's auditor and the government portal's viewer.
:meth:`DemoConsole.banner` prints the console's URL and which login is which role;
:meth:`DemoConsole.report` is the report's ``console`` key (no password in it).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console

from tally.cloud.api import install_graph
from tally.cloud.deployment import engine_of
from tally.cloud.fieldcrypt import FieldCipher
from tally.cloud.graphsvc import GraphService
from tally.cloud.keyring import LocalKeyring
from tally.cloud.live import EventHub
from tally.cloud.metrics import CloudMetrics
from tally.cloud.storage import open_storage
from tally.cloud.views import tables as t
from tally.cloud.views.alertfeed import AlertFeed
from tally.cloud.views.model import OrgRow
from tally.cloud.views.project import Projector
from tally.cloud.views.sources import ConsortiumSource
from tally.cloud.views.store import Views
from tally.crypto import get_suite
from tally.ledger.consortium import Consortium
from tally.sim.demo_access import DemoAccess, TenantSpec
from tally.sim.demo_graph import demo_graph
from tally.sim.demo_limits import record_scored_limits
from tally.sim.finance_chain import MILL, TRADER, FinanceChain
from tally.sim.orgs import ORG_BANK, ORG_CORE, ORG_WAREHOUSE
from tally.sim.receivables_docs import tax_id
from tally.sim.receivables_story import SHELL, TIER1, TIER2

GOVERNMENT = "gov-portal"
"""The government portal's tenant (kind ``government``)."""
CONSOLE_TENANTS = (
    TenantSpec(TRADER, "supplier", "Simulated Steel Trading Co. (demo)", ("operator",)),
    TenantSpec(TIER1, "supplier", "Simulated Strip Trading Co. (demo)", ("operator",)),
    TenantSpec(TIER2, "supplier", "Simulated Coil Trading Co. (demo)", ("operator",)),
    TenantSpec(GOVERNMENT, "government", "Simulated Government Portal (demo)", ("viewer",)),
)
EXTRA_ROLES = {ORG_BANK: ("credit_officer",)}
"""Users beyond each member's demo user: the bank's credit officer."""

PROFILES: dict[str, tuple[str, str, str | None, str | None, int | None]] = {
    # id: (kind, industry, region, core, tier) — simulated
    "bank": ("bank", "banking", "Shandong", None, None),
    "bank-b": ("bank", "banking", "Jiangsu", None, None),
    ORG_CORE: ("core_enterprise", "steel", "Hebei", None, None),
    ORG_WAREHOUSE: ("warehouse", "warehousing_logistics", "Shandong", None, None),
    "logistics": ("logistics", "warehousing_logistics", "Shandong", None, None),
    "regulator": ("regulator", "public_administration", "Shandong", None, None),
    GOVERNMENT: ("government", "public_administration", "Shandong", None, None),
    TRADER: ("supplier", "bulk_commodities", "Shandong", None, None),
    MILL: ("supplier", "steel", "Hebei", None, None),
    TIER1: ("supplier", "machining", "Jiangsu", ORG_CORE, 1),
    TIER2: ("supplier", "machining", "Zhejiang", ORG_CORE, 2),
    SHELL: ("supplier", "bulk_commodities", "Guangdong", None, None),
}
ROLE_LABELS = {
    ("bank", "admin"): "bank admin",
    ("bank", "credit_officer"): "bank credit officer",
    ("supplier", "operator"): "supplier",
    ("core_enterprise", "operator"): "core enterprise",
    ("warehouse", "operator"): "warehouse",
    ("logistics", "operator"): "logistics",
    ("regulator", "auditor"): "regulator auditor",
    ("government", "viewer"): "government viewer",
}
"""The console's roles: (tenant kind, user role) → what the banner and report call it."""
SYNC_S = 1.0
KEYRING_SCRYPT_N = 1 << 12


def sensitive_of(n: int, org: str) -> dict[str, Any]:
    """Made-up sensitive fields of organisation number ``n`` (simulated, never real)."""
    return {
        "simulated": True,
        "uscc": tax_id(100 + n),
        "legal_rep_id": f"SIMULATED-ID-{n:04d}",
        "bank_account": f"6222 0000 {n:04d} {sum(map(ord, org)) % 10_000:04d}",
        "statements": {
            "year": 2025,
            "revenue_fen": (n + 3) * 1_234_567_00,
            "net_assets_fen": (n + 2) * 345_678_00,
        },
    }


def label(kind: str, role: str) -> str:
    """The console role of a login of ``role`` in a tenant of ``kind``."""
    return ROLE_LABELS.get((kind, role), f"{kind} {role}".replace("_", " "))


class DemoConsole:
    """The read model, live events, profiles, projector and alert feed of one demo run."""

    def __init__(self, data_dir: Path, database_url: str, suite: str) -> None:
        self.storage = open_storage(database_url)
        try:
            self.storage.migrate()
            engine = engine_of(self.storage)
            path = data_dir / "keyring.tky"
            ring = LocalKeyring.create(
                path, secrets.token_urlsafe(24), name="demo", suite=get_suite(suite),
                scrypt_n=KEYRING_SCRYPT_N,
            )  # fmt: skip
            self.cipher = FieldCipher(engine, ring, suite=ring.suite)
            self.views = Views(engine, self.cipher)
        except BaseException:
            self.storage.close()
            raise
        self.hub = EventHub()
        self.feed: AlertFeed | None = None
        self.projector: Projector | None = None
        self.profiles = 0
        self.data_dir = data_dir
        self.graph: GraphService | None = None
        self.limits: list[dict[str, Any]] = []
        """The suppliers' limits the bank recorded from their scores (:mod:`.demo_limits`)."""
        self.aliases: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._graph_task: asyncio.Task[None] | None = None

    def seed_profiles(self) -> int:
        """Write every organisation's simulated profile with its sealed sensitive fields."""
        for n, (org, (kind, industry, region, core, tier)) in enumerate(PROFILES.items(), 1):
            bank = None if kind in ("bank", "regulator", "government") else ORG_BANK
            row = OrgRow(org, f"Simulated {org} (demo)", kind, industry, region, core, tier,
                         bank, True)  # fmt: skip
            self.views.upsert_org(row, sensitive_of(n, org))
        self.profiles = len(PROFILES)
        return self.profiles

    def start(self, consortium: Consortium, org: str, app: Any) -> None:
        """Follow ``org``'s peer in the background; alerts go through :attr:`feed`; the
        knowledge graph follows the chain too and is served on ``app`` (the cloud's; None:
        not served, as in tests of the read model alone)."""
        metrics: CloudMetrics | None = getattr(getattr(app, "state", None), "metrics", None)
        self.feed = AlertFeed(self.views, self.hub, metrics)
        source = ConsortiumSource(consortium, org)
        self.projector = Projector(self.views, source, self.hub, simulated=True)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self.projector.run(self._stop, SYNC_S), name="projector")
        orgs = {o: (kind, industry) for o, (kind, industry, *_r) in PROFILES.items()}
        self.graph, self.aliases = demo_graph(self.data_dir / "economy", orgs)
        if app is not None:
            install_graph(app, self.graph)
        self._graph_task = loop.create_task(
            self.graph.follow(self.hub, source, self._stop), name="graph"
        )

    async def record_limits(self, chain: FinanceChain, bank: str) -> None:
        """The bank records the receivables story's suppliers' limits from their scores."""
        if self.graph is not None:
            self.limits = await record_scored_limits(self.graph, chain, bank, (TIER1, TIER2))

    async def stop(self, final: bool = True) -> None:
        """Stop following; with ``final``, project what the chain holds now, once more."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._graph_task is not None:
            await self._graph_task
            self._graph_task = None
        if final and self.projector is not None:
            await asyncio.to_thread(self.projector.sync)

    def close(self) -> None:
        self._stop.set()
        self.hub.close()
        self.storage.close()

    def counts(self) -> dict[str, int]:
        """Rows in the read model: receipts, loans, notes, blocks, alerts."""
        tables = {"receipts": t.receipts, "loans": t.loans, "notes": t.notes,
                  "blocks": t.blocks, "alerts": t.alerts}  # fmt: skip
        with self.views.engine.connect() as conn:
            return {
                name: int(conn.execute(sa.select(sa.func.count()).select_from(tbl)).scalar_one())
                for name, tbl in tables.items()
            }

    @staticmethod
    def console_url(cloud_url: str) -> str:
        return f"{cloud_url}/console/"

    def banner(self, out: Console, cloud_url: str, access: DemoAccess) -> None:
        """Print the console's URL and the login of each console role (the passwords are on
        the lines above, printed once)."""
        lines = [f"console: {self.console_url(cloud_url)}  (sign in with a login above)"]
        lines += [f"  {label(x.kind, x.role):<20} tenant {x.tenant}  username {x.username}"
                  for x in access.logins]  # fmt: skip
        for line in lines:
            out.print(line, markup=False, highlight=False, soft_wrap=True)

    def report(self, cloud_url: str, access: DemoAccess) -> dict[str, Any]:
        """The report's ``console`` key."""
        p = self.projector
        return {
            "url": self.console_url(cloud_url),
            "simulated": True,
            "logins": [
                {
                    "role": label(x.kind, x.role),
                    "tenant": x.tenant,
                    "kind": x.kind,
                    "username": x.username,
                    "user_role": x.role,
                }
                for x in access.logins
            ],
            "projected": self.counts(),
            "profiles": self.profiles,
            "projector": {
                "height": p.height() if p else 0,
                "syncs": p.syncs if p else 0,
                "errors": p.errors if p else 0,
                "last_error": p.last_error if p else None,
            },
            "events": dict(self.hub.published),
            "alerts_published": self.feed.published if self.feed else 0,
            "graph": self.graph_report(),
        }

    def graph_report(self) -> dict[str, Any]:
        """The report's ``console.graph``: what the graph holds and which economy ids are
        the demo's tenants (all simulated)."""
        g = self.graph
        if g is None:
            return {"simulated": True, "loaded": False}
        counts = g.counts()
        return {
            "simulated": True, "loaded": True, "aliases": self.aliases,
            "firms": counts["firm"], "edges": sum(v for k, v in counts.items()
                                                  if k.startswith("edges_")),
            "chain_records": g.applied, "circles": len(g.circles()), "needs": len(g.needs()),
            "limits": self.limits,
        }  # fmt: skip
