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

    [[cloud.api_tokens]]
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    org = "bank"
    role = "regulator"

Tokens are never stored in plaintext: ``sha256`` (and ``metrics_token``, which ``GET /metrics``
then requires as a bearer token) is the lower-case hex SHA-256 of the token's UTF-8 bytes
(``printf %s "$TOKEN" | sha256sum``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tally import config

READ_ALL_ROLES = frozenset({"regulator", "auditor"})
"""Roles whose tokens read every organisation's data."""


def token_digest(token: str) -> str:
    """The hex SHA-256 of a bearer token, as kept in ``api_tokens``."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(BaseModel):
    """One read-API token: its digest, the organisation it speaks for and its role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    org: str = Field(min_length=1)
    role: str = "member"

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @property
    def reads_all(self) -> bool:
        return self.role in READ_ALL_ROLES


class LedgerSettings(BaseModel):
    """``[cloud.ledger]``: the consortium ledger the cloud anchors its batches on, reached
    through member peers over HTTP. ``org`` (default: the cloud's ``org``) must be a member
    of the genesis and ``key_file`` its member key."""

    model_config = ConfigDict(extra="forbid")

    genesis: Path
    org: str = ""
    key_file: Path
    peers: dict[str, str] = Field(min_length=1)
    timeout_s: float = Field(default=15.0, gt=0)


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
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


def load_settings(data: Mapping[str, Any], source: str = "config") -> CloudSettings:
    """Validate the ``[cloud]`` section of loaded configuration ``data``.

    A top-level ``data_dir`` is used when the section does not set its own. Raises
    :class:`tally.config.ConfigError`.
    """
    raw = data.get("cloud", {})
    if isinstance(raw, Mapping) and "data_dir" not in raw and "data_dir" in data:
        data = {**data, "cloud": {**raw, "data_dir": data["data_dir"]}}
    return config.section(data, "cloud", CloudSettings, source)
