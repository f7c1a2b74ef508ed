"""Smoke test of ``tally bench ledger``: tiny sizes, JSON shape, positive numbers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bench_support import check_machine, positive, round_trips_as_json

from tally.bench.ledger import (
    POLICY,
    QUORUM,
    ledger_bench,
    measure_consortium,
    members,
    registry,
)
from tally.crypto import VerifyKey
from tally.ledger.consortium import Consortium
from tally.ledger.genesis import Ordering

MODE_KEYS = {"tx_per_s", "p50_final_s", "p95_final_s", "efficiency", "checks_per_tx", "goal_met"}


def test_ledger_bench_solo_proofs_and_catch_up() -> None:
    r = ledger_bench(
        n=20, concurrency=8, max_txs=5, max_ms=10, warmup=4, proof_sizes=(10, 100),
        proof_samples=5, catchup_blocks=20, catchup_per_block=2, modes=("solo",),
    )  # fmt: skip
    s = r["solo"]
    assert set(s) >= MODE_KEYS
    positive(s["tx_per_s"], s["p50_final_s"], s["p95_final_s"], s["efficiency"])
    assert s["p95_final_s"] >= s["p50_final_s"]
    assert s["committed"] == 20
    # 4 peers check the creator and 2 endorsements, 2 endorsers check the proposal, and
    # the collector checks 4 checkpoint signatures a block
    per_block = s["checks"]["txs_per_block"]
    assert abs(s["checks_per_tx"] - (4 * 3 + 2 + 4 / per_block)) < 0.01
    assert set(s["goal_met"]) == {"efficiency", "p95_final"}
    assert [p["leaves"] for p in r["proofs"]] == [10, 100]
    for p in r["proofs"]:
        positive(p["inclusion_proof_us"], p["inclusion_verify_us"], p["consistency_proof_us"],
                 p["consistency_verify_us"])  # fmt: skip
    assert r["proofs"][1]["inclusion_hashes_max"] == 7
    c = r["catch_up"]
    assert c["blocks"] == 20 and c["txs"] == 40 and c["to_height"] - c["from_height"] == 20
    positive(c["blocks_per_s"], c["tx_per_s"])
    assert "jetstream" not in r
    check_machine(r)
    round_trips_as_json(r)


def test_checks_per_tx_counts_every_signature_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [0]
    verify = VerifyKey.verify

    def counting(self: VerifyKey, signature: bytes, message: bytes, signer: str = "") -> None:
        calls[0] += 1
        verify(self, signature, message, signer)

    monkeypatch.setattr(VerifyKey, "verify", counting)

    async def run() -> tuple[int, float]:
        c = await Consortium.create(
            tmp_path, members(), {"bench.*": POLICY}, QUORUM, "intl", Ordering("solo", 5, 10),
            contracts=registry(),
        )  # fmt: skip
        try:
            before = calls[0]
            m, _ = await measure_consortium(c, 30, 8, 0, True, "count")
            return calls[0] - before, m["checks_per_tx"] * m["committed"]
        finally:
            await c.close()

    counted, predicted = asyncio.run(run())
    assert counted == round(predicted)
