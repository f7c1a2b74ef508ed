"""Conversions between table rows and the records of :mod:`tally.cloud.storage.api`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import RowMapping

from tally.cloud.storage.api import (
    AnchorRecord,
    BatchRecord,
    DeviceStatus,
    ItemRecord,
    NewGap,
    NewItem,
    RegistrationRecord,
)


def registration(row: RowMapping) -> RegistrationRecord:
    return RegistrationRecord(
        subject=row["subject"],
        kind=row["kind"],
        org=row["org"],
        site=row["site"],
        profile=row["profile"],
        suite=row["suite"],
        pub=bytes(row["pub"]),
        assurance=row["assurance"],
        t=row["t"],
        raw=bytes(row["raw"]),
        hash=bytes(row["hash"]),
        received=row["received"],
    )


def batch(row: RowMapping) -> BatchRecord:
    return BatchRecord(
        id=row["id"],
        edge=row["edge"],
        site=row["site"],
        suite=row["suite"],
        ctr=row["ctr"],
        prev=bytes(row["prev"]),
        t0=row["t0"],
        t1=row["t1"],
        n=row["n"],
        root=bytes(row["root"]),
        header=bytes(row["header"]),
        header_hash=bytes(row["header_hash"]),
        received=row["received"],
        receipt=bytes(row["receipt"]),
    )


def item_row(batch_id: int, i: NewItem) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "idx": i.index,
        "kind": i.kind,
        "signer": i.signer,
        "device": i.device,
        "site": i.site,
        "org": i.org,
        "boot": i.boot,
        "ctr": i.ctr,
        "t": i.t,
        "hash": i.hash,
        "assurance": i.assurance,
        "cose": i.cose,
        "measurements": i.measurements,
        "meta": i.meta,
        "rule": i.rule,
    }


def item(row: RowMapping) -> ItemRecord:
    return ItemRecord(
        id=row["id"],
        batch_id=row["batch_id"],
        edge=row["batch_edge"],
        batch_ctr=row["batch_ctr"],
        index=row["idx"],
        kind=row["kind"],
        signer=row["signer"],
        device=row["device"],
        site=row["site"],
        org=row["org"],
        boot=row["boot"],
        ctr=row["ctr"],
        t=row["t"],
        hash=bytes(row["hash"]),
        assurance=row["assurance"],
        cose=bytes(row["cose"]),
        measurements=row["measurements"],
        meta=row["meta"],
        rule=row["rule"],
        received=row["received"],
    )


def gap_row(g: NewGap) -> dict[str, Any]:
    return {
        "edge": g.edge,
        "device": g.device,
        "org": g.org,
        "boot": g.boot,
        "first": g.first,
        "last": g.last,
        "reason": g.reason,
        "t": g.t,
        "item_hash": g.item_hash,
    }


def device(row: RowMapping) -> DeviceStatus:
    return DeviceStatus(
        device=row["device"],
        org=row["org"],
        site=row["site"],
        last_seen=row["last_seen"],
        last_reading_t=row["last_reading_t"],
        boot=row["boot"],
        ctr=row["ctr"],
        items=row["items"],
    )


def anchor(row: RowMapping) -> AnchorRecord:
    tx_id = row["tx_id"]
    return AnchorRecord(
        batch_id=row["batch_id"],
        state=row["state"],
        tx_id=None if tx_id is None else bytes(tx_id),
        height=row["height"],
        log_index=row["log_index"],
        reason=row["reason"],
        t=row["t"],
    )
