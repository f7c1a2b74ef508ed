"""The demo's platform side on its own: the read model opened on a cloud database with a
keyring made for the run, the organisations' simulated profiles with their sensitive fields
sealed (not in the database in clear, opened again with the cipher), the projector following
a running consortium in the background into rows and live events, the alert sink, and the
console part of the report and banner (no password in either)."""

from __future__ import annotations

import asyncio
import io
import sys
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console

from tally.cloud.views import tables as t
from tally.finance.monitor_model import Alert
from tally.sim.demo_access import make_demo_access
from tally.sim.demo_console import (
    CONSOLE_TENANTS,
    EXTRA_ROLES,
    PROFILES,
    ROLE_LABELS,
    DemoConsole,
)
from tally.sim.finance_watch import AlertSink
from tally.sim.orgs import ORG_BANK, ORG_ROLES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "finance"))
from race_world import open_world


def open_console(tmp_path: Path) -> DemoConsole:
    (tmp_path / "cloud").mkdir()
    return DemoConsole(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", "intl")


def test_profiles_are_simulated_and_their_sensitive_fields_sealed(tmp_path: Path) -> None:
    console = open_console(tmp_path)
    try:
        assert (tmp_path / "cloud" / "keyring.tky").is_file()
        assert console.seed_profiles() == len(PROFILES) >= 12
        strip = console.views.org("sme-strip-1")
        assert strip is not None and strip.simulated and strip.name.startswith("Simulated ")
        assert (strip.kind, strip.core, strip.tier, strip.bank) == ("supplier", "core", 1, "bank")
        assert strip.industry and strip.region
        secret = console.views.org_sensitive("sme-strip-1")
        assert secret is not None and secret["simulated"] is True
        uscc = secret["uscc"]
        assert len(uscc) == 18 and secret["bank_account"].startswith("6222")
        with console.views.engine.connect() as conn:
            blob = conn.execute(
                sa.select(t.orgs.c.sensitive).where(t.orgs.c.id == "sme-strip-1")
            ).scalar_one()
        assert uscc.encode() not in bytes(blob) and secret["bank_account"].encode() not in blob
        gov = console.views.org("gov-portal")
        assert gov is not None and (gov.kind, gov.bank) == ("government", None)
        assert console.counts() == dict.fromkeys(("receipts", "loans", "notes", "blocks",
                                                  "alerts"), 0)  # fmt: skip
    finally:
        console.close()


async def test_the_projector_follows_the_chain_and_alerts_reach_the_feed(tmp_path: Path) -> None:
    console = open_console(tmp_path)
    access = make_demo_access(tmp_path / "data", ORG_ROLES, ORG_BANK, extra_roles=EXTRA_ROLES,
                              tenants=CONSOLE_TENANTS)  # fmt: skip
    sub = console.hub.subscribe()
    try:
        async with open_world("solo", tmp_path / "chain") as w:
            console.start(w.c, "bank-a", None)
            await w.active_loan("L-1", {"W-1": "100"}, 300_000_000)
            await w.level()
            height = w.c.peers["bank-a"].height
            deadline = asyncio.get_running_loop().time() + 30
            while console.projector is None or console.projector.height() < height:
                assert asyncio.get_running_loop().time() < deadline, "the projector fell behind"
                await asyncio.sleep(0.1)
            assert console.feed is not None
            sink = AlertSink(console.feed, owner="sme-1", bank="bank-a", site="S")
            call = Alert("margin_call", "L-1", "warning", w.clock(), Decimal("2.1"),
                         Decimal("1.2"), (), {})  # fmt: skip
            sink([call, Alert("cured", "L-1", "loud", w.clock(), None, None, (), {})])
            assert len(sink.errors) == 1 and "severity 'loud'" in sink.errors[0]
            await console.stop()
        counts = console.counts()
        assert counts["receipts"] == 1 and counts["loans"] == 1 and counts["alerts"] == 1
        assert counts["blocks"] == height
        kinds = set()
        while sub.pending():
            e = await sub.next(1.0)
            assert e is not None
            kinds.add(e.kind)
        assert kinds == {"block", "receipt", "loan", "coverage", "alert"}
        report = console.report("https://127.0.0.1:9", access)
        assert report["url"] == "https://127.0.0.1:9/console/"
        assert report["projected"] == counts and report["projector"]["errors"] == 0
        assert {x["role"] for x in report["logins"]} == set(ROLE_LABELS.values())
        out = io.StringIO()
        console.banner(Console(file=out, width=200), "https://127.0.0.1:9", access)
        printed = out.getvalue()
        assert printed.startswith("console: https://127.0.0.1:9/console/")
        assert "government viewer" in printed and "gov-portal-viewer" in printed
        for x in access.logins:
            assert x.password not in printed and x.password not in repr(report)
    finally:
        access.close()
        console.close()
