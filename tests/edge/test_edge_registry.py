"""Registration and signature checks: every bad envelope is rejected with its reason, counted,
and kept in quarantine with its raw bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_edge_helpers import ORG, SITE, T0, Clock, make_pipeline, make_world, temp

from tally.crypto import SigningKey
from tally.device.envelope import DeviceSigner
from tally.device.registration import Assurance, Registration, sign_registration
from tally.edge.errors import RegistrationRejected
from tally.edge.registry import Registry


def _quarantined(outbox_rows: list[tuple[str, str, str | None, bytes]], raw: bytes) -> str:
    for reason, _detail, _dev, data in outbox_rows:
        if data == raw:
            return reason
    raise AssertionError("envelope not in quarantine")


def test_valid_envelope_is_accepted(tmp_path: Path) -> None:
    w = make_world()
    p, ob = make_pipeline(w, tmp_path / "o.db", Clock())
    env = w.device("dev-1").next(T0, temp("20"))
    r = p.ingest(env, "test")
    assert r.accepted and r.outcome == "first"
    assert r.hash == w.keys["dev-1"].suite.hash(env)
    assert ob.items("reading") == [("reading", env, None)]


def test_unknown_forged_wrong_suite_and_mismatch_go_to_quarantine(tmp_path: Path) -> None:
    w = make_world()
    p, ob = make_pipeline(w, tmp_path / "o.db", Clock())
    stranger = DeviceSigner("dev-9", SigningKey.generate("intl"), b"")
    forged = DeviceSigner("dev-1", SigningKey.generate("intl"), b"")  # not dev-1's key
    gm = DeviceSigner("dev-2", SigningKey.generate("gm"), b"")
    impostor = DeviceSigner("dev-2", w.keys["dev-1"], b"", signer="dev-1")  # kid != dev
    meter = DeviceSigner("meter-1", SigningKey.generate("intl"), b"")  # cannot sign
    cloud = DeviceSigner("cloud-1", w.cloud_key, b"")  # a cloud is not a device
    cases = {
        "unknown_device": stranger.next(T0),
        "bad_signature": forged.next(T0),
        "wrong_suite": gm.next(T0),
        "signer_mismatch": impostor.next(T0),
        "no_key": meter.next(T0),
        "malformed": b"\xa0not cose",
    }
    cloud_env = cloud.next(T0)
    results = p.ingest_many([*cases.values(), cloud_env], "test")
    assert [r.outcome for r in results] == [*cases, "signer_mismatch"]
    assert not any(r.accepted for r in results)
    rows = ob.quarantine()
    for reason, raw in cases.items():
        assert _quarantined(rows, raw) == reason
    assert p.counts["rejected.bad_signature"] == 1
    assert p.counts["rejected.signer_mismatch"] == 2
    assert ob.items() == []


def test_revoked_device(tmp_path: Path) -> None:
    w = make_world()
    clock = Clock(T0)
    p, ob = make_pipeline(w, tmp_path / "o.db", clock)
    dev = w.device("dev-1")
    assert p.ingest(dev.next(T0)).accepted
    # revocation effective at T0 + 1000, known before that time
    p.registry.add_revocation(w.revoke("dev-1", T0 + 1000))
    assert p.ingest(dev.next(T0 + 500)).accepted  # signed before t, received before t
    late = dev.next(T0 + 2000)  # signed after t
    assert p.ingest(late).outcome == "revoked"
    clock.now = T0 + 1000
    backdated = dev.next(T0 + 600)  # claims an old time, but the revocation is in force
    assert p.ingest(backdated).outcome == "revoked"
    assert _quarantined(ob.quarantine(), backdated) == "revoked"
    assert p.counts["rejected.revoked"] == 2


def test_newer_registration_lifts_a_revocation(tmp_path: Path) -> None:
    w = make_world()
    reg = w.registry()
    reg.add_revocation(w.revoke("dev-1", T0))
    assert reg.get("dev-1") is not None and reg.get("dev-1").revoked(T0 - 5, T0)  # type: ignore[union-attr]
    new_key = SigningKey.generate("intl")
    r = Registration(
        "device", "dev-1", ORG, SITE, "x", "intl", new_key.public.raw, Assurance.DEVICE, T0 + 1
    )
    reg.add_registration(sign_registration(w.org_key, r))
    e = reg.get("dev-1")
    assert e is not None and e.revoked_t is None and e.key == new_key.public


def test_registration_from_an_untrusted_org_is_refused() -> None:
    w = make_world()
    rogue = SigningKey.generate("intl")
    r = Registration(
        "device", "dev-x", "rogue", SITE, "x", "intl", rogue.public.raw, Assurance.DEVICE, T0
    )
    with pytest.raises(RegistrationRejected, match="not a trust anchor"):
        Registry(w.trust).add_registration(sign_registration(rogue, r))
    # signed by a trusted org's name but with another key
    r2 = Registration(
        "device", "dev-x", ORG, SITE, "x", "intl", rogue.public.raw, Assurance.DEVICE, T0
    )
    with pytest.raises(RegistrationRejected):
        Registry(w.trust).add_registration(sign_registration(rogue, r2))


def test_load_dir_reports_bad_files_and_applies_revocations_last(tmp_path: Path) -> None:
    w = make_world()
    d = tmp_path / "regs"
    w.write_registrations(d)
    (d / "0-revocation.cose").write_bytes(w.revoke("dev-2", T0))
    (d / "junk.cose").write_bytes(b"junk")
    reg = Registry(w.trust)
    errors: list[RegistrationRejected] = []
    assert reg.load_dir(d, errors.append) == len(w.regs) + 1
    assert [e.source for e in errors] == [str(d / "junk.cose")]
    assert reg.ids("device") == ["dev-1", "dev-2", "meter-1"]
    assert reg.cloud_key("cloud-1") == w.cloud_key.public
    assert reg.cloud_key("dev-1") is None
    e = reg.get("dev-2")
    assert e is not None and e.revoked_t == T0
    with pytest.raises(RegistrationRejected):
        Registry(w.trust).load_dir(d)
