"""Supply-chain and site dashboards: a core enterprise's tiers, a warehouse's sites.

Each is a few GROUP BY queries bounded by the core's or the sites' index ranges (never a loop
over rows); keys are listed in each method's docstring. See :mod:`.dashq` for status sets.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tally.cloud.views import tables as t
from tally.cloud.views.dashq import (
    MAX_EDGES,
    OUTSTANDING_NOTES,
    PLEDGED,
    as_int,
    as_number,
    by_status,
    dec_text,
)


class ChainDashboards:
    """The core-tier and warehouse dashboards of :class:`~tally.cloud.views.store.Views`."""

    _engine: Engine

    def core_tiers(self, core: str) -> dict[str, Any]:
        """A core enterprise's supply chain and the notes it issued.

        Keys: ``core``; ``tiers``: [{tier, suppliers, notes, notes_amount_fen}] by tier —
        organisations whose core is ``core`` at each tier, and the outstanding notes issued by
        ``core`` that they hold; ``notes``: {status: {count, amount_fen}} of every note
        ``core`` issued; ``outstanding_fen``: Σ outstanding notes it issued; ``edges``: up to
        5000 [{from, to, tier}] for a graph (core → its tier-1 suppliers; a buyer → its seller
        one tier down, from trades; a parent note's holder → a split child's holder one tier
        down), ``tier`` being the tier of ``to``.
        """
        o, n = t.orgs, t.notes
        with self._engine.connect() as conn:
            tiers: dict[int, dict[str, Any]] = {}
            for tier, c in conn.execute(
                sa.select(o.c.tier, sa.func.count())
                .where(o.c.core == core, o.c.tier.is_not(None))
                .group_by(o.c.tier)
            ):
                tiers[int(tier)] = {"tier": int(tier), "suppliers": int(c), "notes": 0,
                                    "notes_amount_fen": 0}  # fmt: skip
            for tier, c, s in conn.execute(
                sa.select(o.c.tier, sa.func.count(), sa.func.sum(n.c.amount_fen))
                .select_from(n.join(o, o.c.id == n.c.holder))
                .where(n.c.issuer == core, n.c.status.in_(OUTSTANDING_NOTES), o.c.core == core,
                       o.c.tier.is_not(None))
                .group_by(o.c.tier)
            ):  # fmt: skip
                row = tiers.setdefault(int(tier), {"tier": int(tier), "suppliers": 0})
                row.update(notes=int(c), notes_amount_fen=as_int(s))
            notes = by_status(conn, n, "amount_fen", n.c.issuer == core)
            edges = conn.execute(self._edges(core).limit(MAX_EDGES)).all()
        return {
            "core": core,
            "tiers": [tiers[k] for k in sorted(tiers)],
            "notes": notes,
            "outstanding_fen": sum(
                v["amount_fen"] for s, v in notes.items() if s in OUTSTANDING_NOTES
            ),
            "edges": [{"from": a, "to": b, "tier": int(k)} for a, b, k in edges],
        }

    @staticmethod
    def _edges(core: str) -> sa.Select[Any]:
        o, n, tr = t.orgs, t.notes, t.trades
        up, down = o.alias("up"), o.alias("down")
        first = sa.select(sa.literal(core).label("a"), o.c.id.label("b"), o.c.tier.label("k"))
        first = first.where(o.c.core == core, o.c.tier == 1)
        chain = [up.c.core == core, down.c.core == core, down.c.tier == up.c.tier + 1]
        traded = (
            sa.select(up.c.id, down.c.id, down.c.tier)
            .select_from(tr.join(up, up.c.id == tr.c.buyer).join(down, down.c.id == tr.c.seller))
            .where(*chain)
        )
        parent = n.alias("parent")
        split = (
            sa.select(up.c.id, down.c.id, down.c.tier)
            .select_from(
                n.join(parent, parent.c.id == n.c.parent)
                .join(up, up.c.id == parent.c.holder)
                .join(down, down.c.id == n.c.holder)
            )
            .where(n.c.issuer == core, *chain)
        )
        u = sa.union(first, traded, split).subquery()
        return sa.select(u.c.a, u.c.b, u.c.k).order_by(u.c.k, u.c.a, u.c.b)

    def warehouse(self, tenant: str, sites: frozenset[str]) -> dict[str, Any]:
        """A warehouse's sites: each of ``sites`` (even without receipts) and the sites of the
        receipts whose custodian ``tenant`` is.

        Keys: ``tenant``; ``sites``: [{site, receipts, by_status: {status: count},
        value_fen, pledged: {count, quantity: {unit: decimal string}}, alerts_open}] by site;
        ``totals``: {receipts, pledged, alerts_open}.
        """
        r, al = t.receipts, t.alerts
        mine = sa.select(r.c.site).where(r.c.custodian == tenant).distinct()
        where = sa.or_(r.c.site.in_(sorted(sites)), r.c.site.in_(mine))
        out: dict[str, dict[str, Any]] = {}

        def site(s: str) -> dict[str, Any]:
            return out.setdefault(s, {"site": s, "receipts": 0, "by_status": {}, "value_fen": 0,
                                      "pledged": {"count": 0, "quantity": {}},
                                      "alerts_open": 0})  # fmt: skip

        for s in sorted(sites):
            site(s)
        with self._engine.connect() as conn:
            for s, status, c, v in conn.execute(
                sa.select(r.c.site, r.c.status, sa.func.count(), sa.func.sum(r.c.value_fen))
                .where(where)
                .group_by(r.c.site, r.c.status)
            ):
                row = site(s)
                row["receipts"] += int(c)
                row["by_status"][status] = int(c)
                row["value_fen"] += as_int(v)
            for s, unit, c, q in conn.execute(
                sa.select(
                    r.c.site,
                    r.c.unit,
                    sa.func.count(),
                    sa.func.sum(as_number(r.c.quantity, self._engine.dialect.name)),
                )
                .where(where, r.c.status.in_(PLEDGED))
                .group_by(r.c.site, r.c.unit)
            ):
                pledged = site(s)["pledged"]
                pledged["count"] += int(c)
                pledged["quantity"][unit] = dec_text(q)
            known = sorted(set(sites) | set(out))
            for s, c in conn.execute(
                sa.select(al.c.site, sa.func.count())
                .where(al.c.site.in_(known), al.c.acked_ms.is_(None))
                .group_by(al.c.site)
            ):
                site(s)["alerts_open"] = int(c)
        rows = [out[s] for s in sorted(out)]
        return {
            "tenant": tenant,
            "sites": rows,
            "totals": {
                "receipts": sum(x["receipts"] for x in rows),
                "pledged": sum(x["pledged"]["count"] for x in rows),
                "alerts_open": sum(x["alerts_open"] for x in rows),
            },
        }
