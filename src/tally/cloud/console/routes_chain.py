"""The chain explorer and the verification page.

=====================================  =======================================================
``GET /console/chain``                 the chain's height, the latest checkpoint and who
                                       signed it, blocks highest first (``?cursor=``), a
                                       search (``?q=`` a height or a transaction id)
``GET /console/chain/blocks``          the blocks table alone (htmx pagination)
``GET /console/chain/blocks/{height}`` one block: hash, state commitment, signers, its
                                       transactions (those the reader may see)
``GET /console/chain/txs/{id}``        one transaction
``GET /console/verify``                drop a proof or transaction bundle
``POST /console/verify``               multipart ``bundle`` (file), ``csrf``: sent to
                                       ``POST /v1/verify``; the verdict step by step (the
                                       verdict alone for htmx)
=====================================  =======================================================

Blocks are read as the API reads them (:func:`tally.cloud.api.deps.chain_gate`, then every
transaction decided with :func:`~tally.cloud.api.deps.visible`).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tally.cloud.api.deps import chain_gate, one, visible
from tally.cloud.console.data import api_call, row
from tally.cloud.console.pages import nav_for, open_page
from tally.cloud.console.web import (
    ConsoleRoute,
    PageRefused,
    checked_principal,
    console_of,
    lang_of,
    respond,
)
from tally.cloud.identity import Principal

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
PAGE = 25
MAX_BUNDLE = 4 << 20
_HEX = re.compile(r"^[0-9a-fA-F]{8,128}$")


async def _blocks(request: Request, p: Principal, cursor: str | None) -> dict[str, Any]:
    views = console_of(request).ctx.views

    def work() -> Any:
        chain_gate(p)
        return views.list_blocks(PAGE, cursor)

    return {"blocks": await run_in_threadpool(work), "cursor": cursor}


@router.get("/console/chain")
async def chain(request: Request, cursor: str | None = None, q: str | None = None) -> Response:
    p, nav = await open_page(request, "chain")
    q = (q or "").strip()
    if q.isdigit():
        return RedirectResponse(f"/console/chain/blocks/{int(q)}", status_code=303)
    if _HEX.match(q):
        return RedirectResponse(f"/console/chain/txs/{q.lower()}", status_code=303)
    views = console_of(request).ctx.views
    height = await run_in_threadpool(views.chain_height)
    latest = await run_in_threadpool(views.block, height) if height else None
    values = await _blocks(request, p, cursor)
    first = values["blocks"] if cursor is None else (await _blocks(request, p, None))["blocks"]
    checkpoint = next((b for b in first.items if b.signers), None)
    return await respond(
        request, "chain.html", who=p, nav=nav, height=height, latest=latest, q=q,
        bad_query=bool(q), checkpoint=checkpoint, **values,
    )  # fmt: skip


@router.get("/console/chain/blocks")
async def blocks_fragment(request: Request, cursor: str | None = None) -> Response:
    p, _nav = await open_page(request, "chain")
    return await respond(request, "_blocks.html", who=p, **await _blocks(request, p, cursor))


@router.get("/console/chain/blocks/{height}")
async def block(request: Request, height: int) -> Response:
    p, nav = await open_page(request, "chain")
    ctx = console_of(request).ctx

    def work() -> tuple[Any, list[Any]]:
        chain_gate(p)
        found = one(ctx, p, "block", ctx.views.block(height), f"no block at height {height}")
        return found, visible(ctx, p, "tx", ctx.views.block_txs(height))

    found, txs = await run_in_threadpool(work)
    return await respond(request, "block.html", who=p, nav=nav, block=found, txs=txs)


@router.get("/console/chain/txs/{tx_id}")
async def tx(request: Request, tx_id: str) -> Response:
    p, nav = await open_page(request, "chain")
    views = console_of(request).ctx.views
    if not _HEX.match(tx_id):
        raise PageRefused(lang_of(request).t("chain.bad_tx", id=tx_id[:80]), 400)
    found = await row(request, p, "tx", await run_in_threadpool(views.tx, tx_id),
                      lang_of(request).t("chain.no_tx", id=tx_id))  # fmt: skip
    return await respond(request, "tx.html", who=p, nav=nav, tx=found)


@router.get("/console/verify")
async def verify_page(request: Request) -> Response:
    p, nav = await open_page(request, "verify")
    return await respond(request, "verify.html", who=p, nav=nav, verdict=None, error=None)


@router.post("/console/verify")
async def verify(request: Request) -> Response:
    form = await request.form(max_part_size=MAX_BUNDLE)
    p = await checked_principal(request, form)
    nav = nav_for(p, "verify", console_of(request).ctx.graph is not None)
    lang = lang_of(request)
    upload = form.get("bundle")
    verdict: Any = None
    error: str | None = None
    name = ""
    if not isinstance(upload, UploadFile):
        error = lang.t("verify.no_file")
    else:
        name = upload.filename or ""
        data = await upload.read(MAX_BUNDLE + 1)
        if not data:
            error = lang.t("verify.empty")
        elif len(data) > MAX_BUNDLE:
            error = lang.t("verify.too_large", most=lang.number(MAX_BUNDLE))
        else:
            csrf = form.get("csrf")
            got = await api_call(request, "POST", "/v1/verify", raw=(data, "application/cbor"),
                                 csrf=csrf if isinstance(csrf, str) else None)  # fmt: skip
            if got.ok:
                verdict = got.body
            else:
                error = lang.t("verify.failed", detail=got.detail)
    template = "_verdict.html" if request.headers.get("hx-request") else "verify.html"
    return await respond(request, template, status=400 if error else 200, who=p, nav=nav,
                         verdict=verdict, error=error, name=name)  # fmt: skip
