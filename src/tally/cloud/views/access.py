"""The one mapping from a read-model row to the authz resource it is (:func:`resource_of`).

The API, the console and the live stream decide every read and write of a row with
``authz.decide(principal, action, resource_of(kind, row))``; the list queries' visibility
(``v_parties``) links each row to exactly the owner, bank and parties named here.

============  ========  ===========  ===============================================  =============
``kind``      resource  owner        parties                                          bank / site
============  ========  ===========  ===============================================  =============
receipt       receipt   holder       custodian (if any)                               bank; site
loan          loan      borrower     —                                                bank
application   loan      applicant    —                                                bank
note          note      holder       issuer ∪ earlier holders known to the view       bank
trade         trade     seller       buyer                                            bank
document      document  issuer       counterparty (if any)                            its trade's
alert         alert     owner        —                                                bank; site
org / party   party     the org id   —                                                org's bank
block         chain     consortium   —                                                —
tx            chain     its creator  —                                                —
============  ========  ===========  ===============================================  =============

Facts a row does not carry are passed in: ``parties`` adds tenants (a note's earlier holders,
from :meth:`Views.parties_of <tally.cloud.views.store_reads.Reads.parties_of>`), ``bank`` gives
a document its trade's bank, ``sensitive=True`` marks an organisation's decrypted sensitive
fields (viewers never read them). :meth:`Views.resource` fills both from the view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tally.cloud.authz import ResourceRef
from tally.cloud.views.model import (
    AlertRow,
    ApplicationRow,
    BlockRow,
    DocumentRow,
    LoanRow,
    NoteRow,
    OrgRow,
    ReceiptRow,
    TradeRow,
    TxRow,
)

CONSORTIUM = "consortium"
"""The owner of blocks: the consortium as a whole."""

ROW_TYPES: dict[str, type[Any]] = {
    "receipt": ReceiptRow,
    "loan": LoanRow,
    "application": ApplicationRow,
    "note": NoteRow,
    "trade": TradeRow,
    "document": DocumentRow,
    "alert": AlertRow,
    "org": OrgRow,
    "party": OrgRow,
    "block": BlockRow,
    "tx": TxRow,
}
KINDS = tuple(ROW_TYPES)


def _set(*who: str | None) -> frozenset[str]:
    return frozenset(w for w in who if w)


def resource_of(
    kind: str,
    row: Any,
    *,
    parties: Iterable[str] = (),
    bank: str | None = None,
    sensitive: bool = False,
) -> ResourceRef:
    """The authz resource of ``row`` of ``kind`` (see the module's table).

    ``parties`` are added to the row's own parties (never its owner); ``bank`` is used when
    the row has no bank of its own (a document); ``sensitive`` applies to organisations.
    Raises ValueError for an unknown kind or a row of the wrong class.
    """
    want = ROW_TYPES.get(kind)
    if want is None:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(row, want):
        raise ValueError(f"a {kind} resource needs a {want.__name__}, got {type(row).__name__}")
    extra = frozenset(p for p in parties if p)
    ref: ResourceRef
    if kind == "receipt":
        ref = ResourceRef("receipt", row.holder, _set(row.custodian), row.bank, row.site)
    elif kind == "loan":
        ref = ResourceRef("loan", row.borrower, frozenset(), row.bank)
    elif kind == "application":
        ref = ResourceRef("loan", row.applicant, frozenset(), row.bank)
    elif kind == "note":
        ref = ResourceRef("note", row.holder, _set(row.issuer), row.bank)
    elif kind == "trade":
        ref = ResourceRef("trade", row.seller, _set(row.buyer), row.bank)
    elif kind == "document":
        ref = ResourceRef("document", row.issuer, _set(row.counterparty), bank or None)
    elif kind == "alert":
        ref = ResourceRef("alert", row.owner, frozenset(), row.bank, row.site)
    elif kind in ("org", "party"):
        return ResourceRef("party", row.id, frozenset(), row.bank, sensitive=sensitive)
    elif kind == "block":
        return ResourceRef("chain", CONSORTIUM)
    else:
        return ResourceRef("chain", row.creator)
    if extra:
        ref = ResourceRef(
            ref.kind, ref.owner, (ref.parties | extra) - {ref.owner}, ref.bank, ref.site
        )
    return ref
