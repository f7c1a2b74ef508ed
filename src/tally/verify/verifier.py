"""The offline verifier: check one proof bundle with nothing but the bundle and the anchors.

:func:`verify_bundle` never raises for a bad bundle; it returns a :class:`Verdict` whose
steps run in this order and stop at the first failure (``docs/formats.md`` §Verification
gives every reason string):

1. ``bundle``          decode the bundle (:func:`tally.verify.bundle.decode_bundle`); a
                       transaction bundle is named as such (:mod:`tally.verify.txverify`
                       checks those);
2. ``suite``           the suite is known, equals the genesis's (else the trust file's), and
                       every COSE_Sign1 in the bundle (item, header, receipt) uses its
                       algorithm;
3. ``anchors``         organisation root keys: the genesis members' (a trust file given too
                       must agree with them), else pinned from the trust file (the bundle's
                       own anchors must then agree), else the bundle's when the caller
                       accepts them explicitly (the verdict then says "not pinned");
4. ``registration of 'id'``  each registration verifies against the anchors
                       (:func:`tally.device.registration.verify_registration`);
5. ``batch header``    signed by the registered edge named by its ``kid``; decoded; its
                       edge, site and suite agree with the registration and the bundle;
6. ``item``            the item decoded by content type; its signer found among the
                       registrations (device key for assurance ``device``, the edge's key for
                       assurance ``edge`` and for events, gaps and summaries, the
                       organisation's root key for ``manual``);
7. ``item signature``  the item's signature under that key;
8. ``device site``     (readings) the device is registered at the batch's site;
9. ``inclusion proof`` ``size`` equals the header's ``n``; RFC 9162 inclusion of
                       ``hash_leaf(item)`` at ``index`` under the header's ``root``;
10. ``receipt``        (when present) signed by a registered cloud; names this edge, batch
                       counter, leaf count and the suite hash of the header's COSE bytes;
11. ``chain``          whether the bundle is anchored: with a genesis and a chain part, the
                       four steps of :mod:`tally.verify.chain` (``checkpoint``, ``quorum``,
                       ``chain inclusion``, ``anchoring transaction``) replace this one;
                       otherwise it passes saying "not anchored" or "not checked (no
                       genesis)", or fails when the caller requires an anchor (without a
                       genesis, a chain part or that requirement, there is no such step);
12. ``time``           (when ``now_ms`` is given) nothing is dated more than
                       :data:`MAX_CLOCK_SKEW_MS` after ``now_ms``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from tally import formats as F
from tally.crypto import (
    CryptoError,
    DecodeError,
    Sign1,
    Suite,
    VerifyKey,
    get_suite,
    parse_sign1,
)
from tally.device.envelope import Reading, decode_reading
from tally.device.registration import (
    Assurance,
    Registration,
    decode_registration,
    verify_registration,
)
from tally.device.trust import Trust
from tally.edge.formats import (
    BatchHeader,
    Event,
    Gap,
    Summary,
    decode_batch_header,
    decode_event,
    decode_gap,
    decode_receipt,
    decode_summary,
)
from tally.ledger.genesis import Genesis
from tally.merkle import Hasher, MerkleError, RootMismatchError, verify_inclusion
from tally.verify.bundle import Bundle, decode_bundle
from tally.verify.chain import (
    AnchorTx,
    ChainCheckFailed,
    chain_id,
    check_anchoring_tx,
    check_checkpoint,
    check_quorum,
    check_tx_inclusion,
    trust_disagreement,
)
from tally.verify.txbundle import READING_BUNDLE_KIND, TX_BUNDLE_KIND, bundle_kind
from tally.verify.verdict import Item, Step, Verdict

__all__ = ["MAX_CLOCK_SKEW_MS", "Step", "Verdict", "verify_bundle"]

MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
"""How far in the future (after ``now_ms``) a signed time may lie before it is rejected."""

_ITEM_KINDS = {
    F.CTY_READING: "reading",
    F.CTY_HEARTBEAT: "heartbeat",
    F.CTY_EVENT: "event",
    F.CTY_GAP: "gap",
    F.CTY_SUMMARY: "summary",
}


class _Fail(Exception):
    """A check failed with ``detail``; the current step records it and checking stops."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class _Stop(Exception):
    """Checking stopped at a failed step (already recorded)."""


