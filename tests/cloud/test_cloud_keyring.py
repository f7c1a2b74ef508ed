"""Key-encryption keys: the passphrase-encrypted keyring file, its versions, rotation and
retirement, the wrapped-key format, and the PKCS#11 provider (against a stand-in module, and
its precise refusal when python-pkcs11 is not installed)."""

from __future__ import annotations

import stat
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tally.cloud.keyring import (
    PKCS11_MISSING,
    KeyProvider,
    KeyringError,
    LocalKeyring,
    Pkcs11KeyProvider,
    unwrap_key,
    wrap_key,
)
from tally.crypto import GM, INTL, Suite, cbor

N = 1024  # scrypt cost kept low so the tests run fast
PASS = "correct horse battery staple"


def make(tmp_path: Path, suite: Suite = INTL, name: str = "main") -> LocalKeyring:
    return LocalKeyring.create(tmp_path / f"{name}.ring", PASS, name=name, suite=suite, scrypt_n=N)


def keks(ring: LocalKeyring) -> list[bytes]:
    return [k for _t, k in ring._keys.values()]


@pytest.mark.parametrize("suite", [INTL, GM])
def test_create_open_wrap_unwrap(tmp_path: Path, suite: Suite) -> None:
    ring = make(tmp_path, suite)
    assert isinstance(ring, KeyProvider)
    assert ring.kek_id == "local:main:1" and ring.versions == [1]
    dek = b"\x11" * suite.aead_key_size
    wrapped = ring.wrap(dek, b"context")
    assert wrapped[:5] == b"\x01\x00\x00\x00\x01" and dek not in wrapped
    again = LocalKeyring.open(tmp_path / "main.ring", PASS)
    assert again.unwrap(wrapped, b"context") == dek
    assert again.suite is suite and again.kek_id == "local:main:1"
    data = (tmp_path / "main.ring").read_bytes()
    assert all(k not in data for k in keks(ring))
    assert stat.S_IMODE((tmp_path / "main.ring").stat().st_mode) == 0o600


def test_unwrap_refuses_other_context_altered_or_malformed(tmp_path: Path) -> None:
    ring = make(tmp_path)
    wrapped = ring.wrap(b"\x22" * 32, b"tenant a")
    with pytest.raises(KeyringError, match=r"KEK local:main:1: authentication failed"):
        ring.unwrap(wrapped, b"tenant b")
    bad = bytearray(wrapped)
    bad[-1] ^= 1
    with pytest.raises(KeyringError, match="authentication failed"):
        ring.unwrap(bytes(bad), b"tenant a")
    with pytest.raises(KeyringError, match=r"wrapped key has 10 bytes, fewer than the 33"):
        ring.unwrap(wrapped[:10], b"tenant a")
    with pytest.raises(KeyringError, match=r"format byte 2, want 1"):
        ring.unwrap(b"\x02" + wrapped[1:], b"tenant a")
    with pytest.raises(KeyringError, match=r"has no KEK version 7 \(it has \[1\]"):
        ring.unwrap(b"\x01\x00\x00\x00\x07" + wrapped[5:], b"tenant a")


def test_wrong_passphrase_and_bad_files_are_refused(tmp_path: Path) -> None:
    make(tmp_path)
    path = tmp_path / "main.ring"
    with pytest.raises(KeyringError, match=r"cannot open keyring file .*: wrong passphrase"):
        LocalKeyring.open(path, "not the passphrase")
    (tmp_path / "junk").write_bytes(b"\xa1\x61x\x01")
    with pytest.raises(KeyringError, match=r"junk is not a tally keyring file \(version 1\)"):
        LocalKeyring.open(tmp_path / "junk", PASS)
    with pytest.raises(KeyringError, match=r"cannot read keyring file .*missing"):
        LocalKeyring.open(tmp_path / "missing", PASS)
    outer = cbor.decode(path.read_bytes())
    outer["ct"] = outer["ct"][:-1] + bytes([outer["ct"][-1] ^ 1])
    (tmp_path / "altered").write_bytes(cbor.encode(outer))
    with pytest.raises(KeyringError, match="wrong passphrase or altered file"):
        LocalKeyring.open(tmp_path / "altered", PASS)


def test_create_refuses_existing_file_empty_passphrase_and_bad_name(tmp_path: Path) -> None:
    make(tmp_path)
    path = tmp_path / "main.ring"
    before = path.read_bytes()
    with pytest.raises(KeyringError, match=r"keyring file .*main.ring exists; open it"):
        LocalKeyring.create(path, PASS, scrypt_n=N)
    assert path.read_bytes() == before
    with pytest.raises(KeyringError, match="without a passphrase"):
        LocalKeyring.create(tmp_path / "other", "", scrypt_n=N)
    with pytest.raises(KeyringError, match=r"keyring name 'a:b' must be 1 to 100 characters"):
        LocalKeyring.create(tmp_path / "other", PASS, name="a:b", scrypt_n=N)
    assert not (tmp_path / "other").exists()


