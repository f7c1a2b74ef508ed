"""The ledger's errors. Each says when it is raised and carries its data.

Validation of an ordered transaction never raises: a peer marks the transaction with one of
the validation codes of :mod:`tally.ledger.peer` and a reason. Errors here are for what a
peer refuses outright: an invalid proposal at endorsement, a block that does not chain, a
transaction log that does not match the state, a checkpoint that does not verify.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error raised by :mod:`tally.ledger`."""


class ProposalRejected(LedgerError):
    """Raised by ``Peer.endorse`` when a proposal is not one the peer will execute.

    ``code`` is the validation code the transaction would get (``"malformed"``,
    ``"bad_creator_signature"``, ``"revoked_key"``, ``"wrong_chain"``, ``"duplicate_tx"``),
    ``reason`` says what exactly is wrong.
    """

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"proposal rejected ({code}): {reason}")


class BlockRejected(LedgerError):
    """Raised by ``Peer.commit`` when a block cannot be the peer's next block; nothing of it
    is committed. ``height`` is the block's height as it claims."""

    def __init__(self, height: int, reason: str) -> None:
        self.height = height
        self.reason = reason
        super().__init__(f"block {height} rejected: {reason}")


class WrongBlockChain(BlockRejected):
    """Raised when a block names another chain id than the peer's genesis."""

    def __init__(self, height: int, expected: bytes, got: bytes) -> None:
        self.expected = expected
        self.got = got
        super().__init__(height, f"chain {got.hex()[:16]}…, want {expected.hex()[:16]}…")


class UnexpectedHeight(BlockRejected):
    """Raised when a block's height is not the peer's height + 1 (a gap or a repeat)."""

    def __init__(self, height: int, expected: int) -> None:
        self.expected = expected
        super().__init__(height, f"height {height}, want {expected}")


class WrongParent(BlockRejected):
    """Raised when a block's ``prev`` is not the hash of the peer's last block (or the chain
    id for height 1)."""

    def __init__(self, height: int, expected: bytes, got: bytes) -> None:
        self.expected = expected
        self.got = got
        super().__init__(height, f"prev {got.hex()[:16]}…, want {expected.hex()[:16]}…")


class BlockRootMismatch(BlockRejected):
    """Raised when a block's ``root`` is not the RFC 9162 root of its transactions: a
    transaction was changed, added, removed or reordered after ordering."""

    def __init__(self, height: int, expected: bytes, got: bytes) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            height, f"root {got.hex()[:16]}… but the transactions hash to {expected.hex()[:16]}…"
        )


class TxLogError(LedgerError):
    """Raised when a transaction log file is corrupt (other than a torn last record, which
    is dropped on open) or does not match the peer's state. ``path`` names the file."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"transaction log {path}: {reason}")


class CheckpointInvalid(LedgerError):
    """Raised when a signed checkpoint is malformed, from a non-member, badly signed or for
    another chain. ``signer`` is the claimed signer when known."""

    def __init__(self, reason: str, signer: str | None = None) -> None:
        self.reason = reason
        self.signer = signer
        who = f" (signer {signer!r})" if signer else ""
        super().__init__(f"invalid checkpoint{who}: {reason}")


class NotFinal(LedgerError):
    """Raised when a set of checkpoint signatures does not reach the checkpoint quorum on
    identical payload bytes. ``signers`` are the distinct orgs that signed the best payload."""

    def __init__(self, height: int, signers: tuple[str, ...], quorum: int) -> None:
        self.height = height
        self.signers = signers
        self.quorum = quorum
        super().__init__(
            f"checkpoint {height}: {len(signers)} of {quorum} signatures "
            f"({', '.join(signers) or 'none'})"
        )


class EndorsementFailed(LedgerError):
    """Raised by a client when it cannot gather endorsements satisfying a policy: a peer
    refused the proposal, too few peers are available, or the endorsements disagree.
    ``tx_id`` is the proposal's transaction id."""

    def __init__(self, tx_id: bytes, reason: str) -> None:
        self.tx_id = tx_id
        self.reason = reason
        super().__init__(f"endorsement of {tx_id.hex()[:16]}… failed: {reason}")


class TxTimeout(LedgerError):
    """Raised when a submitted transaction is not committed (or its checkpoint not final)
    within the deadline. ``stage`` is what was still awaited: "commit" or "checkpoint"."""

    def __init__(self, tx_id: bytes, stage: str, seconds: float) -> None:
        self.tx_id = tx_id
        self.stage = stage
        self.seconds = seconds
        super().__init__(f"transaction {tx_id.hex()[:16]}…: no {stage} within {seconds:g} s")
