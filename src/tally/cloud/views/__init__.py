"""The cloud's read model: the chain's records, alerts and applications as queryable tables.

The projector (:mod:`.project`) writes what the ledger holds into the ``v_`` tables
(migration 0006); the HTTP API, the console and the benchmark read them through
:class:`~tally.cloud.views.store.Views`, every list filtered by who asks (:class:`Scope`) in
SQL and paged by opaque cursors; :func:`~tally.cloud.views.access.resource_of` maps each row to
its authorisation resource. See ``docs/readmodel.md``.
"""

from __future__ import annotations

from tally.cloud.views.access import resource_of
from tally.cloud.views.model import (
    AlertRow,
    ApplicationRow,
    BlockRow,
    DocumentRow,
    LimitRow,
    LoanRow,
    NoteRow,
    OrgRow,
    Page,
    ReceiptRow,
    Scope,
    TradeRow,
    TxRow,
)
from tally.cloud.views.store import Views

__all__ = [
    "AlertRow",
    "ApplicationRow",
    "BlockRow",
    "DocumentRow",
    "LimitRow",
    "LoanRow",
    "NoteRow",
    "OrgRow",
    "Page",
    "ReceiptRow",
    "Scope",
    "TradeRow",
    "TxRow",
    "Views",
    "resource_of",
]
