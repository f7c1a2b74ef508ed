"""Key-encryption keys (KEKs): who wraps the tenants' data keys, and the wrapped-key format.

Data at rest is encrypted with per-tenant data keys (DEKs, :mod:`tally.cloud.fieldcrypt`);
each DEK is stored only *wrapped* (encrypted) under a KEK held by a :class:`KeyProvider`:

* :class:`LocalKeyring`: the KEKs live in a keyring file encrypted with the operator's
  passphrase (scrypt, as the key files of :mod:`tally.crypto.keystore`), one KEK per version;
  :meth:`LocalKeyring.rotate` adds a version that becomes current, older versions keep
  unwrapping until :meth:`LocalKeyring.retire` removes them.
* :class:`Pkcs11KeyProvider`: the KEK is an AES-256 key inside an HSM, used through PKCS#11
  (``python-pkcs11``, which tally does not install; without it the provider says so).

Wrapped data key (``docs/formats.md`` §37)::

    wrapped = 0x01 || kek_version (uint32, big-endian) || nonce (12) || ciphertext || tag (16)
    ciphertext || tag = AEAD(KEK, dek, aad = 0x01 || kek_version || context)

The caller's ``context`` (for a DEK: tenant, DEK version and suite) is bound by the AEAD, so a
wrapped key copied to another tenant or version does not unwrap. The AEAD is the keyring's suite
(AES-256-GCM ``intl``, SM4-GCM ``gm``); the HSM provider uses AES-256-GCM. Key material is
never logged and never shown by ``repr``.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tally.cloud.errors import CloudError
from tally.crypto import INTL, Suite, aead, cbor, get_suite
from tally.crypto.errors import DecodeError, DecryptionError, UnknownSuite
from tally.crypto.keystore import DEFAULT_SCRYPT_N

log = logging.getLogger(__name__)

WRAP_FORMAT = 1
HEADER = struct.Struct(">BI")
"""Format byte and key version, the header of a wrapped key and of a field envelope."""
MAX_VERSION = 0xFFFFFFFF
NONCE_SIZE = aead.NONCE_SIZE
TAG_SIZE = aead.TAG_SIZE
FILE_KIND = "tally.keyring"


class KeyringError(CloudError):
    """Raised when a KEK cannot be loaded, created, rotated or used; ``detail`` says why."""

    code = "keyring_error"
    title = "Key-encryption key error"


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys under a key-encryption key."""

    @property
    def kek_id(self) -> str:
        """The id of the KEK that :meth:`wrap` uses now (stored next to each wrapped key)."""
        ...

    def handles(self, kek_id: str) -> bool:
        """Whether :meth:`unwrap` can open keys wrapped under ``kek_id``."""
        ...

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        """Encrypt ``dek`` bound to ``aad``; the result is a wrapped key (see the module)."""
        ...

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """Decrypt a wrapped key; raise :class:`KeyringError` if it is not ours or altered."""
        ...


