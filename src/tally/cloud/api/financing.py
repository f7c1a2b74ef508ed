"""The rules of a financing application, checked before one is stored or decided.

An application asks ``bank`` for ``amount_fen`` against a receipt or a note the applicant
holds. Each refusal is a 422 problem of its own type:

=============================  ======================================================
``unknown_bank``               ``bank`` names no bank (or the applicant itself)
``subject_not_held``           the applicant holds no such receipt or note (whether it
                               exists and whose it is are not told)
``subject_encumbered``         the receipt is pledged or not live (its loan, its
                               status), the note is financed or not live
``subject_value_unknown``      the receipt has no value to lend against
``amount_exceeds_value``       ``amount_fen`` is more than the receipt's value or the
                               note's amount
``subject_under_application``  an application of the applicant for the same subject is
                               submitted or approved already
``reason_required``            a refusal without a reason
=============================  ======================================================

A decision is the bank's (``approve``, ``refuse``; its credit officers and admins, as the
policy says) or the applicant's (``withdraw``); anyone else involved gets 403, and an
application already decided 409.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tally.cloud.api.schemas import ApplicationIn
from tally.cloud.errors import CloudError, Forbidden, NotFound
from tally.cloud.views import tables as t
from tally.cloud.views.model import ApplicationRow

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

RECEIPT_OK = ("live",)
NOTE_OK = ("live",)
OPEN = ("submitted", "approved")
DECISIONS = {"approve": "approved", "refuse": "refused", "withdraw": "withdrawn"}


class ApplicationRefused(CloudError):
    """Raised when an application breaks one of the rules above; ``code`` names which."""

    title = "Application refused"
    status = 422

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        super().__init__(detail)


def kind_of(ctx: ApiContext, tenant: str) -> str | None:
    """The tenant kind of an organisation: from the read model, else the identity store."""
    org = ctx.views.org(tenant)
    if org is not None:
        return org.kind
    try:
        return ctx.identities.tenant(tenant).kind
    except NotFound:
        return None


def new_id(now_ms: int) -> str:
    return f"app-{now_ms}-{secrets.token_hex(4)}"


def check_subject(ctx: ApiContext, applicant: str, body: ApplicationIn) -> None:
    """Raise ApplicationRefused unless ``applicant`` may ask ``body`` of ``body.bank``."""
    if body.bank == applicant or kind_of(ctx, body.bank) != "bank":
        raise ApplicationRefused("unknown_bank", f"{body.bank!r} is not a bank one may apply to")
    what, no = body.subject_kind, body.subject
    not_held = ApplicationRefused("subject_not_held", f"{applicant!r} holds no {what} {no!r}")
    if what == "receipt":
        rc = ctx.views.receipt(no)
        if rc is None or rc.holder != applicant:
            raise not_held
        if rc.status not in RECEIPT_OK or rc.loan is not None or rc.bank is not None:
            pledged = f", pledged to {rc.bank!r}" if rc.bank else ""
            loan = f" for loan {rc.loan!r}" if rc.loan else ""
            raise ApplicationRefused(
                "subject_encumbered",
                f"receipt {no!r} is {rc.status}{pledged}{loan}: only a live receipt "
                "that is not pledged can back an application",
            )
        if rc.value_fen is None:
            raise ApplicationRefused(
                "subject_value_unknown", f"receipt {no!r} has no known value to lend against"
            )
        value, named = rc.value_fen, "the receipt's value"
    else:
        nt = ctx.views.note(no)
        if nt is None or nt.holder != applicant:
            raise not_held
        if nt.status not in NOTE_OK:
            raise ApplicationRefused(
                "subject_encumbered",
                f"note {no!r} is {nt.status}: only a live note that is not financed can "
                "back an application",
            )
        value, named = nt.amount_fen, "the note's amount"
    if body.amount_fen > value:
        raise ApplicationRefused(
            "amount_exceeds_value",
            f"amount_fen {body.amount_fen} is more than {named}, {value} fen",
        )
    ap = t.applications
    with ctx.views.engine.connect() as conn:
        open_id = conn.execute(
            sa.select(ap.c.id).where(
                ap.c.applicant == applicant, ap.c.subject_kind == what, ap.c.subject == no,
                ap.c.status.in_(OPEN),
            ).limit(1)
        ).scalar()  # fmt: skip
    if open_id is not None:
        raise ApplicationRefused(
            "subject_under_application",
            f"{what} {no!r} already backs application {open_id!r}, which is not refused or "
            "withdrawn",
        )


def application(ctx: ApiContext, applicant: str, actor: str, body: ApplicationIn) -> ApplicationRow:
    """A new submitted application (not stored)."""
    now = ctx.clock()
    return ApplicationRow(
        id=new_id(now), applicant=applicant, bank=body.bank, subject_kind=body.subject_kind,
        subject=body.subject, amount_fen=body.amount_fen, status="submitted", created_ms=now,
        created_by=actor, decided_by=None, decided_ms=None, reason=None,
    )  # fmt: skip


def check_decision(tenant: str, row: ApplicationRow, decision: str, reason: str | None) -> str:
    """The new status; Forbidden when ``tenant`` may not make this decision,
    ApplicationRefused for a refusal without a reason."""
    if decision == "withdraw":
        if tenant != row.applicant:
            raise Forbidden(
                f"decision: only the applicant {row.applicant!r} withdraws its application"
            )
    elif tenant != row.bank:
        raise Forbidden(f"decision: only the bank {row.bank!r} approves or refuses")
    if decision == "refuse" and not reason:
        raise ApplicationRefused("reason_required", "a refusal needs a reason")
    return DECISIONS[decision]
