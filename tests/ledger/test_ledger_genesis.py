"""Genesis: created by ``tally consortium init``, checked the way every verifier checks it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.cli import app
from tally.crypto import CryptoError, SigningKey
from tally.crypto.keystore import load_key
from tally.ledger.bootstrap import create_consortium
from tally.ledger.genesis import GenesisError, Ordering, load_genesis, read_genesis

PASS = "genesis test"
MEMBERS = {
    "bank-1": ["bank"],
    "wh-1": ["warehouse"],
    "core-1": ["core_enterprise"],
    "reg-1": ["regulator"],
}


def _created(tmp_path: Path):  # type: ignore[no-untyped-def]
    return create_consortium(tmp_path / "c", MEMBERS, PASS, scrypt_n=1 << 10, now_ms=1)


def test_init_writes_a_genesis_every_member_signed_and_encrypted_member_keys(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    args = ["consortium", "init", str(tmp_path / "c")]
    for org, roles in MEMBERS.items():
        args += ["--member", f"{org}:{','.join(roles)}"]
    args += ["--policy", "demo.*=2-OF(org:bank-1, org:wh-1, org:core-1, org:reg-1)"]
    res = runner.invoke(app, args, env={"TALLY_KEY_PASSPHRASE": PASS})
    assert res.exit_code == 0, res.output
    g = read_genesis(tmp_path / "c" / "genesis.cbor")
    assert set(g.members) == set(MEMBERS)
    assert g.checkpoint_quorum == 3
    assert g.policy("demo", "anything") == [
        "k_of",
        2,
        ["org", "bank-1"],
        ["org", "wh-1"],
        ["org", "core-1"],
        ["org", "reg-1"],
    ]
    assert g.policy("membership", "add_member")[0] == "k_of"
    for org in MEMBERS:
        key = load_key(tmp_path / "c" / "members" / org / "member.key", PASS)
        assert key.public.raw == g.members[org].pub


def test_init_refuses_to_overwrite_a_consortium(tmp_path: Path) -> None:
    _created(tmp_path)
    with pytest.raises(FileExistsError):
        _created(tmp_path)


def test_a_genesis_missing_a_members_signature_is_refused(tmp_path: Path) -> None:
    c = _created(tmp_path)
    sigs = [c.genesis.sign(o, k) for o, k in sorted(c.keys.items()) if o != "reg-1"]
    with pytest.raises(GenesisError, match="not signed by reg-1"):
        load_genesis(c.genesis.to_file(sigs))


def test_a_signature_by_a_non_member_or_over_another_body_is_refused(tmp_path: Path) -> None:
    c = _created(tmp_path)
    sigs = [c.genesis.sign(o, k) for o, k in sorted(c.keys.items())]
    outsider = c.genesis.sign("mallory", SigningKey.generate("intl"))
    with pytest.raises(GenesisError, match="'mallory' signed but is not a member"):
        load_genesis(c.genesis.to_file([*sigs, outsider]))
    other = replace(c.genesis, name="other")
    forged = other.sign("bank-1", c.keys["bank-1"])
    with pytest.raises(GenesisError, match="over another body"):
        load_genesis(c.genesis.to_file([forged, *sigs[1:]]))


def test_inconsistent_genesis_bodies_are_refused(tmp_path: Path) -> None:
    c = _created(tmp_path)
    g = c.genesis
    bad = [
        ({"checkpoint_quorum": 5}, "checkpoint_quorum 5"),
        ({"policies": {"x.*": ["org", "nobody"]}}, "nobody"),
        ({"ordering": Ordering(kind="raft")}, "ordering"),
    ]
    for fields, message in bad:
        h = replace(g, **fields)
        sigs = [h.sign(o, k) for o, k in sorted(c.keys.items())]
        with pytest.raises(GenesisError, match=message):
            load_genesis(h.to_file(sigs))


def test_a_changed_byte_anywhere_in_the_genesis_file_is_refused(tmp_path: Path) -> None:
    c = _created(tmp_path)
    data = c.genesis_path.read_bytes()
    assert load_genesis(data).chain == c.genesis.chain
    for pos in range(0, len(data), max(1, len(data) // 97)):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises(CryptoError):  # malformed, or a signature that fails
            load_genesis(bytes(bad))
