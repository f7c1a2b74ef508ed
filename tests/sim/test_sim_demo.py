"""The main job, end to end: ``tally demo --headless`` runs a simulated site, edge, cloud and
the consortium ledger, injects every scripted incident, proves that nothing produced was
lost and that every stored batch is anchored under a final checkpoint.

Runs the real command in a subprocess (embedded MQTT broker, HTTP, CoAP, Modbus, SQLite,
six in-process peers and a solo orderer), then checks the report and every proof bundle it
wrote with the offline verifier, against the consortium's genesis.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from tally.cli import app
from tally.cloud.storage import open_storage
from tally.crypto.x509ca import load_certificate
from tally.device.trust import load_trust
from tally.ledger.genesis import load_genesis
from tally.sim.accounting import account, percentile
from tally.verify.txbundle import READING_BUNDLE_KIND as READING_KIND
from tally.verify.txbundle import TX_BUNDLE_KIND as TX_KIND
from tally.verify.txbundle import bundle_kind
from tally.verify.txverify import verify_tx_bundle
from tally.verify.verifier import verify_bundle

REQUIRED = (
    "readings_produced",
    "readings_stored",
    "gaps_certified",
    "unaccounted",
    "rejected",
    "events",
    "batches_anchored",
    "checkpoints_final",
    "reading_to_checkpoint_p95_s",
)


def tally_verify(*args: object) -> tuple[int, str]:
    """``tally verify ARGS`` in this process: (exit code, output)."""
    result = CliRunner().invoke(app, ["verify", *map(str, args)])
    return result.exit_code, result.output


def anchors_option() -> str:
    """``--genesis`` once the verifier takes a consortium genesis, else ``--trust``."""
    return "--genesis" if "--genesis" in tally_verify("--help")[1] else "--trust"


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tally",
            "demo",
            "--headless",
            "--duration",
            "40",
            "--report",
            str(out / "report"),
            "--data-dir",
            str(out / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "report"


def test_demo_report_accounts_for_every_envelope(demo_report: Path) -> None:
    report = json.loads((demo_report / "report.json").read_text())
    for key in REQUIRED:
        assert key in report, key
    assert report["simulated"] is True
    assert report["unaccounted"] == 0
    assert report["duplicates_stored"] == 0
    assert report["readings_produced"] > 100
    assert report["readings_stored"] <= report["readings_produced"]
    # the radio dropout lost envelopes that the edge certified as a gap
    assert report["lost_in_transit"] >= 1
    assert report["gaps_certified"] == report["lost_in_transit"]
    # the attacks were refused for what they are
    assert report["rejected"].get("bad_signature", 0) >= 1
    assert report["rejected"].get("duplicate", 0) >= 1
    # what the rules and continuity checks saw
    events = report["events"]
    assert any(rule.startswith("plausibility-") for rule in events), events
    assert "night-movement" in events
    assert "continuity.counter_reset" in events
    assert "continuity.clock_skew" in events
    assert "continuity.gap" in events
    # every stored batch is anchored on the ledger under a final checkpoint
    assert report["batches_anchored"] == report["batches_stored"] > 0
    assert report["anchors_drained"] is True
    assert report["registrations_on_chain"] == report["devices"] + 2  # + edge and cloud
    assert report["checkpoints_final"] >= report["batches_anchored"] // 100 + 1
    p50, p95 = report["reading_to_checkpoint_p50_s"], report["reading_to_checkpoint_p95_s"]
    assert 0 < p50 <= p95 < 30, (p50, p95)
    assert report["consortium"]["members"] == [
        "bank",
        "bank-b",
        "core",
        "logistics",
        "regulator",
        "warehouse",
    ]
    assert report["consortium"]["checkpoint_quorum"] == 4


STORY = (
    "receipts issued on IoT evidence",
    "over-issue refused",
    "pledge and loan",
    "double pledge refused",
    "partial repayment releases collateral",
    "margin call",
    "margin call cured by top-up",
    "night removal alert",
    "books reconcile",
)
RECEIVABLES = (
    "trade reconciled on four flows",
    "note issued, accepted and confirmed",
    "note split and passed to tier 2",
    "tier-2 discount at the bank",
    "maturity settles every holder",
    "re-used invoice refused",
    "inflated invoice refused",
    "circular trade refused",
    "18-month term refused",
)


def test_demo_financing_story_has_every_outcome_expected(demo_report: Path) -> None:
    report = json.loads((demo_report / "report.json").read_text())
    scenarios = report["scenarios"]
    assert [s["name"] for s in scenarios] == list(STORY + RECEIVABLES)
    for s in scenarios:
        assert set(s) >= {"name", "expected", "outcome", "ok"}
        assert s["ok"] is True, s
    by_name = {s["name"]: s for s in scenarios}
    assert "would bring live receipts to" in by_name["over-issue refused"]["outcome"]
    assert "is pledged to bank" in by_name["double pledge refused"]["outcome"]
    assert "releases are blocked" in by_name["margin call"]["outcome"]
    assert "already backs note:N-1" in by_name["re-used invoice refused"]["outcome"]
    assert "quantity" in by_name["inflated invoice refused"]["outcome"]
    assert "Circular trade" in by_name["circular trade refused"]["outcome"]
    assert "exceeds the maximum of 183 days" in by_name["18-month term refused"]["outcome"]
    receivables = report["receivables"]
    assert receivables["simulated"] is True
    assert receivables["trades"]["TR-1"]["status"] == "reconciled"
    assert receivables["notes"]["N-1.1"]["settlement"]["to"] == "bank"  # it financed N-1.1
    assert receivables["bundles_missing"] == []
    finance = report["finance"]
    assert finance["simulated"] is True
    assert finance["loan"]["state"] == "active"
    assert finance["release_orders_at_edge"]
    # every bundle a scenario cites verifies against the genesis, up to a final checkpoint
    genesis = load_genesis((demo_report / "genesis.cbor").read_bytes())
    cited = [p for s in scenarios for p in s.get("evidence", [])]
    assert len(cited) >= 4, cited
    kinds = set()
    for rel in cited:
        data = (demo_report / rel).read_bytes()
        kinds.add(bundle_kind(data))
        if bundle_kind(data) == TX_KIND:  # a ledger transaction: ordered and endorsed
            tx = verify_tx_bundle(data, genesis)
            assert tx.ok, (rel, tx.reason)
        else:  # a stored reading, anchored under a final checkpoint
            verdict = verify_bundle(data, None, genesis=genesis, require_anchor=True)
            assert verdict.ok, (rel, verdict.reason)
    assert kinds == {TX_KIND, READING_KIND}, kinds
    assert any("margin-call-tx" in p for p in by_name["margin call"]["evidence"])
    assert finance["actions"] == [
        {"action": "loans.margin_call", "target": "LN-DEMO-0001", "status": "done", "reason": ""}
    ]


def test_demo_bundles_verify_and_any_changed_byte_is_rejected(demo_report: Path) -> None:
    bundles = sorted((demo_report / "bundles").glob("*.cbor"))
    report = json.loads((demo_report / "report.json").read_text())
    assert len(bundles) == len(report["incidents"]) == 7
    genesis = load_genesis((demo_report / "genesis.cbor").read_bytes())
    trust = load_trust(demo_report / "trust.cbor")  # the genesis members are the trust anchors
    assert {o: m.pub for o, m in genesis.members.items()} == {
        o: k.raw for o, k in trust.orgs.items()
    }
    option = anchors_option()
    anchors = demo_report / ("genesis.cbor" if option == "--genesis" else "trust.cbor")
    for path in bundles:
        code, out = tally_verify(path, option, anchors)
        assert code == 0 and out.startswith("VALID"), out
        if option == "--genesis":
            assert "anchored in tx" in out and "quorum 4 of 6" in out, out
        data = path.read_bytes()
        # the chain part proves the header up to a checkpoint four of six members signed
        verdict = verify_bundle(data, None, genesis=genesis, require_anchor=True)
        assert verdict.ok, verdict.reason
        for pos in (0, len(data) // 3, len(data) // 2, len(data) - 1):
            bad = bytearray(data)
            bad[pos] ^= 0x01
            mutated = demo_report / "mutated.cbor"
            mutated.write_bytes(bytes(bad))
            code, out = tally_verify(mutated, option, anchors)
            assert code == 1 and out.startswith("INVALID"), out


def test_demo_report_names_https_its_ca_and_the_logins_without_passwords(
    demo_report: Path,
) -> None:
    report = json.loads((demo_report / "report.json").read_text())
    assert report["https"] is True
    assert report["cloud_url"].startswith("https://127.0.0.1:"), report["cloud_url"]
    assert report["ca_file"] == "ca.pem"
    ca = load_certificate(demo_report / report["ca_file"])
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert not list(demo_report.glob("*key*")), "the CA's key must not be in the report"
    assert report["logins"] == [
        {"tenant": "bank", "username": "bank-admin", "role": "admin"},
        {"tenant": "bank", "username": "bank-credit-officer", "role": "credit_officer"},
        {"tenant": "bank-b", "username": "bank-b-credit-officer", "role": "credit_officer"},
        {"tenant": "core", "username": "core-operator", "role": "operator"},
        {"tenant": "warehouse", "username": "warehouse-operator", "role": "operator"},
        {"tenant": "logistics", "username": "logistics-operator", "role": "operator"},
        {"tenant": "regulator", "username": "regulator-auditor", "role": "auditor"},
        {"tenant": "sme-steel", "username": "sme-steel-operator", "role": "operator"},
        {"tenant": "sme-strip-1", "username": "sme-strip-1-operator", "role": "operator"},
        {"tenant": "sme-coil-2", "username": "sme-coil-2-operator", "role": "operator"},
        {"tenant": "gov-portal", "username": "gov-portal-viewer", "role": "viewer"},
    ]
    assert all(set(login) == {"tenant", "username", "role"} for login in report["logins"])


CONSOLE_ROLES = {
    "bank admin", "bank credit officer", "supplier", "core enterprise", "warehouse",
    "logistics", "regulator auditor", "government viewer",
}  # fmt: skip


def test_demo_report_names_the_console_its_logins_and_what_was_projected(
    demo_report: Path,
) -> None:
    report = json.loads((demo_report / "report.json").read_text())
    console = report["console"]
    assert console["simulated"] is True
    assert console["url"] == report["cloud_url"] + "/console/"
    assert console["url"].startswith("https://127.0.0.1:")
    logins = console["logins"]
    assert {x["role"] for x in logins} == CONSOLE_ROLES  # a login per console role
    assert all(set(x) == {"role", "tenant", "kind", "username", "user_role"} for x in logins)
    suppliers = {x["tenant"] for x in logins if x["role"] == "supplier"}
    assert suppliers == {"sme-steel", "sme-strip-1", "sme-coil-2"}  # the stories' small firms
    assert {(x["tenant"], x["kind"]) for x in logins if x["role"] == "government viewer"} == {
        ("gov-portal", "government")
    }
    projected = console["projected"]
    assert set(projected) == {"receipts", "loans", "notes", "blocks", "alerts"}
    assert all(n > 0 for n in projected.values()), projected
    # the receivables story's three notes and the finance story's loan reached the read model
    assert projected["notes"] >= 3 and projected["loans"] >= 1
    assert projected["alerts"] == console["alerts_published"]
    assert console["projector"]["errors"] == 0, console["projector"]
    assert console["projector"]["height"] == projected["blocks"]
    assert console["events"]["block"] >= projected["blocks"]
    assert console["profiles"] >= 12
    text = (demo_report / "report.json").read_text()
    assert "password" not in text


def test_accounting_flags_what_is_neither_stored_nor_certified(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'empty.db'}")
    storage.migrate()
    try:
        acc = account(storage, {"dev-1": {(0, 0), (0, 1)}})
    finally:
        storage.close()
    assert acc.produced == 2
    assert acc.unaccounted == [("dev-1", 0, 0), ("dev-1", 0, 1)]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile(values, 100) == 20.0
    assert percentile([], 95) is None


def test_demo_document_bodies_are_sealed_at_rest(demo_report: Path) -> None:
    """The bank's four-flow documents are stored sealed: the goods, the buyer's and seller's
    names are in every contract and invoice, and appear nowhere in the raw database file."""
    from tally.sim.finance_purchase import GOODS

    raw = (demo_report.parent / "data" / "bank" / "documents.db").read_bytes()
    assert len(raw) > 0
    for plain in (GOODS, "simulated"):
        assert plain.encode() not in raw, plain


def test_demo_bank_records_its_suppliers_limits_from_their_scores(demo_report: Path) -> None:
    """Objective credit reaches the chain: a limit per supplier of the receivables story,
    from its score and the limit policy, recorded by the bank and projected for the
    supplier's workspace."""
    import sqlite3

    limits = json.loads((demo_report / "report.json").read_text())["console"]["graph"]["limits"]
    assert [x["party"] for x in limits] == ["sme-strip-1", "sme-coil-2"]
    for x in limits:
        assert x["recorded"] is True and len(x["tx"]) == 64, x
        assert isinstance(x["score"], int) and x["why"][0].startswith(f"score {x['score']}")
    db = demo_report.parent / "data" / "cloud" / "cloud.db"
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT party, limit_fen FROM v_limits WHERE bank = 'bank'"))
    assert {x["party"]: x["limit_fen"] for x in limits}.items() <= rows.items()
