"""The demo's organisations: the consortium's members and their roles."""

from __future__ import annotations

ORG_BANK = "bank"
ORG_BANK_B = "bank-b"
ORG_CORE = "core"
ORG_WAREHOUSE = "warehouse"
ORG_LOGISTICS = "logistics"
ORG_REGULATOR = "regulator"
ORG_ROLES = {
    ORG_BANK: "bank",
    ORG_BANK_B: "bank",
    ORG_CORE: "core_enterprise",
    ORG_WAREHOUSE: "warehouse",
    ORG_LOGISTICS: "logistics",
    ORG_REGULATOR: "regulator",
}
"""The consortium's members and their roles; the cloud is the first bank's, the second bank
is the one that tries to take a receipt already pledged, and the core enterprise issues the
receivable notes its suppliers pass down their tiers."""
ORGS = tuple(ORG_ROLES)

__all__ = [
    "ORGS",
    "ORG_BANK",
    "ORG_BANK_B",
    "ORG_CORE",
    "ORG_LOGISTICS",
    "ORG_REGULATOR",
    "ORG_ROLES",
    "ORG_WAREHOUSE",
]
