"""The cloud's own identity: its signing key (an encrypted key file) and its registration.

The key signs ingest receipts. The cloud's registration (kind ``"cloud"``, signed by its
organisation) lets edges and verifiers check those receipts; it is looked for among the signed
``*.cose`` files of ``registrations_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tally.cloud.config import CloudSettings
from tally.crypto import DecodeError, SigningKey, parse_sign1
from tally.crypto.keystore import load_key
from tally.device.registration import decode_registration
from tally.formats import CTY_REGISTRATION


class IdentityError(Exception):
    """Raised when the cloud's key or registration is missing or does not match."""


@dataclass(frozen=True)
class CloudIdentity:
    """Who the cloud is: its id, organisation, signing key and (optional) registration."""

    id: str
    org: str
    key: SigningKey
    registration: bytes | None = None


def registration_files(directory: Path | None) -> list[tuple[Path, bytes]]:
    """The signed ``*.cose`` files of ``directory`` (sorted by name), none when it is None."""
    if directory is None or not directory.is_dir():
        return []
    return [(p, p.read_bytes()) for p in sorted(directory.glob("*.cose"))]


def find_own_registration(
    cloud_id: str, key: SigningKey, files: list[tuple[Path, bytes]]
) -> bytes | None:
    """The newest registration of kind ``cloud`` for ``cloud_id`` among ``files``.

    Raises IdentityError when it names another public key than ``key``'s.
    """
    best: tuple[int, bytes] | None = None
    for path, data in files:
        try:
            msg = parse_sign1(data, content_type=CTY_REGISTRATION)
            reg = decode_registration(msg.payload)
        except DecodeError:
            continue
        if reg.kind != "cloud" or reg.id != cloud_id:
            continue
        if reg.pub != key.public.raw:
            raise IdentityError(f"{path.name}: registration of {cloud_id!r} names another key")
        if best is None or reg.t > best[0]:
            best = (reg.t, data)
    return None if best is None else best[1]


def load_identity(settings: CloudSettings, passphrase: str) -> CloudIdentity:
    """Open the cloud's key file with ``passphrase`` and find its registration.

    Raises IdentityError when no key file is configured, and the keystore's errors when the
    file cannot be opened.
    """
    if settings.key_file is None:
        raise IdentityError("cloud.key_file is not configured")
    if not settings.key_file.is_file():
        raise IdentityError(f"cloud key file {settings.key_file} does not exist")
    key = load_key(settings.key_file, passphrase)
    reg = find_own_registration(settings.id, key, registration_files(settings.registrations_dir))
    return CloudIdentity(settings.id, settings.org, key, reg)