@dataclass
class _Detail:
    text: str = ""


def _short(h: bytes) -> str:
    return h[:4].hex() + "…"


def _describe(exc: BaseException, own: tuple[str, ...]) -> str:
    """Render ``exc`` as a step detail; drop a DecodeError's ``where`` if the step says it."""
    if isinstance(exc, _Fail | ChainCheckFailed):
        return exc.detail
    if isinstance(exc, RootMismatchError):
        expected, calculated = _short(exc.expected), _short(exc.calculated)
        return f"root mismatch: header root {expected}, calculated {calculated}"
    if isinstance(exc, DecodeError) and exc.where in own:
        return exc.reason
    if isinstance(exc, CryptoError | MerkleError):
        return str(exc)
    return f"malformed data ({type(exc).__name__}: {exc})"


class _Run:
    """One verification: the steps taken so far and what they established."""

    def __init__(
        self,
        trust: Trust | None,
        accept_bundled_anchors: bool,
        now_ms: int | None,
        genesis: Genesis | None,
        require_anchor: bool,
    ):
        self.trust = trust
        self.accept = accept_bundled_anchors
        self.now_ms = now_ms
        self.genesis = genesis
        self.chain_id = chain_id(genesis) if genesis is not None else b""
        self.require_anchor = require_anchor
        self.anchor_tx: AnchorTx | None = None
        self.v = Verdict()
        self.msgs: dict[str, Sign1 | Exception] = {}
        self.regs: dict[tuple[str, str], Registration] = {}
        self.anchors: dict[str, VerifyKey] = {}
        self.used_orgs: set[str] = set()

    @contextmanager
    def step(self, name: str, *own: str) -> Iterator[_Detail]:
        """Run one step; record it; turn any failure into a failed step and stop."""
        d = _Detail()
        try:
            yield d
        except _Stop:
            raise
        except Exception as exc:  # a bad bundle must never escape as an exception
            self.v.steps.append(Step(name, False, _describe(exc, own)))
            raise _Stop from None
        self.v.steps.append(Step(name, True, d.text))

    def parsed(self, label: str) -> Sign1:
        """The COSE_Sign1 parsed in the suite step, or the error its parsing raised."""
        m = self.msgs[label]
        if isinstance(m, Exception):
            raise m
        return m

    # -- the steps -------------------------------------------------------------------------

    def run(self, data: bytes) -> None:
        with self.step("bundle", "bundle") as d:
            try:
                b = decode_bundle(data)
            except DecodeError:
                if bundle_kind(data) == TX_BUNDLE_KIND:  # looked at only when decoding failed
                    raise _Fail(
                        f"kind {TX_BUNDLE_KIND!r} is a transaction bundle, not a reading's"
                        f" proof bundle ({READING_BUNDLE_KIND!r})"
                    ) from None
                raise
            d.text = f"{len(data)} bytes, {len(b.registrations)} registration(s)"
        suite = self.check_suite(b)
        self.check_anchors(b, suite)
        for i, raw in enumerate(b.registrations):
            self.check_registration(i, raw, suite)
        h = self.check_header(b, suite)
        item, key, dev_reg = self.check_item(h)
        with self.step("item signature") as d:
            self.parsed("item").verify(key)
            d.text = f"by {self.v.signer!r}"
        if dev_reg is not None:
            with self.step("device site") as d:
                if dev_reg.site != h.site:
                    raise _Fail(
                        f"device {dev_reg.id!r} is registered at site {dev_reg.site!r},"
                        f" the batch is from site {h.site!r}"
                    )
                d.text = h.site
        self.check_inclusion(b, h, suite)
        self.check_receipt(b, h, suite)
        self.check_chain(b, h)
        if self.now_ms is not None:
            self.check_time(item, h, self.now_ms)

    def check_suite(self, b: Bundle) -> Suite:
        with self.step("suite") as d:
            suite = get_suite(b.suite)
            if self.genesis is not None and self.genesis.suite is not suite:
                raise _Fail(
                    f"bundle suite {suite.name!r}, genesis suite {self.genesis.suite.name!r}"
                )
            if self.genesis is None and self.trust is not None and self.trust.suite is not suite:
                raise _Fail(
                    f"bundle suite {suite.name!r}, trust file suite {self.trust.suite.name!r}"
                )
            parts = [("item", b.item), ("batch header", b.header)]
            if b.receipt is not None:
                parts.append(("receipt", b.receipt))
            for label, raw in parts:
                try:
                    msg: Sign1 | Exception = parse_sign1(raw)
                except Exception as exc:
                    if not isinstance(exc, DecodeError) and isinstance(exc, CryptoError):
                        raise _Fail(f"{label}: {exc}") from None  # unknown algorithm
                    msg = exc  # reported by the step that owns it
                self.msgs[label] = msg
                if isinstance(msg, Sign1) and msg.alg != suite.alg:
                    raise _Fail(
                        f"{label} is signed with alg {msg.alg} ({msg.suite.name}),"
                        f" bundle suite {suite.name!r} uses alg {suite.alg}"
                    )
            self.v.suite = suite.name
            d.text = f"{suite.name} (alg {suite.alg}, {suite.hash_name})"
        return suite

    def check_anchors(self, b: Bundle, suite: Suite) -> None:
        with self.step("anchors") as d:
            if self.genesis is not None:
                self.genesis_anchors(b)
                d.text = f"{', '.join(sorted(self.anchors))} (genesis {self.chain_id.hex()[:16]})"
            elif self.trust is not None:
                self.anchors = self.trust.orgs
                for org, raw in sorted(b.anchors.items()):
                    pinned = self.anchors.get(org)
                    if pinned is None:
                        raise _Fail(f"bundle anchor {org!r} is not in the trust file")
                    if pinned.raw != raw:
                        raise _Fail(f"bundle anchor {org!r} differs from the trust file's key")
                self.v.anchors_pinned = True
                d.text = f"{', '.join(sorted(self.anchors))} (pinned by the trust file)"
            elif self.accept:
                for org, raw in sorted(b.anchors.items()):
                    try:
                        self.anchors[org] = VerifyKey(suite, raw)
                    except CryptoError as exc:
                        raise _Fail(f"bundle anchor {org!r}: {exc}") from None
                d.text = f"{', '.join(sorted(self.anchors))} (anchors not pinned)"
            else:
                raise _Fail(
                    "no trust anchors pinned (give a trust file, or accept the bundle's own"
                    " anchors explicitly)"
                )
            if not self.anchors:
                raise _Fail("no trust anchors")

    def genesis_anchors(self, b: Bundle) -> None:
        """The genesis members are the anchors; a trust file and the bundle must agree."""
        g = self.genesis
        assert g is not None
        self.anchors = {org: VerifyKey(g.suite, m.pub) for org, m in g.members.items()}
        why = trust_disagreement(self.trust, g) if self.trust is not None else None
        if why is not None:
            raise _Fail(why)
        for org, raw in sorted(b.anchors.items()):
            member = self.anchors.get(org)
            if member is None:
                raise _Fail(f"bundle anchor {org!r} is not a genesis member")
            if member.raw != raw:
                raise _Fail(f"bundle anchor {org!r} differs from the genesis member's key")
        self.v.anchors_pinned = True
        self.v.genesis = self.chain_id
        self.v.members = len(g.members)
        self.v.quorum = g.checkpoint_quorum

    def check_registration(self, i: int, raw: bytes, suite: Suite) -> None:
        try:
            reg = verify_registration(raw, self.anchors)
        except Exception as exc:
            name = f"registration #{i}"
            with suppress(Exception):  # name the subject if the bytes say who (not trusted)
                name = f"registration of {decode_registration(parse_sign1(raw).payload).id!r}"
            with self.step(name, "registration"):
                raise exc
        with self.step(f"registration of {reg.id!r}", "registration") as d:
            if reg.suite != suite.name:
                raise _Fail(f"suite {reg.suite!r}, bundle suite {suite.name!r}")
            if (reg.kind, reg.id) in self.regs:
                raise _Fail(f"second registration of {reg.kind} {reg.id!r} in the bundle")
            if reg.kind != "device" and not reg.pub:
                raise _Fail(f"{reg.kind} {reg.id!r} is registered without a public key")
            self.regs[(reg.kind, reg.id)] = reg
            d.text = (
                f"{reg.kind} at site {reg.site!r}, org {reg.org!r}, assurance {reg.assurance.label}"
            )

    def _key_of(self, kind: str, kid: str, what: str) -> tuple[Registration, VerifyKey]:
        reg = self.regs.get((kind, kid))
        if reg is None:
            raise _Fail(f"{what} {kid!r} has no registration in the bundle")
        key = reg.verify_key()
        if key is None:
            raise _Fail(f"{what} {kid!r} is registered without a public key")
        self.used_orgs.add(reg.org)
        return reg, key

    def check_header(self, b: Bundle, suite: Suite) -> BatchHeader:
        with self.step("batch header", "batch header") as d:
            msg = self.parsed("batch header")
            if msg.content_type != F.CTY_BATCH:
                raise _Fail(f"content type {msg.content_type!r}, expected {F.CTY_BATCH!r}")
            reg, key = self._key_of("edge", msg.kid, "edge")
            msg.verify(key)
            h = decode_batch_header(msg.payload)
            if h.edge != msg.kid:
                raise _Fail(f"signed by {msg.kid!r} but names edge {h.edge!r}")
            if h.suite != suite.name:
                raise _Fail(f"suite {h.suite!r}, bundle suite {suite.name!r}")
            if h.site != reg.site:
                raise _Fail(
                    f"edge {h.edge!r} is registered at site {reg.site!r},"
                    f" the header names site {h.site!r}"
                )
            if h.t0 > h.t1:
                raise _Fail(f"t0 {h.t0} is after t1 {h.t1}")
            self.v.edge, self.v.batch, self.v.site, self.v.root = h.edge, h.ctr, h.site, h.root
            d.text = f"{h.edge}#{h.ctr} at site {h.site!r}, n {h.n}, root {_short(h.root)}"
        return h

    def check_item(self, h: BatchHeader) -> tuple[Item, VerifyKey, Registration | None]:
        own = ("item", "reading", "heartbeat", "event", "gap certificate", "summary")
        with self.step("item", *own) as d:
            msg = self.parsed("item")
            kind = _ITEM_KINDS.get(msg.content_type)
            if kind is None:
                raise _Fail(
                    f"content type {msg.content_type!r} is not a batch item"
                    " (reading, heartbeat, event, gap or summary)"
                )
            self.v.item_kind, self.v.signer = kind, msg.kid
            dev_reg: Registration | None = None
            item: Item
            if kind in ("reading", "heartbeat"):
                item = decode_reading(msg.payload, heartbeat=kind == "heartbeat")
                dev_reg, key = self._reading_signer(item, msg.kid)
                self.v.device, self.v.boot, self.v.ctr = item.dev, item.boot, item.ctr
                self.v.assurance = dev_reg.assurance.label
                d.text = (
                    f"{kind} of {item.dev!r}, signer {msg.kid!r} (assurance {self.v.assurance})"
                )
            else:
                item = self._edge_object(kind, msg.payload, msg.kid, h)
                _, key = self._key_of("edge", msg.kid, "edge")
                d.text = f"{kind} signed by edge {msg.kid!r}"
            self.v.item = item
        return item, key, dev_reg

    def _reading_signer(self, r: Reading, kid: str) -> tuple[Registration, VerifyKey]:
        dev_reg = self.regs.get(("device", r.dev))
        if dev_reg is None:
            raise _Fail(f"device {r.dev!r} has no registration in the bundle")
        self.used_orgs.add(dev_reg.org)
        level = dev_reg.assurance
        if level is Assurance.DEVICE:
            if kid != r.dev:
                raise _Fail(
                    f"reading of {r.dev!r} signed by {kid!r}; assurance device requires"
                    " the device's own key"
                )
            _, key = self._key_of("device", kid, "device")
            return dev_reg, key
        if level is Assurance.EDGE:
            edge_reg, key = self._key_of("edge", kid, "signing edge")
            if edge_reg.site != dev_reg.site:
                raise _Fail(
                    f"edge {kid!r} (site {edge_reg.site!r}) signed for device {r.dev!r}"
                    f" of site {dev_reg.site!r}"
                )
            return dev_reg, key
        if kid != dev_reg.org:  # manual: signed by the owning organisation's root key
            raise _Fail(
                f"manual reading of {r.dev!r} signed by {kid!r}, not by its organisation"
                f" {dev_reg.org!r}"
            )
        return dev_reg, self.anchors[dev_reg.org]

    def _edge_object(self, kind: str, payload: bytes, kid: str, h: BatchHeader) -> Item:
        obj: Event | Gap | Summary
        if kind == "event":
            obj = decode_event(payload)
            if obj.site != h.site:
                raise _Fail(f"event of site {obj.site!r} in a batch of site {h.site!r}")
        elif kind == "gap":
            obj = decode_gap(payload)
        else:
            obj = decode_summary(payload)
        if obj.edge != kid:
            raise _Fail(f"{kind} signed by {kid!r} but names edge {obj.edge!r}")
        if kid != h.edge:
            raise _Fail(f"{kind} of edge {kid!r} in a batch of edge {h.edge!r}")
        if isinstance(obj, Gap | Summary):
            self.v.device, self.v.boot = obj.dev, obj.boot
        return obj

    def check_inclusion(self, b: Bundle, h: BatchHeader, suite: Suite) -> None:
        with self.step("inclusion proof") as d:
            if b.size != h.n:
                raise _Fail(f"bundle size {b.size}, header n {h.n}")
            hasher = Hasher.for_name(suite.hash_name)
            verify_inclusion(hasher, b.index, b.size, hasher.hash_leaf(b.item), b.path, h.root)
            self.v.index, self.v.size = b.index, b.size
            d.text = f"leaf {b.index} of {b.size}, {len(b.path)} path hash(es)"

    def check_receipt(self, b: Bundle, h: BatchHeader, suite: Suite) -> None:
        with self.step("receipt", "receipt") as d:
            if b.receipt is None:
                d.text = "none in the bundle (storage in the cloud not proven)"
                return
            msg = self.parsed("receipt")
            if msg.content_type != F.CTY_RECEIPT:
                raise _Fail(f"content type {msg.content_type!r}, expected {F.CTY_RECEIPT!r}")
            _, key = self._key_of("cloud", msg.kid, "cloud")
            msg.verify(key)
            rc = decode_receipt(msg.payload)
            if rc.cloud != msg.kid:
                raise _Fail(f"signed by {msg.kid!r} but names cloud {rc.cloud!r}")
            if rc.edge != h.edge:
                raise _Fail(f"names edge {rc.edge!r}, the batch is from edge {h.edge!r}")
            if rc.ctr != h.ctr:
                raise _Fail(f"batch ctr {rc.ctr}, header ctr {h.ctr}")
            if rc.n != h.n:
                raise _Fail(f"n {rc.n}, header n {h.n}")
            calculated = suite.hash(b.header)
            if rc.header != calculated:
                raise _Fail(
                    f"header hash mismatch: receipt {_short(rc.header)},"
                    f" calculated {_short(calculated)}"
                )
            self.v.receipt_cloud = rc.cloud
            d.text = f"stored by {rc.cloud!r}" + (" (duplicate upload)" if rc.dup else "")

    def check_chain(self, b: Bundle, h: BatchHeader) -> None:
        g, proof = self.genesis, b.chain
        if g is None and proof is None and not self.require_anchor:
            return  # nothing to say: checked as before chains existed
        if g is None or proof is None:
            with self.step("chain") as d:
                if proof is None:
                    self.v.chain = "not anchored" if g is not None else None
                    if self.require_anchor:
                        raise _Fail("not anchored: the bundle has no chain part")
                    d.text = "none in the bundle (not anchored)"
                else:
                    self.v.chain = "not checked"
                    if self.require_anchor:
                        raise _Fail("not checked: no genesis to check the chain part against")
                    d.text = "not checked (no genesis)"
            return
        with self.step("checkpoint", "checkpoint") as d:
            cp = check_checkpoint(g, self.chain_id, proof)
            d.text = f"height {cp.height}, log size {cp.size}, root {_short(cp.root)}"
        with self.step("quorum") as d:
            signers = check_quorum(g, proof)
            d.text = (
                f"signed by {', '.join(signers)} (quorum {g.checkpoint_quorum} of {len(g.members)})"
            )
        with self.step("chain inclusion") as d:
            check_tx_inclusion(g.suite, proof, cp)
            d.text = f"tx {proof.index} of {proof.size}, {len(proof.path)} path hash(es)"
        with self.step("anchoring transaction", "transaction") as d:
            a = check_anchoring_tx(g, self.chain_id, proof.tx, b.header, h)
            d.text = (
                f"tx {_short(a.tx_id)} by {a.creator!r}, endorsed by {', '.join(a.endorsers)}"
                f" ({a.policy})"
            )
        self.anchor_tx = a
        v = self.v
        v.chain, v.tx_index, v.tx_id, v.endorsers = "anchored", proof.index, a.tx_id, a.endorsers
        v.checkpoint_height, v.checkpoint_signers = cp.height, signers

    def check_time(self, item: Item, h: BatchHeader, now_ms: int) -> None:
        with self.step("time") as d:
            limit = now_ms + MAX_CLOCK_SKEW_MS
            times = [(f"{self.v.item_kind} t", item.t), ("batch header t1", h.t1)]
            times += [(f"registration of {r.id!r} t", r.t) for r in self.regs.values()]
            if self.anchor_tx is not None:
                times.append(("anchoring proposal t", self.anchor_tx.t))
            for what, t in times:
                if t > limit:
                    raise _Fail(f"{what} {t} is {t - now_ms} ms after now {now_ms}")
            d.text = f"nothing dated after {now_ms}"


