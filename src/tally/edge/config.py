"""The ``[edge]`` configuration section, validated with pydantic.

Example (TOML)::

    [edge]
    id = "edge-wh1"
    org = "warehouse-co"
    site = "wh1"
    suite = "intl"
    key_file = "keys/edge-wh1.key"          # encrypted; passphrase from TALLY_KEY_PASSPHRASE
    data_dir = "var/edge"                   # outbox_path defaults to <data_dir>/outbox.sqlite
    cloud_url = "https://cloud.example:8443"
    cloud_ca_file = "ca.pem"
    cloud_client_cert_file = "tls/edge-wh1.pem"     # mutual TLS (tally certs issue --kind client)
    cloud_client_key_file = "tls/edge-wh1-key.pem"
    trust_file = "trust.cbor"
    registrations_dir = "registrations"     # *.cose registrations and revocations
    window_ms = 1000
    orders_url = "https://peer-wh.internal:9101"  # the warehouse's own peer: release orders
    orders_interval_ms = 5000
    orders_ca_file = "tls/ca.pem"                   # the peer's CA
    orders_client_cert_file = "tls/edge-wh1.pem"    # for a peer with mutual TLS
    orders_client_key_file = "tls/edge-wh1-key.pem"
    [edge.mqtt]
    host = "127.0.0.1"
    port = 1883
    [[edge.modbus]]
    device = "meter-7"
    host = "10.0.0.7"
    port = 502
    unit = 1
    labels = {line = "L1"}

Every field can be overridden from the environment, e.g. ``TALLY_EDGE__WINDOW_MS=500``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tally import config as tally_config

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Model):
    """The MQTT adapter's broker connection (MQTT 3.1.1 or 5)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535, description="0 turns the MQTT adapter off")
    topic: str = "tally/+/+/up"
    version: Literal["3.1.1", "5"] = "3.1.1"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    client_id: str | None = None
    tls_ca_file: Path | None = None
    """TLS to the broker, checked against this CA (TLS is on when any tls_* key is set)."""
    tls_cert_file: Path | None = None
    """The client certificate (and key) for a broker that requires one."""
    tls_key_file: Path | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) else v

    @model_validator(mode="after")
    def _client_pair(self) -> MqttConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("mqtt.tls_cert_file and mqtt.tls_key_file must be given together")
        return self


