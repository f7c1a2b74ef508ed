"""Membership changes as the peers see them. Four members run the toy contract (any two
endorse) and the membership contract (three of four endorse). The consortium revokes
logistics member d's key: from that block on, d can neither create nor endorse
transactions (revoked_key) nor sign checkpoints; then d gets a new key, restarts with it
and is back. Finally the toy policy is tightened by a transaction, and a transaction with
two endorsements no longer meets it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tally.crypto import INTL, SigningKey, parse_sign1
from tally.ledger.client import Client
from tally.ledger.consortium import Consortium
from tally.ledger.contract import Context, Contract, Registry, function
from tally.ledger.contracts.membership import Membership
from tally.ledger.errors import EndorsementFailed
from tally.ledger.formats import Endorsement, decode_endorsement
from tally.ledger.genesis import Ordering

MEMBERS = [("a", ["bank"]), ("b", ["core_enterprise"]), ("c", ["warehouse"]), ("d", ["logistics"])]


class Toy(Contract):
    name = "toy"

    @function
    def put(self, ctx: Context, key: str, value: Any) -> Any:
        ctx.put(key, value)
        return value


@pytest.fixture
async def c(tmp_path: Path) -> AsyncIterator[Consortium]:
    cons = await Consortium.create(
        tmp_path,
        members=MEMBERS,
        policies={
            "toy.*": "2-OF(org:a, org:b, org:c, org:d)",
            "membership.*": "3-OF(org:a, org:b, org:c, org:d)",
        },
        quorum=3,
        ordering=Ordering("solo", 50, 10),
        contracts=Registry(Toy(), Membership()),
    )
    try:
        yield cons
    finally:
        await cons.close()


def as_org(c: Consortium, endorsement: bytes, org: str) -> bytes:
    """The same endorsement content signed by ``org``'s current key."""
    e = decode_endorsement(parse_sign1(endorsement).payload)
    return Endorsement(e.tx, org, e.reads, e.writes, e.result, e.error).sign(c.keys[org])


async def test_a_revoked_key_is_shut_out_until_rotated(c: Consortium) -> None:
    revoked = await c.submit("membership", "revoke_key", ["d"], creator="a")
    assert revoked.valid, revoked.reason
    await c.wait_height(revoked.height)
    assert c.peers["a"].member_view().revoked == {"d": revoked.height}

    # d's own proposals are refused by the endorsing peers ...
    with pytest.raises(EndorsementFailed, match="revoked"):
        c.endorse("toy", "put", ["k", 1], creator="d")
    # ... and, endorsed blindly by a and b, refused at validation
    proposal, _ = c.client("d").propose("toy", "put", ["k", 1])
    tx_id = INTL.hash(proposal)
    blind = [Endorsement(tx_id, o, (), (("k", 1),), 1, "").sign(c.keys[o]) for o in "ab"]
    r = await c.submit_tx(Client.transaction(proposal, blind))
    assert r.code == "revoked_key" and "creator 'd'" in r.reason

    # d's endorsement of a's proposal is refused too
    proposal, (ea,) = c.endorse("toy", "put", ["k", 2], creator="a", endorsers=["a"])
    r = await c.submit_tx(Client.transaction(proposal, [ea, as_org(c, ea, "d")]))
    assert r.code == "revoked_key" and "'d' is revoked" in r.reason

    # d's peer still signs checkpoints with the revoked key: they are not counted
    assert r.final_checkpoint is not None and "d" not in r.final_checkpoint.signers
    await c.wait_for(lambda: any(e.signer == "d" for e in c.invalid_checkpoints))

    # a new key for d; d restarts holding it and signs checkpoints again
    new_key = SigningKey.generate(INTL)
    rotated = await c.submit("membership", "rotate_key", ["d", new_key.public.raw], creator="b")
    assert rotated.valid, rotated.reason
    c.keys["d"] = new_key
    await c.restart_peer("d")
    r = await c.submit("toy", "put", ["k", 3], creator="d")
    assert r.valid
    await c.wait_for(lambda: "d" in c.collector.signers(r.height))
    assert c.collector.signers(r.height)["d"] == r.final_checkpoint.payload  # type: ignore[union-attr]


async def test_a_policy_changed_by_transaction_applies_from_then_on(c: Consortium) -> None:
    proposal, two = c.endorse("toy", "put", ["k", 1], creator="a", endorsers=["a", "b"])
    changed = await c.submit(
        "membership", "set_policy", ["toy.*", "3-OF(org:a, org:b, org:c, org:d)"], creator="c"
    )
    assert changed.valid, changed.reason
    r = await c.submit_tx(Client.transaction(proposal, two))
    assert r.code == "policy_not_met" and "3-OF" in r.reason.upper()
    r = await c.submit("toy", "put", ["k", 2], creator="a")  # the client now asks three
    assert r.valid