def verify_bundle(
    data: bytes,
    trust: Trust | None,
    accept_bundled_anchors: bool = False,
    now_ms: int | None = None,
    genesis: Genesis | None = None,
    *,
    require_anchor: bool = False,
) -> Verdict:
    """Check the proof bundle ``data``; return a :class:`Verdict`, never raise for bad input.

    ``genesis`` (the consortium's, already loaded and checked with
    :func:`tally.ledger.genesis.load_genesis`) makes its members the trust anchors and lets
    the bundle's ``chain`` part be checked; ``trust``, if given too, must agree with it.
    Without a genesis, ``trust`` pins the organisations' root keys; without either the
    bundle's own anchors are used only if ``accept_bundled_anchors`` is true, and the
    verdict then records ``anchors_pinned = False``. ``require_anchor`` makes a bundle that
    is not proven anchored (no chain part, or no genesis to check it) invalid. ``now_ms``
    (ms since the Unix epoch), when given, rejects anything dated more than
    :data:`MAX_CLOCK_SKEW_MS` after it.
    """
    run = _Run(trust, accept_bundled_anchors, now_ms, genesis, require_anchor)
    v = run.v
    try:
        run.run(data)
    except _Stop:
        last = v.steps[-1]
        v.ok, v.reason = False, f"{last.name}: {last.detail}"
        return v
    except Exception as exc:  # pragma: no cover - every step already converts its errors
        v.steps.append(Step("verifier", False, _describe(exc, ())))
        v.ok, v.reason = False, f"verifier: {v.steps[-1].detail}"
        return v
    v.ok = True
    v.reason = "valid"
    v.anchors = tuple(sorted(run.used_orgs))
    return v
