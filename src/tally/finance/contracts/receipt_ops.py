"""Operations on receipts shared by the finance contracts (``receipts`` and ``loans``).

They do the writes of a receipt transition and keep the live-receipt index right; they do
not check who may act (the calling contract does):

* :func:`get_receipt` reads ``rcpt/<no>`` ("receipt N does not exist");
* :func:`set_state` moves a receipt to a state: bumps ``seq`` (so a consent is good once),
  appends the endorsement ``{"t", "act", "by", **extra}``, sets the record fields named in
  ``extra`` (e.g. ``holder=``, ``pledgee=``), and keeps ``rloc/<site>/<location>/<no>``
  equal to the weight while the state is live (live, pledged, frozen), deleted otherwise;
* :func:`split_receipt` makes children of a receipt (their quantities and weights sum
  exactly to it) and leaves the parent ``split``;
* :func:`release_weight` lets a weight of a receipt out of the warehouse: the whole receipt,
  or (partially) a split into ``<no>.1`` (the released part) and ``<no>.2`` (the remainder,
  in the parent's state, pledge and loan), and writes the release order
  ``relord/<site>/<id>`` the site's edge uses to tell an authorised outbound movement from
  theft. A released part is ``live`` and unpledged (kind ``release``), ``delivered`` (kind
  ``delivery``) or ``disposed`` (kind ``disposal``).

A release order is ``{"id", "receipt", "site", "location", "lot", "weight", "from", "to",
"by", "loan", "kind", "t"}``: valid from the transaction time for :data:`RELEASE_WINDOW_MS`,
its id ``<receipt>:<kind>:<seq>`` (unique: the released receipt's seq after the transition).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from tally.finance.keys import receipt_key, relord_key, rloc_key, rloc_prefix
from tally.finance.receipt import (
    LIVE_STATES,
    MAX_NO,
    MAX_PLACES,
    STATES,
    ReceiptFieldError,
    check_no,
    show,
    tonnes,
)
from tally.ledger.contract import Context, ContractError

RELEASE_WINDOW_MS = 7 * 86_400_000
"""How long a release order authorises the outbound movement."""

RELEASE_KINDS = {"release": "live", "delivery": "delivered", "disposal": "disposed"}
"""Kind of release order -> the state of the released receipt."""

QUANTUM = Decimal("0.000001")


def get_receipt(ctx: Context, no: Any) -> dict[str, Any]:
    """The receipt ``rcpt/<no>``; refuse if ``no`` is not a receipt number or is unknown."""
    try:
        check_no(no)
    except ReceiptFieldError as exc:
        raise ContractError(f"receipt number {exc.reason}") from None
    rec = ctx.get(receipt_key(no))
    if rec is None:
        raise ContractError(f"receipt {no} does not exist")
    return dict(rec)


def live_weight(ctx: Context, site: str, location: str) -> Decimal:
    """Σ weights of the live receipts at ``site``/``location`` (reads the index)."""
    total = Decimal(0)
    with localcontext() as dc:
        dc.prec = 60
        for _, w in ctx.range(rloc_prefix(site, location)):
            total += w
    return total


def _index(ctx: Context, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    key = rloc_key(new["site"], new["location"], new["no"])
    was = old is not None and old["state"] in LIVE_STATES
    now = new["state"] in LIVE_STATES
    if now and (not was or old is None or old["weight"] != new["weight"]):
        ctx.put(key, new["weight"])
    elif was and not now:
        ctx.delete(key)


def put_new(ctx: Context, rec: dict[str, Any]) -> None:
    """Write a new receipt record and its index entry."""
    ctx.put(receipt_key(rec["no"]), rec)
    _index(ctx, None, rec)


_FIXED = ("v", "no", "seq", "endorsements", "state")


def set_state(
    ctx: Context, rec: dict[str, Any], state: str, act: str, by: str, **extra: Any
) -> dict[str, Any]:
    """Move ``rec`` to ``state`` (see the module docstring); return the new record."""
    if state not in STATES:
        raise ContractError(f"receipt {rec['no']}: unknown state {state!r}")
    new = dict(rec)
    for name, value in extra.items():
        if name in new and name not in _FIXED:
            new[name] = value
    new["state"] = state
    new["seq"] = rec["seq"] + 1
    new["endorsements"] = [*rec["endorsements"], {"t": ctx.time, "act": act, "by": by, **extra}]
    ctx.put(receipt_key(rec["no"]), new)
    _index(ctx, rec, new)
    return new


def _child_no(ctx: Context, no: Any, what: str) -> str:
    try:
        check_no(no)
    except ReceiptFieldError as exc:
        raise ContractError(f"{what}: receipt number {exc.reason}") from None
    if ctx.get(receipt_key(no)) is not None:
        raise ContractError(f"{what}: receipt {no} already exists")
    return str(no)


def split_receipt(
    ctx: Context,
    rec: dict[str, Any],
    parts: Sequence[tuple[str, Decimal, Decimal, dict[str, Any]]],
    act: str,
    by: str,
) -> list[dict[str, Any]]:
    """Split ``rec`` into ``parts`` of ``(no, quantity, weight, overrides)``: each child a
    copy of the parent with these quantities and fields; their sums must equal the parent's.
    The parent becomes ``split`` naming its children. Returns the child records."""
    what = f"splitting {rec['no']}"
    with localcontext() as dc:
        dc.prec = 60
        q = sum((p[1] for p in parts), Decimal(0))
        w = sum((p[2] for p in parts), Decimal(0))
    if q != rec["quantity"] or w != rec["weight"]:
        raise ContractError(
            f"{what}: the parts hold quantity {q:f} and weight {tonnes(w)}, the receipt "
            f"{rec['quantity']:f} {rec['unit']} and {tonnes(rec['weight'])}"
        )
    seen: set[str] = set()
    children: list[dict[str, Any]] = []
    for no, quantity, weight, over in parts:
        if no in seen:
            raise ContractError(f"{what}: receipt number {no} appears twice")
        no = _child_no(ctx, no, what)
        seen.add(no)
        child = {
            **rec,
            "no": no,
            "quantity": quantity,
            "weight": weight,
            "parent": rec["no"],
            "children": [],
            "seq": 0,
            "endorsements": [{"t": ctx.time, "act": act, "by": by, "from": rec["no"]}],
            **over,
        }
        put_new(ctx, child)
        children.append(child)
    set_state(ctx, rec, "split", act, by, children=[c["no"] for c in children])
    return children


def _order(ctx: Context, rec: dict[str, Any], weight: Decimal, kind: str, loan: str | None) -> str:
    order = f"{rec['no']}:{kind}:{rec['seq']}"
    ctx.put(
        relord_key(rec["site"], order),
        {
            "id": order,
            "receipt": rec["no"],
            "site": rec["site"],
            "location": rec["location"],
            "lot": rec["lot"],
            "weight": weight,
            "from": ctx.time,
            "to": ctx.time + RELEASE_WINDOW_MS,
            "by": ctx.creator,
            "loan": loan,
            "kind": kind,
            "t": ctx.time,
        },
    )
    return order


def check_weight(no: str, weight: Any) -> None:
    """Refuse a release weight that is not positive or finer than a receipt's weight can be."""
    if not isinstance(weight, Decimal) or not weight.is_finite() or weight <= 0:
        raise ContractError(
            f"releasing from {no}: the weight must be a positive Decimal, got {show(weight)}"
        )
    exponent = weight.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise ContractError(
            f"releasing from {no}: the weight must have at most {MAX_PLACES} decimal places, "
            f"got {show(weight)}"
        )


