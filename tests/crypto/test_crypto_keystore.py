"""Encrypted key files (tally.crypto.keystore): round trips and every way to get it wrong.

A small scrypt cost (n = 16) keeps the tests fast; the format is the same at any cost.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tally.crypto import GM, INTL, SigningKey, Suite, cbor
from tally.crypto.errors import KeyError_
from tally.crypto.keystore import load_key, open_key, save_key, seal_key

N = 16
SUITES = [INTL, GM]


@pytest.fixture(scope="module", params=SUITES, ids=str)
def key(request: pytest.FixtureRequest) -> SigningKey:
    suite: Suite = request.param
    return SigningKey.generate(suite)


def test_seal_open_round_trip(key: SigningKey) -> None:
    blob = seal_key(key, "correct horse", scrypt_n=N)
    back = open_key(blob, "correct horse")
    assert back.suite is key.suite
    assert back.public == key.public
    assert back.secret_bytes() == key.secret_bytes()
    msg = b"signed after reload"
    key.public.verify(back.sign(msg), msg)


def test_layout(key: SigningKey) -> None:
    obj = cbor.decode(seal_key(key, "pw", scrypt_n=N))
    assert set(obj) == {"v", "kind", "suite", "pub", "kdf", "ct"}
    assert (obj["v"], obj["kind"], obj["suite"]) == (1, "tally.key", key.suite.name)
    assert obj["pub"] == key.public.raw
    assert obj["kdf"]["alg"] == "scrypt" and obj["kdf"]["n"] == N
    assert len(obj["kdf"]["salt"]) == 16
    assert len(obj["ct"]) == 12 + 32 + 16
    assert key.secret_bytes() not in seal_key(key, "pw", scrypt_n=N)


def test_two_seals_differ(key: SigningKey) -> None:
    assert seal_key(key, "pw", scrypt_n=N) != seal_key(key, "pw", scrypt_n=N)


def test_wrong_passphrase(key: SigningKey) -> None:
    blob = seal_key(key, "pw", scrypt_n=N)
    for wrong in ("Pw", "pw ", "", "p", "pw" * 40):
        with pytest.raises(KeyError_, match="wrong passphrase"):
            open_key(blob, wrong)


def test_every_altered_bit_is_a_key_error(key: SigningKey) -> None:
    """Whatever byte is changed (structure, salt, cost, public key or ciphertext), the
    answer is KeyError_, never a key and never another exception."""
    blob = seal_key(key, "pw", scrypt_n=N)
    for i in range(len(blob)):
        for bit in (0x01, 0x20, 0x80):
            bad = bytearray(blob)
            bad[i] ^= bit
            with pytest.raises(KeyError_):
                open_key(bytes(bad), "pw")


def test_truncated_and_foreign_files(key: SigningKey) -> None:
    blob = seal_key(key, "pw", scrypt_n=N)
    for n in (0, 1, len(blob) // 2, len(blob) - 1):
        with pytest.raises(KeyError_):
            open_key(blob[:n], "pw")
    obj = cbor.decode(blob)
    for field, value in [
        ("kind", "other"),
        ("v", 2),
        ("suite", "rsa"),
        ("kdf", 5),
        ("pub", "text"),
        ("ct", [1]),
    ]:
        changed = dict(obj)
        changed[field] = value
        with pytest.raises(KeyError_):
            open_key(cbor.encode(changed), "pw")
    for field in obj:
        with pytest.raises(KeyError_):
            open_key(cbor.encode({k: v for k, v in obj.items() if k != field}), "pw")
    kdf = dict(obj["kdf"], alg="argon2")
    with pytest.raises(KeyError_, match="argon2"):
        open_key(cbor.encode(dict(obj, kdf=kdf)), "pw")
    with pytest.raises(KeyError_):
        open_key(cbor.encode([1, 2]), "pw")


def test_public_key_swapped_in_is_refused(key: SigningKey) -> None:
    other = SigningKey.generate(key.suite)
    obj = cbor.decode(seal_key(key, "pw", scrypt_n=N))
    obj["pub"] = other.public.raw  # authenticated as associated data
    with pytest.raises(KeyError_):
        open_key(cbor.encode(obj), "pw")


def test_passphrase_is_required(key: SigningKey, tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match="without a passphrase"):
        seal_key(key, "", scrypt_n=N)
    with pytest.raises(KeyError_):
        save_key(tmp_path / "k.key", key, "", scrypt_n=N)
    assert not (tmp_path / "k.key").exists()


def test_file_mode_is_0600(key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "keys" / f"{key.suite.name}.key"
    old = os.umask(0)
    try:
        save_key(path, key, "pw", scrypt_n=N)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path, "pw").public == key.public
    assert not list(path.parent.glob("*.tmp"))


def test_file_mode_is_0600_even_over_a_leftover_temporary(key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    tmp = path.with_suffix(".key.tmp")
    tmp.write_bytes(b"left over")
    tmp.chmod(0o644)
    save_key(path, key, "pw", scrypt_n=N)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_overwrite_keeps_mode(key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    save_key(path, key, "pw", scrypt_n=N)
    save_key(path, key, "pw2", scrypt_n=N)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path, "pw2").public == key.public


def test_no_secret_in_repr_or_str(key: SigningKey) -> None:
    secret = key.secret_bytes()
    texts = [repr(key), str(key), repr(key.public), str(key.public), f"{key!r} {key}"]
    forms = [secret.hex(), secret.hex().upper(), repr(secret), str(list(secret))]
    for text in texts:
        for form in forms:
            assert form not in text
    assert key.public.fingerprint() in repr(key)
    reloaded = open_key(seal_key(key, "pw", scrypt_n=N), "pw")
    assert secret.hex() not in repr(reloaded)


def test_key_error_messages_hold_no_secret(key: SigningKey) -> None:
    blob = seal_key(key, "hunter2-passphrase", scrypt_n=N)
    with pytest.raises(KeyError_) as info:
        open_key(blob, "wrong-passphrase")
    text = str(info.value)
    assert "hunter2" not in text and "wrong-passphrase" not in text
    assert key.secret_bytes().hex() not in text
