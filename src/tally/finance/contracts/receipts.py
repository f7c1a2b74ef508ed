"""The ``receipts`` contract: electronic warehouse receipts issued against IoT evidence.

A receipt (``rcpt/<no>``, record in :mod:`tally.finance.receipt`) has exactly one controller,
its ``holder``; every transition bumps its ``seq`` and appends to its endorsement record.

=====================================  ======================  ===============================
function                               creator                 consents (terms)
=====================================  ======================  ===============================
``issue(fields, evidence_list)``       the custodian           —
                                       (role warehouse)
``report_stock(evidence)``             any member              —
``transfer(no, to, consent)``          any member              holder ({"to": to})
``split(no, children, consent)``       any member              holder ({"children": children})
``pledge(no, bank, holder_consent,     ``bank`` (role bank)    holder and custodian
custodian_consent)``                                           ({"bank": bank})
``release(no, weight)``                the pledgee             —
``freeze(no, reason)``                 pledgee or regulator    —
``unfreeze(no)``                       pledgee or regulator    —
``deliver(no, consent)``               the custodian           holder (null)
``cancel(no, consent)``                the custodian           holder (null)
=====================================  ======================  ===============================

Issuing needs at least one proven load-cell or weighbridge reading
(:mod:`tally.finance.evidence`) of the receipt's site and location by a device of the
custodian, taken at or after the lot's inbound RFID scans (when such scans are given: they
must name the receipt's lot, direction "in"); the receipt links every reading by its hash.
The newest weight reading replaces ``stock/<site>/<location>`` when newer than it. Then the
Qingdao check: the live receipts at the location (``rloc/<site>/<location>/``) plus the new
weight may not exceed the measured stock less ``commodity/<name>.tolerance`` × stock.
``issue`` always rewrites the stock key (unchanged unless newer), so that two issues racing
at one location conflict (MVCC) rather than both passing the check.

Only a live receipt can be transferred, split, pledged, delivered or cancelled; one past its
storage period (``period.to``) cannot be transferred, split or pledged. ``release`` calls
:func:`tally.finance.contracts.coverage.check_release` when the receipt secures a loan, then
:func:`.receipt_ops.release_weight`. Every refusal says exactly why (docs/finance-receipts.md).
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from tally.finance.consent import require
from tally.finance.contracts.parties import has_role, known_party, require_role
from tally.finance.contracts.receipt_ops import (
    get_receipt,
    live_weight,
    put_new,
    release_weight,
    set_state,
    split_receipt,
)
from tally.finance.evidence import RFID_PROFILES, WEIGHT_PROFILES, ProvenReading, verify_reading
from tally.finance.keys import commodity_key, receipt_key, stock_key
from tally.finance.receipt import (
    ReceiptFieldError,
    check_amount,
    expired,
    iso,
    new_receipt,
    show,
    tonnes,
    validate_fields,
)
from tally.ledger.contract import Context, Contract, ContractError, function

MAX_SKEW_MS = 5 * 60_000
"""A reading may be dated at most this far after the proposal time."""
MAX_CHILDREN = 100


def _usable(rec: dict[str, Any], t: int, check_expiry: bool = True) -> None:
    """Refuse unless the receipt is live (and, with ``check_expiry``, not expired)."""
    no, state = rec["no"], rec["state"]
    if state == "pledged":
        raise ContractError(f"receipt {no} is pledged to {rec['pledgee']}")
    if state == "frozen":
        f = rec["frozen"]
        raise ContractError(f"receipt {no} is frozen by {f['by']} ({f['reason']})")
    if state != "live":
        raise ContractError(f"receipt {no} is {state}")
    if check_expiry and expired(rec, t):
        raise ContractError(f"receipt {no} expired at {iso(rec['period']['to'])}")


def _weighed(p: ProvenReading, i: int, t: int) -> tuple[Decimal, str] | None:
    """(weight, location) of a load-cell/weighbridge reading; None for another reading."""
    w = p.value("weight")
    if p.profile not in WEIGHT_PROFILES or w is None:
        return None
    if p.t > t + MAX_SKEW_MS:
        raise ContractError(f"evidence {i}: taken at {iso(p.t)}, after the proposal at {iso(t)}")
    loc = p.label("location")
    if loc is None:
        raise ContractError(f"evidence {i}: the weight of {p.dev!r} names no location")
    return w, loc


def _stock(ctx: Context, p: ProvenReading, w: Decimal, loc: str) -> dict[str, Any]:
    """``stock/<site>/<loc>`` after this reading: replaced if the reading is newer."""
    current = ctx.get(stock_key(p.site, loc))
    if current is not None and current["t"] >= p.t:
        return dict(current)
    return {"weight": w, "t": p.t, "device": p.dev, "reading": p.hash, "edge": p.edge,
            "ctr": p.batch}  # fmt: skip


def _issue_evidence(
    ctx: Context, f: dict[str, Any], evidence: Any
) -> tuple[list[ProvenReading], ProvenReading]:
    """The proven readings of an issue, checked, in order; and the newest weight reading."""
    if not isinstance(evidence, list | tuple) or not evidence:
        raise ContractError(f"issuing {f['no']}: the evidence must be a non-empty list")
    seen: dict[bytes, int] = {}
    proofs: list[ProvenReading] = []
    weights: list[tuple[int, ProvenReading]] = []
    scans: list[ProvenReading] = []
    for i, ev in enumerate(evidence):
        p = verify_reading(ctx, ev, f["site"], what=f"evidence {i}")
        if p.hash in seen:
            raise ContractError(f"evidence {i} repeats evidence {seen[p.hash]}")
        seen[p.hash] = i
        if p.org != ctx.creator:
            raise ContractError(
                f"evidence {i}: device {p.dev!r} belongs to {p.org!r}, not to the custodian "
                f"{ctx.creator!r}"
            )
        proofs.append(p)
        weighed = _weighed(p, i, ctx.time)
        lot = p.label("lot")
        if weighed is not None:
            if weighed[1] != f["location"]:
                raise ContractError(
                    f"evidence {i}: weighs location {weighed[1]!r}, the receipt is for "
                    f"{f['location']!r}"
                )
            weights.append((i, p))
        elif p.profile in RFID_PROFILES and lot is not None:
            if lot != f["lot"]:
                raise ContractError(
                    f"evidence {i}: scans lot {lot!r}, the receipt is for {f['lot']!r}"
                )
            if p.label("direction") != "in":
                raise ContractError(
                    f"evidence {i}: scans lot {lot!r} going {p.label('direction')!r}, not 'in'"
                )
            scans.append(p)
        else:
            raise ContractError(
                f"evidence {i}: a {p.profile!r} reading of {p.dev!r} is neither a weight nor "
                "an RFID scan of a lot"
            )
    if not weights:
        raise ContractError(
            f"issuing {f['no']}: no load-cell or weighbridge reading of "
            f"{f['site']}/{f['location']} among the evidence"
        )
    if scans:
        inbound = max(s.t for s in scans)
        for i, p in weights:
            if p.t < inbound:
                raise ContractError(
                    f"evidence {i}: weighed at {iso(p.t)}, before the lot's inbound scan at "
                    f"{iso(inbound)}"
                )
    return proofs, max(weights, key=lambda ip: (ip[1].t, ip[0]))[1]


class Receipts(Contract):
    """Electronic warehouse receipts (see the module docstring)."""

    name = "receipts"

    @function
    def issue(self, ctx: Context, fields: Any, evidence: Any) -> dict[str, Any]:
        require_role(ctx, "warehouse", "receipts.issue")
        try:
            f = validate_fields(fields)
        except ReceiptFieldError as exc:
            raise ContractError(str(exc)) from None
        no, site, loc = f["no"], f["site"], f["location"]
        if ctx.get(receipt_key(no)) is not None:
            raise ContractError(f"receipt {no} already exists")
        known_party(ctx, f["depositor"], "receipt field 'depositor'")
        commodity = ctx.get(commodity_key(f["commodity"]))
        if commodity is None:
            raise ContractError(f"receipt field 'commodity': {f['commodity']!r} is not set")
        if f["period"]["to"] <= ctx.time:
            raise ContractError(
                f"receipt field 'period': ends at {iso(f['period']['to'])}, before the issue "
                f"at {iso(ctx.time)}"
            )
        proofs, newest = _issue_evidence(ctx, f, evidence)
        w = newest.value("weight")
        assert w is not None
        stock = _stock(ctx, newest, w, loc)
        ctx.put(stock_key(site, loc), stock)  # always: concurrent issues here conflict
        with localcontext() as dc:
            dc.prec = 60
            after = live_weight(ctx, site, loc) + f["weight"]
            margin = stock["weight"] * commodity["tolerance"]
            allowed = stock["weight"] - margin
        if after > allowed:
            raise ContractError(
                f"issuing {tonnes(f['weight'])} at {site}/{loc} would bring live receipts to "
                f"{tonnes(after)}; measured stock {tonnes(stock['weight'])} at "
                f"{iso(stock['t'])} less tolerance {tonnes(margin)} allows {tonnes(allowed)}"
            )
        put_new(ctx, new_receipt(f, ctx.creator, ctx.time, [p.hash for p in proofs]))
        return {"no": no, "live": after, "allowed": allowed}

    @function
    def report_stock(self, ctx: Context, evidence: Any) -> dict[str, Any]:
        p = verify_reading(ctx, evidence, None)
        weighed = _weighed(p, 0, ctx.time)
        if weighed is None:
            raise ContractError(
                f"evidence: a {p.profile!r} reading of {p.dev!r} is not a load-cell or "
                "weighbridge weight"
            )
        w, loc = weighed
        current = ctx.get(stock_key(p.site, loc))
        if current is not None and current["t"] >= p.t:
            raise ContractError(
                f"stock at {p.site}/{loc} is already measured at {iso(current['t'])}; this "
                f"reading is from {iso(p.t)}"
            )
        ctx.put(stock_key(p.site, loc), _stock(ctx, p, w, loc))
        live = live_weight(ctx, p.site, loc)
        return {"site": p.site, "location": loc, "weight": w, "t": p.t, "live": live}

    @function
    def transfer(self, ctx: Context, no: Any, to: Any, consent: Any) -> dict[str, Any]:
        rec = get_receipt(ctx, no)
        _usable(rec, ctx.time)
        known_party(ctx, to, f"transferring {no}")
        if to == rec["holder"]:
            raise ContractError(f"transferring {no}: {to!r} already holds it")
        require(ctx, rec["holder"], "receipts.transfer", no, rec["seq"], {"to": to}, consent)
        set_state(ctx, rec, "live", "receipts.transfer", rec["holder"], holder=to)
        return {"no": no, "holder": to}

    @function
    def split(self, ctx: Context, no: Any, children: Any, consent: Any) -> list[str]:
        rec = get_receipt(ctx, no)
        _usable(rec, ctx.time)
        what = f"splitting {no}"
        if not isinstance(children, list | tuple) or not 2 <= len(children) <= MAX_CHILDREN:
            raise ContractError(f"{what}: children must be a list of 2 to {MAX_CHILDREN} parts")
        parts: list[tuple[str, Decimal, Decimal, dict[str, Any]]] = []
        for i, c in enumerate(children):
            if not isinstance(c, dict) or set(c) != {"no", "quantity", "weight"}:
                raise ContractError(f"{what}: child {i} must be a map of no, quantity, weight")
            try:
                q = check_amount(f"child {i} quantity", c["quantity"])
                w = check_amount(f"child {i} weight", c["weight"])
            except ReceiptFieldError as exc:
                raise ContractError(f"{what}: {exc.field} {exc.reason}") from None
            parts.append((c["no"], q, w, {}))
        terms = {"children": list(children)}
        require(ctx, rec["holder"], "receipts.split", no, rec["seq"], terms, consent)
        return [c["no"] for c in split_receipt(ctx, rec, parts, "receipts.split", rec["holder"])]

    @function
    def pledge(
        self, ctx: Context, no: Any, bank: Any, holder_consent: Any, custodian_consent: Any
    ) -> dict[str, Any]:
        require_role(ctx, "bank", "receipts.pledge")
        if bank != ctx.creator:
            raise ContractError(f"receipts.pledge: the pledgee {bank!r} must be the creator")
        rec = get_receipt(ctx, no)
        _usable(rec, ctx.time)
        terms = {"bank": bank}
        require(ctx, rec["holder"], "receipts.pledge", no, rec["seq"], terms, holder_consent)
        require(ctx, rec["custodian"], "receipts.pledge", no, rec["seq"], terms, custodian_consent)
        set_state(ctx, rec, "pledged", "receipts.pledge", rec["holder"], pledgee=bank)
        return {"no": no, "pledgee": bank}

    @function
    def release(self, ctx: Context, no: Any, weight: Any) -> dict[str, Any]:
        rec = get_receipt(ctx, no)
        if rec["state"] == "frozen":
            f = rec["frozen"]
            raise ContractError(f"receipt {no} is frozen by {f['by']} ({f['reason']})")
        if rec["state"] != "pledged":
            raise ContractError(f"receipt {no} is {rec['state']}, not pledged")
        if rec["pledgee"] != ctx.creator:
            raise ContractError(f"receipt {no} is pledged to {rec['pledgee']}, not {ctx.creator}")
        if not isinstance(weight, Decimal) or not weight.is_finite() or weight <= 0:
            raise ContractError(
                f"releasing from {no}: the weight must be a positive Decimal, got {show(weight)}"
            )
        if weight > rec["weight"]:
            raise ContractError(
                f"releasing {tonnes(weight)} of {no}: it holds only {tonnes(rec['weight'])}"
            )
        if rec["loan"] is not None:
            from tally.finance.contracts.coverage import check_release

            check_release(ctx, rec["loan"], no, weight)
        nos = release_weight(ctx, no, weight, kind="release", loan=rec["loan"],
                             act="receipts.release")  # fmt: skip
        return {"released": nos[0], "kept": nos[1] if len(nos) > 1 else None}

    def _may_freeze(self, ctx: Context, rec: dict[str, Any], act: str) -> None:
        if ctx.creator != rec["pledgee"] and not has_role(ctx, ctx.creator, "regulator"):
            raise ContractError(
                f"{act} of {rec['no']}: {ctx.creator!r} is neither its pledgee nor a regulator"
            )

    @function
    def freeze(self, ctx: Context, no: Any, reason: Any) -> dict[str, Any]:
        rec = get_receipt(ctx, no)
        if not isinstance(reason, str) or not reason.strip():
            raise ContractError(f"receipts.freeze of {no}: the reason must be non-empty text")
        if rec["state"] == "frozen":
            f = rec["frozen"]
            raise ContractError(f"receipt {no} is already frozen by {f['by']} ({f['reason']})")
        if rec["state"] not in ("live", "pledged"):
            raise ContractError(f"receipt {no} is {rec['state']}: only a live or pledged "
                                "receipt can be frozen")  # fmt: skip
        self._may_freeze(ctx, rec, "receipts.freeze")
        frozen = {"by": ctx.creator, "reason": reason, "t": ctx.time, "was": rec["state"]}
        set_state(ctx, rec, "frozen", "receipts.freeze", ctx.creator, frozen=frozen)
        return {"no": no, "frozen": frozen}

    @function
    def unfreeze(self, ctx: Context, no: Any) -> dict[str, Any]:
        rec = get_receipt(ctx, no)
        if rec["state"] != "frozen":
            raise ContractError(f"receipt {no} is {rec['state']}, not frozen")
        self._may_freeze(ctx, rec, "receipts.unfreeze")
        by = rec["frozen"]["by"]
        if has_role(ctx, by, "regulator") and not has_role(ctx, ctx.creator, "regulator"):
            raise ContractError(
                f"receipt {no} was frozen by the regulator {by}: only a regulator can unfreeze it"
            )
        was = rec["frozen"]["was"]
        set_state(ctx, rec, was, "receipts.unfreeze", ctx.creator, frozen=None)
        return {"no": no, "state": was}

    def _custodian(self, ctx: Context, rec: dict[str, Any], act: str) -> None:
        if ctx.creator != rec["custodian"]:
            raise ContractError(
                f"{act} of {rec['no']}: only its custodian {rec['custodian']} can, not "
                f"{ctx.creator}"
            )
        _usable(rec, ctx.time, check_expiry=False)

    @function
    def deliver(self, ctx: Context, no: Any, consent: Any) -> dict[str, Any]:
        rec = get_receipt(ctx, no)
        self._custodian(ctx, rec, "receipts.deliver")
        require(ctx, rec["holder"], "receipts.deliver", no, rec["seq"], None, consent)
        release_weight(ctx, no, rec["weight"], kind="delivery", loan=None,
                       act="receipts.deliver")  # fmt: skip
        return {"no": no, "state": "delivered"}

    @function
    def cancel(self, ctx: Context, no: Any, consent: Any) -> dict[str, Any]:
        rec = get_receipt(ctx, no)
        self._custodian(ctx, rec, "receipts.cancel")
        require(ctx, rec["holder"], "receipts.cancel", no, rec["seq"], None, consent)
        set_state(ctx, rec, "cancelled", "receipts.cancel", ctx.creator)
        return {"no": no, "state": "cancelled"}
