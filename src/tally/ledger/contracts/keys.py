"""The state keys of the system contracts (layout in :mod:`tally.ledger.contracts`).

Build keys with these functions rather than by hand, so that a reader of the state (a peer's
membership view, the cloud, a verifier) and the contracts agree byte for byte.
"""

from __future__ import annotations

MEMBER = "member/"
POLICY = "policy/"
REG = "reg/"
ANCHOR = "anchor/"
RECORD = "record/"

CTR_DIGITS = 20
"""Batch counters in keys are zero-padded to this many digits (a uint64 has at most 20), so
that a range over ``anchor/<edge>/`` comes back in counter order."""


def member_key(org: str) -> str:
    """``member/<org>``: a member organisation's current key, roles and revocation."""
    return MEMBER + org


def policy_key(name: str) -> str:
    """``policy/<contract>.<fn>`` (or ``<contract>.*``): an endorsement policy that replaces
    the genesis one of that name."""
    return POLICY + name


def reg_key(subject: str) -> str:
    """``reg/<id>``: the current registration of a device, edge or cloud."""
    return REG + subject


def anchor_key(edge: str) -> str:
    """``anchor/<edge>``: the edge's last anchored batch (counter and header hash)."""
    return ANCHOR + edge


def batch_key(edge: str, ctr: int) -> str:
    """``anchor/<edge>/<ctr, 20 digits>``: one anchored batch header of the edge."""
    return f"{ANCHOR}{edge}/{ctr:0{CTR_DIGITS}d}"


def record_key(salted_hash: bytes) -> str:
    """``record/<hex of the salted hash>``: an anchored business record."""
    return RECORD + salted_hash.hex()
