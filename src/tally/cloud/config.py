"""The ``[cloud]`` configuration section.

Example::

    [cloud]
    id = "cloud-bank"
    org = "bank"
    port = 8443
    database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/tally"
    key_file = "keys/cloud.key"            # encrypted, see tally.crypto.keystore
    trust_file = "trust.cbor"
    registrations_dir = "registrations"    # signed *.cose registrations loaded at start
    online_window_s = 300
    anchor_retry_ms = 500                  # anchoring on the ledger: retry after a failure
    anchor_hold_ms = 30000                 # wait this long for a missing earlier batch
    metrics_token = "13cdfafc45c19dbc1636a6f2d5409f1c1f8756094b12659ffa2b3f5bd6fe55e5"
    tls_cert_file = "tls/cloud.pem"        # HTTPS only (tally certs issue --kind server)
    tls_key_file = "tls/cloud-key.pem"
    tls_client_ca_file = "tls/ca.pem"      # mutual TLS: every client needs a certificate from it

    [cloud.ledger]                         # anchor through member peers (tally peer)
    genesis = "consortium/genesis.cbor"
    org = "bank"                           # a consortium member: the cloud's organisation
    key_file = "consortium/members/bank/member.key"   # TALLY_KEY_PASSPHRASE
    peers = { bank = "http://10.0.0.1:7051", acme = "http://10.0.0.2:7051" }
    timeout_s = 15

    [cloud.identity]                       # logins, sessions, API tokens, the audit log
    enabled = true                         # default: on when the listener serves HTTPS
    lockout_failures = 5
    session_idle_ms = 1800000

    [cloud.audit]                          # anchored on the ledger when [cloud.ledger] is set
    anchor_every_n = 100
    anchor_every_ms = 60000

    [cloud.keys]                           # encryption at rest; TALLY_KEYRING_PASSPHRASE
    keyring_file = "keys/keyring.bin"

    [[cloud.api_tokens]]
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    org = "regulator"
    kind = "regulator"

Tokens are never stored in plaintext: ``sha256`` (and ``metrics_token``, which ``GET /metrics``
then requires as a bearer token) is the lower-case hex SHA-256 of the token's UTF-8 bytes
(``printf %s "$TOKEN" | sha256sum``). A configured token is a tenant-wide, read-only principal
of the authorisation policy (:mod:`tally.cloud.auth`). No secret is read from the file: the
keyring's passphrase comes from ``TALLY_KEYRING_PASSPHRASE`` only (:func:`keyring_passphrase`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tally import config
from tally.cloud.authz import SCOPE_NOUNS
from tally.cloud.identity import TENANT_KINDS, IdentityPolicy

KEYRING_PASSPHRASE_ENV = "TALLY_KEYRING_PASSPHRASE"
READ_SCOPES = frozenset(f"read:{noun}" for noun in SCOPE_NOUNS.values())
DEFAULT_TOKEN_SCOPES = ("read:alerts", "read:chain", "read:devices", "read:evidence",
                        "read:telemetry")  # fmt: skip
"""What a configured token may read unless it says otherwise: the telemetry read API."""
_SCOPE = re.compile(r"[a-z]+:[a-z_]+")


def token_digest(token: str) -> str:
    """The hex SHA-256 of a bearer token, as kept in ``api_tokens``."""
    return hashlib.sha256(token.encode()).hexdigest()


def keyring_passphrase(environ: Mapping[str, str] | None = None) -> str:
    """The keyring passphrase from ``TALLY_KEYRING_PASSPHRASE`` (never from a file, never
    logged); ConfigError when it is not set."""
    env = os.environ if environ is None else environ
    value = env.get(KEYRING_PASSPHRASE_ENV, "")
    if not value:
        raise config.ConfigError(
            "environment", [f"{KEYRING_PASSPHRASE_ENV} is not set (cloud.keys needs it)"]
        )
    return value


class ApiToken(BaseModel):
    """One configured read-API token: its digest, the organisation (tenant) it speaks for,
    the tenant's ``kind`` when the identity store does not know the tenant, and its read
    ``scopes``. ``role`` is a label kept for older configurations: ``regulator`` stands for
    ``kind = "regulator"``; no role reads other organisations' data by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    org: str = Field(min_length=1)
    role: str = Field(default="member", min_length=1)
    kind: str | None = None
    scopes: tuple[str, ...] = DEFAULT_TOKEN_SCOPES

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str | None) -> str | None:
        if v is not None and v not in TENANT_KINDS:
            raise ValueError(f"kind {v!r} is not one of {', '.join(TENANT_KINDS)}")
        return v

    @field_validator("scopes")
    @classmethod
    def _read_only(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("a configured token needs at least one scope, e.g. 'read:telemetry'")
        for scope in v:
            if not _SCOPE.fullmatch(scope) or scope.split(":")[0] not in ("read", "write", "admin"):
                raise ValueError(f"scope {scope!r} is not '<action>:<resource>'")
            if not scope.startswith("read:"):
                raise ValueError(
                    f"scope {scope!r}: a configured token only reads; issue an identity API "
                    "token (tally admin token issue) to write or administer"
                )
            if scope not in READ_SCOPES:
                raise ValueError(f"scope {scope!r} names no resource; one of {sorted(READ_SCOPES)}")
        return tuple(sorted(set(v)))

    @property
    def kind_hint(self) -> str | None:
        """The kind this token's configuration names (``kind``, or ``regulator`` for the
        older ``role = "regulator"``), or None."""
        return self.kind or ("regulator" if self.role == "regulator" else None)


class LedgerSettings(BaseModel):
    """``[cloud.ledger]``: the consortium ledger the cloud anchors its batches on, reached
    through member peers over HTTP(S). ``org`` (default: the cloud's ``org``) must be a member
    of the genesis and ``key_file`` its member key. For peers served over mutual TLS,
    ``ca_file`` is the CA their certificates chain to and ``client_cert_file`` /
    ``client_key_file`` the certificate the cloud presents (both or neither)."""

    model_config = ConfigDict(extra="forbid")

    genesis: Path
    org: str = ""
    key_file: Path
    peers: dict[str, str] = Field(min_length=1)
    timeout_s: float = Field(default=15.0, gt=0)
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    @model_validator(mode="after")
    def _client_pair(self) -> LedgerSettings:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together (both or neither)")
        return self


class IdentitySettings(IdentityPolicy):
    """``[cloud.identity]``: the identity store and audit log on the cloud database, and the
    policy's numbers (:class:`~tally.cloud.identity.IdentityPolicy`). ``enabled`` defaults to
    whether the listener serves HTTPS: the session cookie is ``Secure`` and passwords and
    tokens must not cross the network in clear (set it to true behind a TLS proxy)."""

    enabled: bool | None = None

    @property
    def policy(self) -> IdentityPolicy:
        return IdentityPolicy(**self.model_dump(exclude={"enabled"}))


class AuditSettings(BaseModel):
    """``[cloud.audit]``: the audit log's suite (default: the trust file's) and how often its
    head is anchored on the ledger (``[cloud.ledger]``): once ``anchor_every_n`` entries are
    unanchored or the oldest has waited ``anchor_every_ms``."""

    model_config = ConfigDict(extra="forbid")

    suite: str | None = Field(default=None, pattern=r"^(intl|gm)$")
    anchor_every_n: int = Field(default=100, ge=1)
    anchor_every_ms: int = Field(default=60_000, ge=1)


class KeysSettings(BaseModel):
    """``[cloud.keys]``: encryption at rest. ``keyring_file`` is a keyring
    (:class:`~tally.cloud.keyring.LocalKeyring`, ``tally admin keyring create``) opened with
    ``TALLY_KEYRING_PASSPHRASE``; ``suite`` is the suite of data keys created from now on
    (default: the keyring's)."""

    model_config = ConfigDict(extra="forbid")

    keyring_file: Path
    suite: str | None = Field(default=None, pattern=r"^(intl|gm)$")

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in data:
                if "passphrase" in str(key).lower() or "password" in str(key).lower():
                    raise ValueError(
                        f"{key}: the keyring passphrase is read from {KEYRING_PASSPHRASE_ENV} "
                        "only, never from the configuration"
                    )
        return data


class ApiSettings(BaseModel):
    """``[cloud.api]``: the platform API (``/v1/receipts`` …, :mod:`tally.cloud.api`) over
    the read model, served when the identity store is enabled and ``enabled`` is true."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class CloudSettings(BaseModel):
    """Settings of the cloud service (``[cloud]``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default="cloud", min_length=1)
    org: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    data_dir: Path = Path("data")
    database_url: str = ""
    key_file: Path | None = None
    trust_file: Path | None = None
    registrations_dir: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    api_tokens: list[ApiToken] = Field(default_factory=list)
    online_window_s: int = Field(default=300, gt=0)
    max_upload_bytes: int = Field(default=16 << 20, gt=0)
    anchor_retry_ms: int = Field(default=500, gt=0)
    anchor_hold_ms: int = Field(default=30_000, ge=0)
    ledger: LedgerSettings | None = None
    metrics_token: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    keys: KeysSettings | None = None
    api: ApiSettings = Field(default_factory=ApiSettings)
    max_header_bytes: int = Field(default=16 << 10, ge=1024, le=1 << 20)
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    keep_alive_s: int = Field(default=5, ge=1, le=3600)
    max_connections: int = Field(default=1000, ge=1)

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _lower_digest(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _defaults(self) -> CloudSettings:
        if self.ledger is not None and not self.ledger.org:
            self.ledger.org = self.org
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'cloud.db'}"
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        seen: dict[str, int] = {}
        for i, t in enumerate(self.api_tokens):
            if t.sha256 in seen:
                raise ValueError(
                    f"api_tokens[{i}] has the same sha256 as api_tokens[{seen[t.sha256]}]"
                )
            seen[t.sha256] = i
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def identity_enabled(self) -> bool:
        """Whether the cloud keeps an identity store and an audit log (see IdentitySettings)."""
        enabled = self.identity.enabled
        return self.tls if enabled is None else enabled


def load_settings(data: Mapping[str, Any], source: str = "config") -> CloudSettings:
    """Validate the ``[cloud]`` section of loaded configuration ``data``.

    A top-level ``data_dir`` is used when the section does not set its own. Raises
    :class:`tally.config.ConfigError`.
    """
    raw = data.get("cloud", {})
    if isinstance(raw, Mapping) and "data_dir" not in raw and "data_dir" in data:
        data = {**data, "cloud": {**raw, "data_dir": data["data_dir"]}}
    return config.section(data, "cloud", CloudSettings, source)