def test_rotate_keeps_old_versions_and_is_persisted(tmp_path: Path) -> None:
    ring = make(tmp_path)
    old = ring.wrap(b"\x33" * 32, b"ctx")
    assert ring.rotate(now_ms=5) == "local:main:2"
    new = ring.wrap(b"\x44" * 32, b"ctx")
    assert new[:5] == b"\x01\x00\x00\x00\x02"
    assert ring.unwrap(old, b"ctx") == b"\x33" * 32
    again = LocalKeyring.open(tmp_path / "main.ring", PASS)
    assert again.versions == [1, 2] and again.current_version == 2
    assert again.unwrap(old, b"ctx") == b"\x33" * 32 and again.unwrap(new, b"ctx") == b"\x44" * 32
    assert ring.handles("local:main:1") and ring.handles("local:main:9")
    assert not ring.handles("local:other:1") and not ring.handles("pkcs11:main:1")


def test_another_process_rotation_is_picked_up_without_the_passphrase(tmp_path: Path) -> None:
    a = make(tmp_path)
    b = LocalKeyring.open(tmp_path / "main.ring", PASS)
    a.rotate()
    wrapped = a.wrap(b"\x55" * 32, b"ctx")
    assert b.versions == [1]
    assert b.unwrap(wrapped, b"ctx") == b"\x55" * 32
    assert b.versions == [1, 2]


def test_retire_refuses_current_or_in_use_and_changes_nothing(tmp_path: Path) -> None:
    ring = make(tmp_path)
    old = ring.wrap(b"\x66" * 32, b"ctx")
    path = tmp_path / "main.ring"
    with pytest.raises(KeyringError, match=r"KEK version 1 is current; rotate before retiring"):
        ring.retire(1, frozenset())
    ring.rotate()
    before = path.read_bytes()
    with pytest.raises(KeyringError, match=r"KEK local:main:1 still wraps data keys"):
        ring.retire(1, frozenset({"local:main:1"}))
    with pytest.raises(KeyringError, match=r"keyring main has no KEK version 5"):
        ring.retire(5, frozenset())
    assert path.read_bytes() == before and ring.versions == [1, 2]
    ring.retire(1, frozenset({"local:main:2"}))
    assert ring.versions == [2]
    assert LocalKeyring.open(path, PASS).versions == [2]
    with pytest.raises(KeyringError, match=r"has no KEK version 1 \(it has \[2\]"):
        ring.unwrap(old, b"ctx")


def test_wrapped_key_layout_is_aead_over_header_and_context() -> None:
    kek, dek, nonce = bytes(range(32)), bytes(range(32, 64)), bytes(12)
    wrapped = wrap_key(INTL, kek, 3, dek, b"ctx", nonce)
    header = b"\x01\x00\x00\x00\x03"
    assert wrapped == header + nonce + AESGCM(kek).encrypt(nonce, dek, header + b"ctx")
    assert unwrap_key(INTL, kek, wrapped, b"ctx", "k") == dek
    with pytest.raises(
        KeyringError, match=r"^SM4-GCM wants a 16-byte key and a 12-byte nonce, got 32"
    ):
        wrap_key(GM, kek, 1, dek, b"ctx", nonce)


def test_repr_shows_no_key_material(tmp_path: Path) -> None:
    ring = make(tmp_path)
    text = repr(ring)
    assert "versions=[1]" in text
    assert all(k.hex() not in text and repr(k) not in text for k in keks(ring))
    assert repr(ring._file_key) not in text and ring._file_key.hex() not in text


# ---- PKCS#11 ------------------------------------------------------------------------------


def test_pkcs11_without_python_pkcs11_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # makes `import pkcs11` fail
    with pytest.raises(KeyringError) as err:
        Pkcs11KeyProvider("/usr/lib/softhsm/libsofthsm2.so", slot=0, pin="1234", key_label="kek")
    assert str(err.value) == PKCS11_MISSING
    assert "python-pkcs11" in PKCS11_MISSING and "not installed" in PKCS11_MISSING


class _Key:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def encrypt(self, data: bytes, mechanism: Any, mechanism_param: Any) -> bytes:
        assert mechanism == "CKM_AES_GCM" and mechanism_param.tag_bits == 128
        return AESGCM(self.secret).encrypt(mechanism_param.nonce, data, mechanism_param.aad)

    def decrypt(self, data: bytes, mechanism: Any, mechanism_param: Any) -> bytes:
        assert mechanism == "CKM_AES_GCM"
        return AESGCM(self.secret).decrypt(mechanism_param.nonce, data, mechanism_param.aad)