def free_parts(ctx: Context, no: str, what: str) -> tuple[str, str]:
    """The numbers of the two parts of a partial release of ``no``: ``<no>.<k>`` for the two
    smallest ``k >= 1`` no receipt has taken (a stranger cannot block a release by taking
    ``<no>.1``)."""
    found: list[str] = []
    k = 0
    while len(found) < 2:
        k += 1
        candidate = f"{no}.{k}"
        if len(candidate) > MAX_NO:
            raise ContractError(
                f"{what}: the part's receipt number {candidate} would be longer than {MAX_NO} "
                "characters"
            )
        if ctx.get(receipt_key(candidate)) is None:
            found.append(candidate)
    return found[0], found[1]


def release_weight(
    ctx: Context,
    no: str,
    weight: Decimal,
    *,
    kind: str,
    loan: str | None,
    act: str | None = None,
) -> list[str]:
    """Release ``weight`` t of receipt ``no`` (see the module docstring); return the receipt
    numbers that now hold the goods, the released one first. ``act`` names the transition in
    the endorsements (default: the kind)."""
    if kind not in RELEASE_KINDS:
        raise ContractError(f"release kind must be one of {', '.join(RELEASE_KINDS)}, got {kind!r}")
    rec = get_receipt(ctx, no)
    if rec["state"] not in LIVE_STATES:
        raise ContractError(f"receipt {no} is {rec['state']}: it holds no goods to release")
    frozen = rec["frozen"]
    if frozen is not None and not (kind == "disposal" and frozen["by"] == ctx.creator):
        # only the bank's own sale after its default moves frozen goods: never a regulator's
        raise ContractError(f"receipt {no} is frozen by {frozen['by']} ({frozen['reason']})")
    check_weight(no, weight)
    if weight > rec["weight"]:
        raise ContractError(
            f"releasing {tonnes(weight)} of {no}: it holds only {tonnes(rec['weight'])}"
        )
    act = act or kind
    state = RELEASE_KINDS[kind]
    freed: dict[str, Any] = {"frozen": None}
    if kind == "release":
        freed |= {"pledgee": None, "loan": None}
    if weight == rec["weight"]:
        new = set_state(ctx, rec, state, act, ctx.creator, weight=weight, **freed)
        _order(ctx, new, weight, kind, loan)
        return [no]
    part_nos = free_parts(ctx, no, f"releasing {tonnes(weight)} of {no}")
    with localcontext() as dc:
        dc.prec = 60
        q1 = (rec["quantity"] * weight / rec["weight"]).quantize(QUANTUM, ROUND_HALF_EVEN)
        q2 = rec["quantity"] - q1
        w2 = rec["weight"] - weight
    released, kept = split_receipt(
        ctx,
        rec,
        [(part_nos[0], q1, weight, {**freed, "state": state}), (part_nos[1], q2, w2, {})],
        act,
        ctx.creator,
    )
    _order(ctx, released, weight, kind, loan)
    return [released["no"], kept["no"]]


__all__ = [
    "RELEASE_KINDS",
    "RELEASE_WINDOW_MS",
    "get_receipt",
    "live_weight",
    "put_new",
    "release_weight",
    "set_state",
    "split_receipt",
]
