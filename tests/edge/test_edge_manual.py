"""Readings entered by hand: signed by the device's organisation, stored with assurance
manual, and checked for counters and chain like any device's."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from test_edge_helpers import ORG, SITE, T0, Clock, make_pipeline, make_world, temp

from tally.crypto import SigningKey
from tally.device.envelope import DeviceSigner
from tally.device.manual import (
    ManualEntryError,
    load_signer,
    parse_label,
    parse_value,
    save_signer,
)
from tally.device.registration import Assurance, Registration, sign_registration

MANUAL = "yard-1-tally-clerk"


def _world_with_manual_device():  # type: ignore[no-untyped-def]
    w = make_world()
    reg = Registration(
        "device", MANUAL, ORG, SITE, "manual_count", w.suite, b"", Assurance.MANUAL, T0 - 10_000
    )
    w.regs[MANUAL] = sign_registration(w.org_key, reg)
    return w


def _assurance(ob: object) -> list[int]:
    rows = ob._db.execute("SELECT assurance FROM items WHERE kind = 'reading'")  # type: ignore[attr-defined]
    return [int(a) for (a,) in rows]


def test_a_reading_signed_by_the_devices_organisation_is_stored_as_manual(tmp_path: Path) -> None:
    w = _world_with_manual_device()
    p, ob = make_pipeline(w, tmp_path / "o.db", Clock())
    clerk = DeviceSigner(MANUAL, w.org_key, b"", signer=ORG)
    res = p.ingest_many([clerk.next(T0, temp("4.5")), clerk.next(T0 + 1000, temp("4.6"))])
    assert [r.outcome for r in res] == ["first", "accept"]
    assert _assurance(ob) == [int(Assurance.MANUAL)] * 2


def test_manual_readings_need_the_right_organisation_and_key(tmp_path: Path) -> None:
    w = _world_with_manual_device()
    p, _ob = make_pipeline(w, tmp_path / "o.db", Clock())
    stranger = DeviceSigner(MANUAL, SigningKey.generate("intl"), b"", signer="other-org")
    forged = DeviceSigner(MANUAL, SigningKey.generate("intl"), b"", signer=ORG)
    own_key = DeviceSigner(MANUAL, w.keys["dev-1"], b"", signer=MANUAL)
    results = p.ingest_many([stranger.next(T0), forged.next(T0), own_key.next(T0)])
    assert [r.outcome for r in results] == ["unknown_device", "bad_signature", "no_key"]


def test_the_clerks_counter_survives_between_entries(tmp_path: Path) -> None:
    w = _world_with_manual_device()
    first = load_signer(tmp_path, MANUAL, ORG, w.org_key)
    first.next(T0, temp("1"))
    save_signer(tmp_path, first)
    again = load_signer(tmp_path, MANUAL, ORG, w.org_key)
    assert (again.boot, again.ctr, again.prev) == (first.boot, first.ctr, first.prev)


@pytest.mark.parametrize("text", ["weight", "weight=abc:t", "=1:t", "weight=1:", "w=NaN:t"])
def test_bad_values_given_by_hand_are_refused(text: str) -> None:
    with pytest.raises(ManualEntryError):
        parse_value(text)


def test_values_and_labels_given_by_hand() -> None:
    m = parse_value("weight=12.340:t")
    assert (m.quantity, m.value, m.unit) == ("weight", Decimal("12.340"), "t")
    assert parse_label("lot=L-7") == ("lot", "L-7")
    with pytest.raises(ManualEntryError):
        parse_label("novalue")