class ListenConfig(_Model):
    """A listening adapter (HTTP or CoAP); port 0 turns it off."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 turns the adapter off")


class HttpListenConfig(ListenConfig):
    """The HTTP adapter: HTTPS with ``tls_cert_file``/``tls_key_file``, and with
    ``tls_client_ca_file`` only devices presenting a certificate of that CA (mutual TLS)."""

    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    @model_validator(mode="after")
    def _tls(self) -> HttpListenConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("http.tls_cert_file and http.tls_key_file must be given together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("http.tls_client_ca_file needs http.tls_cert_file and tls_key_file")
        return self


class ModbusRegister(_Model):
    """A custom register: ``count`` 16-bit registers at ``address``, unsigned (or, with
    ``signed``, two's complement) big-endian, times ``scale``, reported as ``name`` in ``unit``.

    Only for meters that do not follow the standard tally meter map
    (:mod:`tally.device.modbus_meter`); leave ``registers`` empty for those that do.
    """

    name: str = Field(min_length=1, description="the measurement's quantity name")
    address: int = Field(ge=0, le=65535)
    count: int = Field(default=1, ge=1, le=4)
    signed: bool = False
    scale: Decimal = Decimal(1)
    unit: str = Field(min_length=1)


class ModbusDevice(_Model):
    """A Modbus TCP meter the edge polls and signs for (its registration has assurance edge)."""

    device: str = Field(pattern=_ID)
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255)
    register_kind: Literal["input", "holding"] = "input"
    interval_ms: int = Field(default=10_000, ge=100, le=86_400_000)
    timeout_ms: int = Field(default=2_000, ge=50, le=60_000)
    labels: dict[str, str] = Field(default_factory=dict)
    registers: tuple[ModbusRegister, ...] = ()


class EdgeConfig(_Model):
    """The ``[edge]`` section. Times are milliseconds, sizes bytes."""

    id: str = Field(pattern=_ID)
    org: str = Field(pattern=_ID)
    site: str = Field(pattern=_ID)
    suite: Literal["intl", "gm"] = "intl"
    key_file: Path | None = None
    data_dir: Path = Path("var/edge")
    outbox_path: Path | None = None
    outbox_synchronous: Literal["full", "normal"] = "full"
    cloud_url: str | None = None
    cloud_ca_file: Path | None = None
    cloud_client_cert_file: Path | None = None
    cloud_client_key_file: Path | None = None
    trust_file: Path | None = None
    registrations_dir: Path | None = None
    window_ms: int = Field(1000, ge=10, le=3_600_000)
    max_batch_items: int = Field(5000, ge=1, le=1_000_000)
    outbox_max_bytes: int = Field(1 << 30, ge=4096)
    summary_window_ms: int = Field(60_000, ge=10, le=86_400_000)
    gap_grace_ms: int = Field(30_000, ge=0, le=86_400_000)
    clock_skew_tolerance_ms: int = Field(120_000, ge=0)
    heartbeat_timeout_ms: int = Field(300_000, ge=1000)
    dedup_retention_ms: int = Field(86_400_000, ge=0)
    quarantine_max_rows: int = Field(10_000, ge=1)
    uplink_timeout_ms: int = Field(30_000, ge=100)
    uplink_backoff_ms: int = Field(500, ge=1)
    uplink_backoff_cap_ms: int = Field(30_000, ge=1)
    refused_retry_ms: int = Field(300_000, ge=1)
    orders_url: str | None = None
    """The base URL of the warehouse's own ledger peer; release orders of the site are read
    from it (``tally.edge.orders``). Unset: nothing polls."""
    orders_interval_ms: int = Field(5000, ge=100, le=3_600_000)
    orders_ca_file: Path | None = None
    """The CA an ``https://`` peer's certificate must chain to (else the system's CAs)."""
    orders_client_cert_file: Path | None = None
    """The client certificate (and key) presented to a peer with mutual TLS."""
    orders_client_key_file: Path | None = None
    mqtt: MqttConfig = Field(default_factory=lambda: MqttConfig(port=0))
    http: HttpListenConfig = Field(default_factory=HttpListenConfig)
    coap: ListenConfig = Field(default_factory=ListenConfig)
    modbus: tuple[ModbusDevice, ...] = ()
    rules: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("cloud_url", "orders_url")
    @classmethod
    def _http_url(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"{info.field_name} must start with http:// or https://")
        return v.rstrip("/") if v else v

    @model_validator(mode="after")
    def _consistent(self) -> EdgeConfig:
        if self.uplink_backoff_cap_ms < self.uplink_backoff_ms:
            raise ValueError("uplink_backoff_cap_ms must be at least uplink_backoff_ms")
        devices = [m.device for m in self.modbus]
        if len(set(devices)) != len(devices):
            raise ValueError("each modbus device may appear only once")
        if self.cloud_ca_file is not None and not (self.cloud_url or "").startswith("https://"):
            raise ValueError("cloud_ca_file is only used with an https:// cloud_url")
        if (self.cloud_client_cert_file is None) != (self.cloud_client_key_file is None):
            raise ValueError(
                "cloud_client_cert_file and cloud_client_key_file must be given together"
            )
        if self.cloud_client_cert_file is not None and not (self.cloud_url or "").startswith(
            "https://"
        ):
            raise ValueError("cloud_client_cert_file is only used with an https:// cloud_url")
        if (self.orders_client_cert_file is None) != (self.orders_client_key_file is None):
            raise ValueError(
                "orders_client_cert_file and orders_client_key_file must be given together"
            )
        orders_tls = self.orders_ca_file or self.orders_client_cert_file
        if orders_tls is not None and not (self.orders_url or "").startswith("https://"):
            raise ValueError("orders_ca_file and orders_client_* are only used with an "
                             "https:// orders_url")  # fmt: skip
        return self

    @property
    def outbox_file(self) -> Path:
        """Where the outbox database lives: ``outbox_path`` or ``<data_dir>/outbox.sqlite``."""
        return self.outbox_path if self.outbox_path is not None else self.data_dir / "outbox.sqlite"


def load_edge_config(data: Mapping[str, Any], source: str = "config") -> EdgeConfig:
    """Validate the ``[edge]`` section of loaded configuration ``data``.

    Raises :class:`tally.config.ConfigError` listing every problem with its key.
    """
    return tally_config.section(data, "edge", EdgeConfig, source)
