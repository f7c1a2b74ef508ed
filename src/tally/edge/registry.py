"""Registrations and revocations the edge trusts, and the lookups the verify path needs.

Each registration or revocation is a COSE_Sign1 signed by the owning organisation and is
verified against the trust anchors (:class:`tally.device.trust.Trust`) before it is used.
The registry maps an id (device, edge or cloud) to an :class:`Entry` holding the
registration, its :class:`~tally.crypto.VerifyKey` (built once: constructing a key is not
free) and the revocation time, if any.

Revocation semantics (a revocation of subject ``id`` at time ``t``):

* a reading whose device time is after ``t`` is rejected (``revoked``);
* from the moment the edge's clock reaches ``t``, every new envelope of the subject is
  rejected whatever device time it claims (a stolen key can back-date); readings that were
  still buffered on the device are therefore kept only in quarantine;
* a later registration of the same id (issue time after ``t``, e.g. a new key) lifts it.

Of two registrations for one id the one with the later issue time wins (key rotation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tally import formats as F
from tally.crypto import CryptoError, VerifyKey, parse_sign1
from tally.device.registration import (
    Registration,
    Revocation,
    verify_registration,
    verify_revocation,
)
from tally.device.trust import Trust
from tally.edge.errors import RegistrationRejected


@dataclass(slots=True)
class Entry:
    """What the edge knows about one registered id."""

    reg: Registration
    key: VerifyKey | None
    revoked_t: int | None = None
    revocation: Revocation | None = None

    def revoked(self, t_device: int, now_ms: int) -> bool:
        """True when an envelope with device time ``t_device`` received at ``now_ms`` is
        rejected because of a revocation (see the module docstring)."""
        rt = self.revoked_t
        return rt is not None and (t_device > rt or now_ms >= rt)


class Registry:
    """Verified registrations by id. Not thread-safe; the gateway uses it from one thread."""

    def __init__(self, trust: Trust) -> None:
        self.trust = trust
        self._entries: dict[str, Entry] = {}
        self._revocations: dict[str, Revocation] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, id_: str) -> Entry | None:
        """The entry for ``id_`` or None: one dict lookup, used per envelope."""
        return self._entries.get(id_)

    def add_registration(self, data: bytes, source: str = "bytes") -> Registration:
        """Verify and add a registration; raise :class:`RegistrationRejected` if invalid."""
        try:
            reg = verify_registration(data, self.trust.orgs)
            key = reg.verify_key()
        except CryptoError as exc:
            raise RegistrationRejected(source, str(exc)) from None
        old = self._entries.get(reg.id)
        if old is not None and old.reg.t > reg.t:
            return old.reg  # an older registration never replaces a newer one
        entry = Entry(reg, key)
        rev = self._revocations.get(reg.id)
        if rev is not None and rev.t >= reg.t:
            entry.revoked_t, entry.revocation = rev.t, rev
        self._entries[reg.id] = entry
        return reg

    def add_revocation(self, data: bytes, source: str = "bytes") -> Revocation:
        """Verify and apply a revocation; raise :class:`RegistrationRejected` if invalid.

        The revocation must be signed by the organisation that registered the subject.
        """
        try:
            rev = verify_revocation(data, self.trust.orgs)
        except CryptoError as exc:
            raise RegistrationRejected(source, str(exc)) from None
        entry = self._entries.get(rev.id)
        if entry is not None and entry.reg.org != rev.org:
            raise RegistrationRejected(
                source, f"{rev.org!r} cannot revoke {rev.id!r}, registered by {entry.reg.org!r}"
            )
        known = self._revocations.get(rev.id)
        if known is None or rev.t < known.t:
            self._revocations[rev.id] = rev  # the earliest revocation time counts
        rev = self._revocations[rev.id]
        if entry is not None and rev.t >= entry.reg.t:
            entry.revoked_t, entry.revocation = rev.t, rev
        return rev

    def add(self, data: bytes, source: str = "bytes") -> Registration | Revocation:
        """Add a registration or a revocation, told apart by the COSE content type."""
        try:
            cty = parse_sign1(data).content_type
        except CryptoError as exc:
            raise RegistrationRejected(source, str(exc)) from None
        if cty == F.CTY_REGISTRATION:
            return self.add_registration(data, source)
        if cty == F.CTY_REVOCATION:
            return self.add_revocation(data, source)
        raise RegistrationRejected(
            source, f"content type {cty!r} is neither registration nor revocation"
        )

    def load_dir(
        self, directory: Path, on_error: Callable[[RegistrationRejected], None] | None = None
    ) -> int:
        """Load every ``*.cose`` file of ``directory`` (registrations first, in name order).

        A bad file raises :class:`RegistrationRejected`, or is passed to ``on_error`` and
        skipped when that is given. Returns the number of files loaded.
        """
        files = sorted(directory.glob("*.cose"))
        loaded = 0
        pending_revocations: list[tuple[Path, bytes]] = []
        for path in files:
            data = path.read_bytes()
            try:
                cty = parse_sign1(data).content_type
            except CryptoError as exc:
                err = RegistrationRejected(str(path), str(exc))
                if on_error is None:
                    raise err from None
                on_error(err)
                continue
            if cty == F.CTY_REVOCATION:
                pending_revocations.append((path, data))
                continue
            try:
                self.add(data, str(path))
                loaded += 1
            except RegistrationRejected as err:
                if on_error is None:
                    raise
                on_error(err)
        for path, data in pending_revocations:
            try:
                self.add_revocation(data, str(path))
                loaded += 1
            except RegistrationRejected as err:
                if on_error is None:
                    raise
                on_error(err)
        return loaded

    def cloud_key(self, id_: str) -> VerifyKey | None:
        """The key of a registered, unrevoked cloud (``kind`` "cloud"), for receipts."""
        e = self._entries.get(id_)
        if e is None or e.reg.kind != "cloud" or e.revoked_t is not None:
            return None
        return e.key

    def ids(self, kind: str | None = None) -> list[str]:
        """Registered ids, optionally of one kind, sorted."""
        return sorted(i for i, e in self._entries.items() if kind is None or e.reg.kind == kind)
