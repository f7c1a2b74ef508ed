"""The outcome of checking one proof bundle: a verdict made of named steps.

A :class:`Verdict` is ``ok`` only when every step passed. When a step fails, checking stops
there and ``reason`` is ``"<step name>: <detail>"`` of that step, e.g.::

    inclusion proof: root mismatch: header root 3f2a07c1…, calculated 9b1c44d0…

:meth:`Verdict.line` renders the one-line answer of ``tally verify`` (shown here on two
lines for a valid bundle)::

    VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#12
      — anchors: acme (pinned)
    INVALID: item signature: signature does not verify (signer 'site-1/lc-03', alg -8)

Checked against a consortium genesis, the anchors are the genesis members and the line
ends with the anchoring instead::

    VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#1
      anchored in tx 5 of checkpoint 7 (signed by acme, bank, wh-1, quorum 3 of 4)
      — genesis 3f2a07c19b1c44d0
    VALID reading … in batch edge-1#12, not anchored — genesis 3f2a07c19b1c44d0

and a bundle whose chain part was not checked (no genesis given) says so:
``… — anchors: acme, bank (pinned); chain part not checked (no genesis)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tally.device.envelope import Reading
from tally.edge.formats import Event, Gap, Summary

Item = Reading | Event | Gap | Summary


@dataclass(frozen=True)
class Step:
    """One check of the verification: its ``name``, whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    """What :func:`tally.verify.verifier.verify_bundle` concluded about one bundle.

    ``ok`` and ``reason`` are always set; the other fields are filled in as far as the
    checks got (a bundle that fails early leaves most of them ``None``).
    """

    ok: bool = False
    reason: str = ""
    steps: list[Step] = field(default_factory=list)
    suite: str | None = None
    item_kind: str | None = None
    """``reading``, ``heartbeat``, ``event``, ``gap`` or ``summary``."""
    signer: str | None = None
    """The ``kid`` that signed the item (device, edge or organisation id)."""
    device: str | None = None
    """The device the item is about (readings, heartbeats, gaps and summaries)."""
    assurance: str | None = None
    """``device``, ``edge`` or ``manual`` for readings and heartbeats; None otherwise."""
    boot: int | None = None
    ctr: int | None = None
    edge: str | None = None
    """The edge whose batch holds the item."""
    batch: int | None = None
    """The batch header's ``ctr``."""
    site: str | None = None
    index: int | None = None
    size: int | None = None
    root: bytes | None = None
    receipt_cloud: str | None = None
    """The cloud that signed the receipt, when the bundle carries one."""
    anchors: tuple[str, ...] = ()
    """The organisations whose root keys the verified registrations chain to."""
    anchors_pinned: bool = False
    """True when the anchors came from a trust file, False when taken from the bundle."""
    item: Item | None = None
    genesis: bytes | None = None
    """The chain id of the genesis the bundle was checked against (None: no genesis)."""
    chain: str | None = None
    """``anchored`` (the chain part verified), ``not anchored`` (no chain part, checked
    against a genesis), ``not checked`` (a chain part but no genesis); None when the bundle
    has no chain part and no genesis was given, or checking stopped before."""
    tx_index: int | None = None
    """The anchoring transaction's position in the checkpoint's transaction log."""
    tx_id: bytes | None = None
    checkpoint_height: int | None = None
    checkpoint_signers: tuple[str, ...] = ()
    quorum: int | None = None
    members: int | None = None
    """The number of genesis members."""
    endorsers: tuple[str, ...] = ()
    """The members that endorsed the anchoring transaction."""

    @property
    def subject(self) -> str:
        """What the item says, in words: ``site-1/lc-03 boot 0 ctr 41`` and the like."""
        it = self.item
        if isinstance(it, Reading):
            return f"{it.dev} boot {it.boot} ctr {it.ctr} (assurance {self.assurance})"
        if isinstance(it, Event):
            return f"{it.edge} seq {it.seq} rule {it.rule} ({it.sev})"
        if isinstance(it, Gap):
            return f"{it.dev} boot {it.boot} ctr {it.first}..{it.last} (certified by {it.edge})"
        if isinstance(it, Summary):
            return (
                f"{it.dev} boot {it.boot} ctr {it.first}..{it.last} n {it.n}"
                f" (condensed by {it.edge})"
            )
        return "?"

    def anchors_text(self) -> str:
        orgs = ", ".join(self.anchors) or "none"
        if self.anchors_pinned:
            return f"anchors: {orgs} (pinned)"
        return f"anchors not pinned: {orgs} (taken from the bundle)"

    def chain_text(self) -> str:
        """How the batch is anchored, and against which genesis (empty without one)."""
        if self.genesis is None:
            return ""
        g = f" — genesis {self.genesis.hex()[:16]}"
        if self.chain != "anchored":
            return ", not anchored" + g
        return (
            f" anchored in tx {self.tx_index} of checkpoint {self.checkpoint_height}"
            f" (signed by {', '.join(self.checkpoint_signers)}, quorum {self.quorum} of"
            f" {self.members})" + g
        )

    def line(self) -> str:
        """The one-line answer: ``VALID …`` or ``INVALID: <reason>``."""
        if not self.ok:
            return f"INVALID: {self.reason}"
        head = f"VALID {self.item_kind} {self.subject} in batch {self.edge}#{self.batch}"
        if self.genesis is not None:
            return head + self.chain_text()
        tail = "; chain part not checked (no genesis)" if self.chain == "not checked" else ""
        return f"{head} — {self.anchors_text()}{tail}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the verdict (bytes as hex)."""
        return {
            "valid": self.ok,
            "line": self.line(),
            "reason": self.reason,
            "suite": self.suite,
            "item_kind": self.item_kind,
            "signer": self.signer,
            "device": self.device,
            "assurance": self.assurance,
            "boot": self.boot,
            "ctr": self.ctr,
            "edge": self.edge,
            "batch": self.batch,
            "site": self.site,
            "index": self.index,
            "size": self.size,
            "root": self.root.hex() if self.root is not None else None,
            "receipt_cloud": self.receipt_cloud,
            "anchors": list(self.anchors),
            "anchors_pinned": self.anchors_pinned,
            "genesis": self.genesis.hex() if self.genesis is not None else None,
            "chain": self.chain,
            "tx_index": self.tx_index,
            "tx_id": self.tx_id.hex() if self.tx_id is not None else None,
            "checkpoint_height": self.checkpoint_height,
            "checkpoint_signers": list(self.checkpoint_signers),
            "quorum": self.quorum,
            "members": self.members,
            "endorsers": list(self.endorsers),
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
        }