def fake_pkcs11(secret: bytes, pin: str = "1234") -> tuple[types.ModuleType, types.ModuleType]:
    """A stand-in for python-pkcs11 with its API shape: lib → slots/tokens → session → key."""

    class Session:
        closed = False

        def get_key(self, object_class: Any, key_type: Any, label: str) -> _Key:
            assert (object_class, key_type) == ("SECRET_KEY", "AES")
            if label != "kek":
                raise LookupError(f"NoSuchKey {label}")
            return _Key(secret)

        def close(self) -> None:
            self.closed = True

    class Token:
        def open(self, user_pin: str) -> Session:
            if user_pin != pin:
                raise PermissionError("PinIncorrect")
            return Session()

    class Slot:
        slot_id = 0

        def get_token(self) -> Token:
            return Token()

    class Lib:
        def __init__(self, so: str) -> None:
            self.so = so

        def get_slots(self, token_present: bool = False) -> list[Slot]:
            return [Slot()]

        def get_token(self, token_label: str) -> Token:
            if token_label != "tally":
                raise LookupError(f"NoSuchToken {token_label}")
            return Token()

    class GCMParams:
        def __init__(self, nonce: bytes, aad: bytes, tag_bits: int) -> None:
            self.nonce, self.aad, self.tag_bits = nonce, aad, tag_bits

    p11 = types.ModuleType("pkcs11")
    mech = types.ModuleType("pkcs11.mechanisms")
    p11.lib = Lib  # type: ignore[attr-defined]
    p11.ObjectClass = types.SimpleNamespace(SECRET_KEY="SECRET_KEY")  # type: ignore[attr-defined]
    p11.KeyType = types.SimpleNamespace(AES="AES")  # type: ignore[attr-defined]
    p11.Mechanism = types.SimpleNamespace(AES_GCM="CKM_AES_GCM")  # type: ignore[attr-defined]
    mech.GCMParams = GCMParams  # type: ignore[attr-defined]
    p11.mechanisms = mech  # type: ignore[attr-defined]
    return p11, mech


@pytest.fixture
def hsm_secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    secret = bytes(range(100, 132))
    p11, mech = fake_pkcs11(secret)
    monkeypatch.setitem(sys.modules, "pkcs11", p11)
    monkeypatch.setitem(sys.modules, "pkcs11.mechanisms", mech)
    return secret


def test_pkcs11_wraps_in_the_token_in_the_common_format(hsm_secret: bytes) -> None:
    hsm = Pkcs11KeyProvider("/hsm.so", slot=0, pin="1234", key_label="kek", key_version=4)
    assert isinstance(hsm, KeyProvider)
    assert hsm.kek_id == "pkcs11:kek:4" and hsm.handles("pkcs11:kek:4")
    assert not hsm.handles("pkcs11:kek:3")
    dek = b"\x77" * 32
    wrapped = hsm.wrap(dek, b"ctx")
    assert wrapped[:5] == b"\x01\x00\x00\x00\x04"
    assert unwrap_key(INTL, hsm_secret, wrapped, b"ctx", "x") == dek  # same layout as local
    assert hsm.unwrap(wrapped, b"ctx") == dek
    with pytest.raises(KeyringError, match=r"KEK pkcs11:kek:4: authentication failed"):
        hsm.unwrap(wrapped, b"other")
    with pytest.raises(KeyringError, match=r"cannot unwrap a key of KEK version 1"):
        hsm.unwrap(b"\x01\x00\x00\x00\x01" + wrapped[5:], b"ctx")
    assert "1234" not in repr(hsm) and hsm_secret.hex() not in repr(hsm)
    by_label = Pkcs11KeyProvider("/hsm.so", token_label="tally", pin="1234", key_label="kek")
    assert by_label.unwrap(by_label.wrap(dek, b"c"), b"c") == dek
    hsm.close()


def test_pkcs11_refusals_are_precise(hsm_secret: bytes) -> None:
    with pytest.raises(KeyringError, match="give exactly one of slot and token_label"):
        Pkcs11KeyProvider("/hsm.so", slot=0, token_label="t", pin="1", key_label="kek")
    with pytest.raises(KeyringError, match="the user PIN is empty"):
        Pkcs11KeyProvider("/hsm.so", slot=0, pin="", key_label="kek")
    with pytest.raises(KeyringError, match=r"key_version 0 is not in 1\.\.4294967295"):
        Pkcs11KeyProvider("/hsm.so", slot=0, pin="1", key_label="kek", key_version=0)
    with pytest.raises(KeyringError, match=r"PKCS#11 module /hsm.so has no token in slot 3"):
        Pkcs11KeyProvider("/hsm.so", slot=3, pin="1234", key_label="kek")
    with pytest.raises(KeyringError) as err:
        Pkcs11KeyProvider("/hsm.so", slot=0, pin="9999", key_label="kek")
    assert "slot 0, key 'kek': PermissionError PinIncorrect" in str(err.value)
    assert "9999" not in str(err.value)
    with pytest.raises(KeyringError, match=r"key 'nope': LookupError NoSuchKey nope"):
        Pkcs11KeyProvider("/hsm.so", slot=0, pin="1234", key_label="nope")