def seal(suite: Suite, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AEAD of ``suite`` with an explicit nonce: ``nonce || ciphertext || tag``.

    The same layout as :func:`tally.crypto.aead.encrypt`, which draws the nonce itself; an
    explicit nonce makes the test vectors of ``docs/formats.md`` reproducible.
    """
    if len(key) != suite.aead_key_size or len(nonce) != NONCE_SIZE:
        raise KeyringError(
            f"{suite.aead_name} wants a {suite.aead_key_size}-byte key and a {NONCE_SIZE}-byte "
            f"nonce, got {len(key)} and {len(nonce)} bytes"
        )
    if suite is INTL:
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    body = enc.update(plaintext) + enc.finalize()
    return nonce + body + enc.tag


def wrap_key(
    suite: Suite, kek: bytes, kek_version: int, dek: bytes, aad: bytes, nonce: bytes
) -> bytes:
    """The wrapped-key bytes of ``dek`` under ``kek`` (version ``kek_version``)."""
    header = HEADER.pack(WRAP_FORMAT, kek_version)
    return header + seal(suite, kek, nonce, dek, header + aad)


def wrapped_header(wrapped: bytes) -> int:
    """Check a wrapped key's length and format byte; return its KEK version."""
    if len(wrapped) < HEADER.size + NONCE_SIZE + TAG_SIZE:
        raise KeyringError(
            f"wrapped key has {len(wrapped)} bytes, fewer than the "
            f"{HEADER.size + NONCE_SIZE + TAG_SIZE} of header, nonce and tag"
        )
    fmt, version = HEADER.unpack_from(wrapped)
    if fmt != WRAP_FORMAT:
        raise KeyringError(f"wrapped key has format byte {fmt}, want {WRAP_FORMAT}")
    return int(version)


def unwrap_key(suite: Suite, kek: bytes, wrapped: bytes, aad: bytes, kek_id: str) -> bytes:
    """Open a wrapped key whose header was checked; ``kek_id`` names the KEK in errors."""
    header = wrapped[: HEADER.size]
    try:
        return aead.decrypt(suite, kek, wrapped[HEADER.size :], header + aad)
    except DecryptionError:
        raise KeyringError(
            f"cannot unwrap data key with KEK {kek_id}: authentication failed "
            "(wrapped for another tenant, version or suite, or altered)"
        ) from None


def _ms(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(
        passphrase.encode(), salt=salt, n=n, r=r, p=p, dklen=size, maxmem=256 * 1024 * 1024
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (as the key files are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class LocalKeyring:
    """Versioned KEKs in a passphrase-encrypted keyring file (format: ``docs/formats.md`` §37).

    Open with :meth:`create` or :meth:`open`. The passphrase is not kept: only the key derived
    from it, so :meth:`rotate` and :meth:`retire` can rewrite the file. A wrapped key of a
    version this process does not know makes it re-read the file once (another process may
    have rotated). KEK ids are ``local:<name>:<version>``.
    """

    def __init__(
        self, path: Path, name: str, suite: Suite, file_key: bytes, kdf: dict[str, Any]
    ) -> None:
        self._path = path
        self._name = name
        self._suite = suite
        self._file_key = file_key
        self._kdf = kdf
        self._keys: dict[int, tuple[int, bytes]] = {}  # version -> (created ms, KEK)
        self._current = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LocalKeyring(path={str(self._path)!r}, name={self._name!r}, "
            f"suite={self._suite.name}, versions={self.versions}, current={self._current})"
        )

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        *,
        name: str = "main",
        suite: Suite = INTL,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        now_ms: int | None = None,
    ) -> LocalKeyring:
        """Write a new keyring file holding KEK version 1; refuse to overwrite a file."""
        if not passphrase:
            raise KeyringError("refusing to create a keyring without a passphrase")
        if not name or len(name) > 100 or ":" in name:
            raise KeyringError(f"keyring name {name!r} must be 1 to 100 characters without ':'")
        if path.exists():
            raise KeyringError(f"keyring file {path} exists; open it instead of creating it")
        salt = os.urandom(16)
        kdf: dict[str, Any] = {"alg": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": salt}
        file_key = _scrypt(passphrase, salt, scrypt_n, 8, 1, suite.aead_key_size)
        ring = cls(path, name, suite, file_key, kdf)
        ring._keys, ring._current = {1: (_ms(now_ms), aead.generate_key(suite))}, 1
        ring._save()
        log.info("created keyring %s (%s) at %s with KEK version 1", name, suite.name, path)
        return ring

    @classmethod
    def open(cls, path: Path, passphrase: str) -> LocalKeyring:
        """Open an existing keyring file with the operator's passphrase."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyringError(f"cannot read keyring file {path}: {exc.strerror}") from None
        outer = _outer(data, path)
        kdf, suite = outer["kdf"], outer["suite"]
        try:
            file_key = _scrypt(
                passphrase, kdf["salt"], kdf["n"], kdf["r"], kdf["p"], suite.aead_key_size
            )
        except ValueError as exc:
            raise KeyringError(f"keyring file {path}: bad scrypt parameters: {exc}") from None
        ring = cls(path, outer["id"], suite, file_key, kdf)
        ring._load(outer)
        log.info("opened keyring %s at %s: KEK versions %s", ring._name, path, ring.versions)
        return ring

    @property
    def suite(self) -> Suite:
        return self._suite

    @property
    def versions(self) -> list[int]:
        return sorted(self._keys)

    @property
    def current_version(self) -> int:
        return self._current

    @property
    def kek_id(self) -> str:
        return self.kek_id_of(self._current)

    def kek_id_of(self, version: int) -> str:
        return f"local:{self._name}:{version}"

    def handles(self, kek_id: str) -> bool:
        prefix = f"local:{self._name}:"
        return kek_id.startswith(prefix) and kek_id[len(prefix) :].isdigit()

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        version = self._current
        kek = self._keys[version][1]
        return wrap_key(self._suite, kek, version, dek, aad, os.urandom(NONCE_SIZE))

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        version = wrapped_header(wrapped)
        entry = self._keys.get(version)
        if entry is None:
            self._refresh()
            entry = self._keys.get(version)
        if entry is None:
            raise KeyringError(
                f"keyring {self._name} has no KEK version {version} "
                f"(it has {self.versions}; retired or never created)"
            )
        return unwrap_key(self._suite, entry[1], wrapped, aad, self.kek_id_of(version))

    def rotate(self, now_ms: int | None = None) -> str:
        """Add a KEK version, make it current, rewrite the file; return its KEK id.

        Data keys wrapped before stay readable; :meth:`FieldCipher.rotate_kek
        <tally.cloud.fieldcrypt.FieldCipher.rotate_kek>` re-wraps them under the new version.
        """
        with self._lock:
            version = max(self._keys) + 1
            if version > MAX_VERSION:
                raise KeyringError(f"keyring {self._name} has no KEK version left")
            self._keys = {**self._keys, version: (_ms(now_ms), aead.generate_key(self._suite))}
            self._current = version
            self._save()
        log.info("rotated keyring %s: KEK version %d is current", self._name, version)
        return self.kek_id

    def retire(self, version: int, in_use: set[str] | frozenset[str]) -> None:
        """Remove KEK ``version`` from the file; refuse the current one or one ``in_use``."""
        with self._lock:
            if version not in self._keys:
                raise KeyringError(f"keyring {self._name} has no KEK version {version}")
            if version == self._current:
                raise KeyringError(f"KEK version {version} is current; rotate before retiring it")
            if self.kek_id_of(version) in in_use:
                raise KeyringError(
                    f"KEK {self.kek_id_of(version)} still wraps data keys; "
                    "re-wrap them (rotate_kek) before retiring it"
                )
            self._keys = {v: e for v, e in self._keys.items() if v != version}
            self._save()
        log.info("retired KEK version %d of keyring %s", version, self._name)

    def _aad(self) -> bytes:
        return b"tally.keyring" + cbor.encode([self._name, self._suite.name])

    def _save(self) -> None:
        keys = [dict(version=v, created=t, key=k) for v, (t, k) in sorted(self._keys.items())]
        body = cbor.encode({"current": self._current, "keys": keys})
        ct = aead.encrypt(self._suite, self._file_key, body, self._aad())
        outer = dict(
            v=1, kind=FILE_KIND, id=self._name, suite=self._suite.name, kdf=self._kdf, ct=ct
        )
        _write_private(self._path, cbor.encode(outer))

    def _load(self, outer: dict[str, Any]) -> None:
        try:
            plain = aead.decrypt(self._suite, self._file_key, outer["ct"], self._aad())
        except DecryptionError:
            raise KeyringError(
                f"cannot open keyring file {self._path}: wrong passphrase or altered file"
            ) from None
        try:
            body = cbor.decode(plain, where="keyring body")
            keys = {int(e["version"]): (int(e["created"]), bytes(e["key"])) for e in body["keys"]}
            current = int(body["current"])
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            raise KeyringError(f"malformed keyring body in {self._path}: {exc}") from None
        if current not in keys:
            raise KeyringError(f"keyring file {self._path}: current version {current} is missing")
        for v, (_t, k) in keys.items():
            if len(k) != self._suite.aead_key_size:
                raise KeyringError(f"keyring file {self._path}: KEK version {v} has a wrong length")
        self._keys, self._current = keys, current

    def _refresh(self) -> None:
        with self._lock:
            try:
                outer = _outer(self._path.read_bytes(), self._path)
            except (OSError, KeyringError):
                return
            if outer["kdf"] != self._kdf or outer["id"] != self._name:
                return
            self._load(outer)


def _outer(data: bytes, path: Path) -> dict[str, Any]:
    try:
        obj = cbor.decode(data, where="keyring file")
    except DecodeError as exc:
        raise KeyringError(f"{path} is not a tally keyring file: {exc.reason}") from None
    if not isinstance(obj, dict) or obj.get("kind") != FILE_KIND or obj.get("v") != 1:
        raise KeyringError(f"{path} is not a tally keyring file (version 1)")
    try:
        suite = get_suite(str(obj["suite"]))
        kdf, name, ct = obj["kdf"], obj["id"], obj["ct"]
    except (KeyError, UnknownSuite) as exc:
        raise KeyringError(f"malformed keyring file {path}: {type(exc).__name__} {exc}") from None
    if not isinstance(kdf, dict) or not isinstance(name, str) or not isinstance(ct, bytes):
        raise KeyringError(f"keyring file {path}: fields kdf, id and ct have the wrong types")
    if kdf.get("alg") != "scrypt" or not isinstance(kdf.get("salt"), bytes):
        raise KeyringError(f"keyring file {path}: unknown key derivation {kdf.get('alg')!r}")
    if not all(isinstance(kdf.get(k), int) for k in ("n", "r", "p")):
        raise KeyringError(f"keyring file {path}: scrypt parameters n, r, p must be integers")
    return {"suite": suite, "kdf": kdf, "id": name, "ct": ct}


PKCS11_MISSING = (
    "the PKCS#11 key provider needs the python-pkcs11 package, which is not installed "
    "(pip install python-pkcs11); use LocalKeyring or install it"
)


def _import_pkcs11() -> tuple[Any, Any]:
    try:
        p11 = importlib.import_module("pkcs11")
    except ImportError:
        raise KeyringError(PKCS11_MISSING) from None
    try:
        gcm = importlib.import_module("pkcs11.mechanisms").GCMParams
    except (ImportError, AttributeError):
        raise KeyringError(
            "the installed python-pkcs11 has no pkcs11.mechanisms.GCMParams (AES-GCM); "
            "upgrade python-pkcs11"
        ) from None
    return p11, gcm


class Pkcs11KeyProvider:
    """A KEK inside an HSM: an AES-256 secret key found by label on a PKCS#11 token.

    ``module`` is the vendor's PKCS#11 library (a ``.so`` path), the token is chosen by
    ``slot`` id or ``token_label``, ``pin`` logs in as user. Wrapping is CKM_AES_GCM in the
    token, in the wrapped-key format of the module docstring; ``key_version`` is the version
    number written into it (raise it when a new key label replaces the old one). The KEK id is
    ``pkcs11:<key_label>:<key_version>``.
    """

    def __init__(
        self,
        module: str,
        *,
        pin: str,
        key_label: str,
        slot: int | None = None,
        token_label: str | None = None,
        key_version: int = 1,
    ) -> None:
        if (slot is None) == (token_label is None):
            raise KeyringError("PKCS#11: give exactly one of slot and token_label")
        if not pin:
            raise KeyringError("PKCS#11: the user PIN is empty")
        if not key_label or ":" in key_label:
            raise KeyringError(f"PKCS#11: key label {key_label!r} must be non-empty without ':'")
        if not 1 <= key_version <= MAX_VERSION:
            raise KeyringError(f"PKCS#11: key_version {key_version} is not in 1..{MAX_VERSION}")
        self._p11, self._gcm = _import_pkcs11()
        self._label = key_label
        self._version = key_version
        self._lock = threading.Lock()
        where = f"slot {slot}" if slot is not None else f"token {token_label!r}"
        try:
            lib = self._p11.lib(module)
            if slot is not None:
                found = [s for s in lib.get_slots(token_present=True) if s.slot_id == slot]
                if not found:
                    raise KeyringError(f"PKCS#11 module {module} has no token in slot {slot}")
                token = found[0].get_token()
            else:
                token = lib.get_token(token_label=token_label)
            self._session = token.open(user_pin=pin)
            self._key = self._session.get_key(
                object_class=self._p11.ObjectClass.SECRET_KEY,
                key_type=self._p11.KeyType.AES,
                label=key_label,
            )
        except KeyringError:
            raise
        except Exception as exc:
            raise KeyringError(
                f"PKCS#11 module {module}, {where}, key {key_label!r}: {type(exc).__name__} {exc}"
            ) from None
        log.info("PKCS#11 KEK %s ready (%s)", self.kek_id, where)

    def __repr__(self) -> str:
        return f"Pkcs11KeyProvider(kek_id={self.kek_id!r})"

    @property
    def kek_id(self) -> str:
        return f"pkcs11:{self._label}:{self._version}"

    def handles(self, kek_id: str) -> bool:
        return kek_id == self.kek_id

    def _crypt(self, wrap: bool, data: bytes, nonce: bytes, aad: bytes) -> bytes:
        param = self._gcm(nonce=nonce, aad=aad, tag_bits=TAG_SIZE * 8)
        with self._lock:
            fn = self._key.encrypt if wrap else self._key.decrypt
            return bytes(fn(data, mechanism=self._p11.Mechanism.AES_GCM, mechanism_param=param))

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        header, nonce = HEADER.pack(WRAP_FORMAT, self._version), os.urandom(NONCE_SIZE)
        try:
            return header + nonce + self._crypt(True, dek, nonce, header + aad)
        except Exception as exc:
            raise KeyringError(f"PKCS#11 KEK {self.kek_id}: wrap failed: {exc!r}") from None

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        version = wrapped_header(wrapped)
        if version != self._version:
            raise KeyringError(
                f"PKCS#11 KEK {self.kek_id} cannot unwrap a key of KEK version {version}"
            )
        header, nonce = wrapped[: HEADER.size], wrapped[HEADER.size : HEADER.size + NONCE_SIZE]
        try:
            return self._crypt(False, wrapped[HEADER.size + NONCE_SIZE :], nonce, header + aad)
        except Exception:
            raise KeyringError(
                f"cannot unwrap data key with KEK {self.kek_id}: authentication failed "
                "(wrapped for another tenant, version or suite, or altered)"
            ) from None

    def close(self) -> None:
        with self._lock:
            self._session.close()
