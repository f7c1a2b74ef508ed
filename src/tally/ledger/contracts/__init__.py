"""The ledger's system contracts: membership, the device/edge/cloud registry, anchoring.

Register them with every peer::

    registry = Registry(*system_contracts())

========================  ================================================  ===============
contract                  functions                                         module
========================  ================================================  ===============
``membership``            add_member, rotate_key, revoke_key, set_policy    :mod:`.membership`
``registry``              register, revoke                                  :mod:`.registry`
``anchoring``             anchor_batch, anchor_record                       :mod:`.anchoring`
========================  ================================================  ===============

Each is governed by the genesis policy ``<contract>.<fn>`` or ``<contract>.*`` (as changed
by ``membership.set_policy``). Every function checks its arguments itself and refuses with a
:class:`~tally.ledger.contract.ContractError` whose message says exactly what is wrong.

State key layout (build keys with :mod:`.keys`; values are deterministic CBOR)::

    member/<org>                   {"roles":[tstr], "pub":bstr, "revoked":bool, "t":int}
    policy/<contract>.<fn>         policy, CBOR form (fn may be "*")
    reg/<id>                       {"kind", "org", "site", "profile", "suite", "pub",
                                    "assurance", "t", "cose": the signed registration,
                                    "revoked": null / {"t", "reason", "cose"}}
    anchor/<edge>                  {"ctr":uint, "hash":bstr}            the last anchored batch
    anchor/<edge>/<ctr:020d>       {"hash", "root", "n", "t0", "t1"}    one anchored batch
    record/<hex salted hash>       {"kind":tstr, "by":tstr, "t":int}    an anchored record

Absent ``member/<org>`` and ``policy/<name>`` mean "as in the genesis":
:func:`~.membership.members_view`, :func:`~.membership.revoked_view` and
:func:`~.membership.policy_view` merge the two for a peer. A revocation written to
``member/<org>`` takes effect from the block that commits it (the version of the key).
"""

from __future__ import annotations

from tally.ledger.contract import Contract
from tally.ledger.contracts.anchoring import Anchoring
from tally.ledger.contracts.membership import (
    MemberRecord,
    Membership,
    member_records,
    members_view,
    policy_view,
    revoked_view,
)
from tally.ledger.contracts.registry import DeviceRegistry

SYSTEM_CONTRACTS = ("membership", "registry", "anchoring")


def system_contracts() -> list[Contract]:
    """A fresh instance of each system contract, in the order of :data:`SYSTEM_CONTRACTS`."""
    return [Membership(), DeviceRegistry(), Anchoring()]


__all__ = [
    "SYSTEM_CONTRACTS",
    "Anchoring",
    "DeviceRegistry",
    "MemberRecord",
    "Membership",
    "member_records",
    "members_view",
    "policy_view",
    "revoked_view",
    "system_contracts",
]
