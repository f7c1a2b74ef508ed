"""The ledger's signed and hashed objects. ``docs/formats.md`` (§20 onwards) is normative.

All signed objects are COSE_Sign1 (:mod:`tally.crypto.cose`) over deterministic CBOR, with
``kid`` = the signing member organisation's id. ``H`` is the consortium suite's hash.

Genesis — the root of trust. A genesis file is ``{"v":1, "kind":"tally.genesis",
"body": bstr, "sigs": [bstr]}`` where ``body`` is the CBOR of::

    {"v":1, "name":tstr, "suite":"intl"|"gm", "t":int,
     "members": {org => {"roles":[tstr], "pub":bstr}},
     "policies": {"<contract>.<fn>" => policy},      ; "<contract>.*" is the contract's default
     "checkpoint_quorum": uint,
     "ordering": {"kind":"solo"|"jetstream", "max_txs":uint, "max_ms":uint}}

and each of ``sigs`` is a COSE_Sign1 (cty ``application/tally.genesis+cbor``) over ``body``
by one member; every member must sign. The chain id is ``H(body)``.

Policy (CBOR arrays)::

    ["org", org] | ["role", role] | ["and", policy, ...] | ["or", policy, ...]
    | ["k_of", k, policy, ...]

Proposal (cty ``application/tally.proposal+cbor``, kid = creator)::

    {"v":1, "chain":bstr, "contract":tstr, "fn":tstr, "args":[any], "creator":tstr,
     "nonce":bstr, "t":int}

The transaction id is ``H(proposal COSE bytes)``.

Endorsement (cty ``application/tally.endorsement+cbor``, kid = endorsing member)::

    {"v":1, "tx":bstr, "org":tstr, "reads":[[key, version | null]],
     "writes":[[key, value | null]], "result":any, "error":tstr}

``version`` is ``[height, index]`` of the transaction that last wrote the key; ``null`` in
reads means "absent", in writes "delete". ``error`` is "" when the contract succeeded.
Reads and writes are sorted by key. Every endorsement of one transaction must agree on
everything but ``org``.

Transaction (unsigned; everything inside is signed)::

    {"v":1, "proposal":bstr, "endorsements":[bstr]}

Block::

    {"v":1, "chain":bstr, "height":uint, "prev":bstr, "t":int, "n":uint, "root":bstr,
     "txs":[bstr]}

``txs`` are transaction CBOR bytes; ``root`` is the RFC 9162 root (hash ``H``) over them as
leaves; ``prev`` is the previous block's hash (the chain id for height 1). The block hash is
``H`` of the CBOR of the block without ``"txs"`` (its header).

Checkpoint (cty ``application/tally.checkpoint+cbor``, kid = signing member)::

    {"v":1, "chain":bstr, "height":uint, "block":bstr, "state":bstr, "size":uint,
     "root":bstr}

``size`` and ``root`` describe the transaction log: every ordered transaction of blocks
1..height in order (valid or not), RFC 9162 over the transaction CBOR bytes. ``state`` is the
state commitment after block ``height``::

    state_0 = H("tally.state" || chain)
    state_h = H("tally.state" || state_{h-1} || H(CBOR([[key, value | null, version], ...])))

over the writes of the block's valid transactions, in order. A checkpoint signed by
``checkpoint_quorum`` distinct members over identical payload bytes is final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tally import formats as F
from tally.crypto import DecodeError, SigningKey, Suite, cbor, sign1

CTY_GENESIS = "application/tally.genesis+cbor"
CTY_PROPOSAL = "application/tally.proposal+cbor"
CTY_ENDORSEMENT = "application/tally.endorsement+cbor"
CTY_CHECKPOINT = "application/tally.checkpoint+cbor"

ROLES = ("bank", "core_enterprise", "supplier", "warehouse", "logistics", "regulator", "government")

Version = tuple[int, int]
"""(height, index in block) of the transaction that last wrote a key."""


def _uint(obj: dict[str, Any], name: str, where: str) -> int:
    v: int = F.field(obj, name, int, where)
    if v < 0:
        raise DecodeError(where, f"field {name!r} must not be negative")
    return v


def _version(v: Any, where: str) -> Version | None:
    if v is None:
        return None
    if (
        not isinstance(v, list | tuple)
        or len(v) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
    ):
        raise DecodeError(where, "a version is [height, index] or null")
    return (v[0], v[1])


@dataclass(frozen=True)
class Proposal:
    chain: bytes
    contract: str
    fn: str
    args: tuple[Any, ...]
    creator: str
    nonce: bytes
    t: int

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {"v": F.FORMAT_VERSION, "chain": self.chain, "contract": self.contract,
             "fn": self.fn, "args": list(self.args), "creator": self.creator,
             "nonce": self.nonce, "t": self.t}
        )  # fmt: skip

    def sign(self, key: SigningKey) -> bytes:
        return sign1(key, CTY_PROPOSAL, self.creator, self.to_cbor())


def decode_proposal(payload: bytes) -> Proposal:
    where = "proposal"
    keys = {"v", "chain", "contract", "fn", "args", "creator", "nonce", "t"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    return Proposal(
        chain=F.field(obj, "chain", bytes, where),
        contract=F.field(obj, "contract", str, where),
        fn=F.field(obj, "fn", str, where),
        args=tuple(F.field(obj, "args", (list, tuple), where)),
        creator=F.field(obj, "creator", str, where),
        nonce=F.field(obj, "nonce", bytes, where),
        t=F.field(obj, "t", int, where),
    )


@dataclass(frozen=True)
class Endorsement:
    tx: bytes
    org: str
    reads: tuple[tuple[str, Version | None], ...]
    writes: tuple[tuple[str, Any], ...]
    result: Any = None
    error: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "v": F.FORMAT_VERSION, "tx": self.tx, "org": self.org,
            "reads": [[k, list(v) if v is not None else None] for k, v in self.reads],
            "writes": [[k, v] for k, v in self.writes],
            "result": self.result, "error": self.error,
        }  # fmt: skip

    def to_cbor(self) -> bytes:
        return cbor.encode(self.body())

    def agreement(self) -> bytes:
        """The bytes every endorsement of one transaction must share (all but ``org``)."""
        b = self.body()
        del b["org"]
        return cbor.encode(b)

    def sign(self, key: SigningKey) -> bytes:
        return sign1(key, CTY_ENDORSEMENT, self.org, self.to_cbor())


def decode_endorsement(payload: bytes) -> Endorsement:
    where = "endorsement"
    keys = {"v", "tx", "org", "reads", "writes", "result", "error"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    reads: list[tuple[str, Version | None]] = []
    for r in F.field(obj, "reads", (list, tuple), where):
        if not isinstance(r, list | tuple) or len(r) != 2 or not isinstance(r[0], str):
            raise DecodeError(where, "each read is [key, version | null]")
        reads.append((r[0], _version(r[1], where)))
    writes: list[tuple[str, Any]] = []
    for w in F.field(obj, "writes", (list, tuple), where):
        if not isinstance(w, list | tuple) or len(w) != 2 or not isinstance(w[0], str):
            raise DecodeError(where, "each write is [key, value | null]")
        writes.append((w[0], w[1]))
    for seq, what in ((reads, "reads"), (writes, "writes")):
        ks = [k for k, _ in seq]
        if ks != sorted(ks) or len(set(ks)) != len(ks):
            raise DecodeError(where, f"{what} must be sorted by key without repeats")
    return Endorsement(
        tx=F.field(obj, "tx", bytes, where),
        org=F.field(obj, "org", str, where),
        reads=tuple(reads),
        writes=tuple(writes),
        result=obj["result"],
        error=F.field(obj, "error", str, where),
    )


@dataclass(frozen=True)
class Transaction:
    proposal: bytes
    endorsements: tuple[bytes, ...]

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {"v": F.FORMAT_VERSION, "proposal": self.proposal,
             "endorsements": list(self.endorsements)}
        )  # fmt: skip


def decode_transaction(data: bytes) -> Transaction:
    where = "transaction"
    obj = F.check_keys(
        cbor.decode(data, where=where), {"v", "proposal", "endorsements"}, set(), where
    )
    ends = F.field(obj, "endorsements", (list, tuple), where)
    if not all(isinstance(e, bytes) for e in ends):
        raise DecodeError(where, "endorsements must be byte strings")
    return Transaction(F.field(obj, "proposal", bytes, where), tuple(ends))


@dataclass(frozen=True)
class Block:
    chain: bytes
    height: int
    prev: bytes
    t: int
    root: bytes
    txs: tuple[bytes, ...] = field(default=())

    def header(self) -> dict[str, Any]:
        return {"v": F.FORMAT_VERSION, "chain": self.chain, "height": self.height,
                "prev": self.prev, "t": self.t, "n": len(self.txs), "root": self.root}  # fmt: skip

    def hash(self, suite: Suite) -> bytes:
        return suite.hash(cbor.encode(self.header()))

    def to_cbor(self) -> bytes:
        return cbor.encode({**self.header(), "txs": list(self.txs)})


def decode_block(data: bytes, max_size: int = 64 << 20) -> Block:
    where = "block"
    keys = {"v", "chain", "height", "prev", "t", "n", "root", "txs"}
    obj = F.check_keys(cbor.decode(data, where=where, max_size=max_size), keys, set(), where)
    txs = F.field(obj, "txs", (list, tuple), where)
    if not all(isinstance(t, bytes) for t in txs):
        raise DecodeError(where, "txs must be byte strings")
    if _uint(obj, "n", where) != len(txs):
        raise DecodeError(where, f"n {obj['n']} but {len(txs)} transactions")
    return Block(
        chain=F.field(obj, "chain", bytes, where),
        height=_uint(obj, "height", where),
        prev=F.field(obj, "prev", bytes, where),
        t=F.field(obj, "t", int, where),
        root=F.field(obj, "root", bytes, where),
        txs=tuple(txs),
    )


@dataclass(frozen=True)
class Checkpoint:
    chain: bytes
    height: int
    block: bytes
    state: bytes
    size: int
    root: bytes

    def to_cbor(self) -> bytes:
        return cbor.encode(
            {"v": F.FORMAT_VERSION, "chain": self.chain, "height": self.height,
             "block": self.block, "state": self.state, "size": self.size, "root": self.root}
        )  # fmt: skip

    def sign(self, key: SigningKey, org: str) -> bytes:
        return sign1(key, CTY_CHECKPOINT, org, self.to_cbor())


def decode_checkpoint(payload: bytes) -> Checkpoint:
    where = "checkpoint"
    keys = {"v", "chain", "height", "block", "state", "size", "root"}
    obj = F.check_keys(cbor.decode(payload, where=where), keys, set(), where)
    return Checkpoint(
        chain=F.field(obj, "chain", bytes, where),
        height=_uint(obj, "height", where),
        block=F.field(obj, "block", bytes, where),
        state=F.field(obj, "state", bytes, where),
        size=_uint(obj, "size", where),
        root=F.field(obj, "root", bytes, where),
    )


def state_step(suite: Suite, prev: bytes, writes: list[tuple[str, Any, Version]]) -> bytes:
    """The state commitment after applying ``writes`` (in order) to commitment ``prev``."""
    body = cbor.encode([[k, v, list(ver)] for k, v, ver in writes])
    return suite.hash(b"tally.state" + prev + suite.hash(body))


def state_zero(suite: Suite, chain: bytes) -> bytes:
    return suite.hash(b"tally.state" + chain)
