"""The outcome of checking one proof bundle: a verdict made of named steps.

A :class:`Verdict` is ``ok`` only when every step passed. When a step fails, checking stops
there and ``reason`` is ``"<step name>: <detail>"`` of that step, e.g.::

    inclusion proof: root mismatch: header root 3f2a07c1…, calculated 9b1c44d0…

:meth:`Verdict.line` renders the one-line answer of ``tally verify`` (shown here on two
lines for a valid bundle)::

    VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#12
      — anchors: acme (pinned)
    INVALID: item signature: signature does not verify (signer 'site-1/lc-03', alg -8)
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

    def line(self) -> str:
        """The one-line answer: ``VALID …`` or ``INVALID: <reason>``."""
        if not self.ok:
            return f"INVALID: {self.reason}"
        return (
            f"VALID {self.item_kind} {self.subject} in batch {self.edge}#{self.batch}"
            f" — {self.anchors_text()}"
        )

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
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
        }
