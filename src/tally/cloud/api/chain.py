"""The chain as the read model holds it: ``GET /v1/chain/status``, ``/v1/chain/blocks``,
``/v1/chain/blocks/{height}`` and ``/v1/chain/txs/{id}``.

Blocks are the consortium's common record: its members (banks, core enterprises,
warehouses, logistics firms: the policy's ``chain-member-read``) and the regulator read them;
others get 403 with the policy's reason. A transaction is its creator's resource, so a
tenant also reads the transactions it created.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path

from tally.cloud.api.deps import Reader, chain_gate, one, visible
from tally.cloud.api.openapi import problems
from tally.cloud.api.pages import MAX_INT, Cursor, Limit
from tally.cloud.api.routing import JsonRoute
from tally.cloud.api.schemas import BlockDetail, BlockPage, ChainStatus, Tx

if TYPE_CHECKING:
    from tally.cloud.api import ApiContext

Height = Annotated[int, Path(ge=0, le=MAX_INT)]
TxId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[0-9A-Fa-f]+$")]


def build(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonRoute, tags=["chain"])

    @r.get("/v1/chain/status", response_model=ChainStatus, responses=problems(401, 403))
    def chain_status(who: Reader) -> Any:
        """The highest block the read model holds."""
        chain_gate(who.principal)
        height = ctx.views.chain_height()
        latest = ctx.views.block(height) if height else None
        return {"height": height, "latest": latest}

    @r.get("/v1/chain/blocks", response_model=BlockPage, responses=problems(400, 401, 403))
    def list_blocks(who: Reader, limit: Limit = 50, cursor: Cursor = None) -> Any:
        """Blocks, highest first."""
        chain_gate(who.principal)
        got = ctx.views.list_blocks(limit, cursor)
        return {"items": list(got.items), "next_cursor": got.next_cursor}

    @r.get("/v1/chain/blocks/{height}", response_model=BlockDetail,
           responses=problems(400, 401, 403, 404))  # fmt: skip
    def get_block(who: Reader, height: Height) -> Any:
        """One block and its transactions, in order."""
        p = who.principal
        chain_gate(p)
        row = one(ctx, p, "block", ctx.views.block(height), f"no block at height {height}")
        txs = visible(ctx, p, "tx", ctx.views.block_txs(height))
        return {**dataclasses.asdict(row), "txs": txs}

    @r.get("/v1/chain/txs/{id}", response_model=Tx, responses=problems(400, 401, 403, 404))
    def get_tx(who: Reader, id: TxId) -> Any:
        """One transaction by its id (hex)."""
        return one(ctx, who.principal, "tx", ctx.views.tx(id), f"no transaction {id!r}")

    return r
