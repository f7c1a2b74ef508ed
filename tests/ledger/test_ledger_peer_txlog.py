"""The peer's transaction log: persisted per block, proofs from its Merkle tree, a torn last
record dropped on open, any other damage refused, and cutting back to the state's height."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.ledger.errors import TxLogError
from tally.ledger.txlog import TxLog
from tally.merkle import SHA256, SM3, Hasher, root, verify_consistency, verify_inclusion


def fill(log: TxLog, blocks: int) -> list[bytes]:
    txs: list[bytes] = []
    for h in range(1, blocks + 1):
        block = [f"tx {h}.{i}".encode() for i in range(h)]  # block h holds h transactions
        log.append_block(h, bytes([h]) * 32, block)
        txs += block
    return txs


@pytest.mark.parametrize("hasher", [SHA256, SM3], ids=lambda h: h.name)
def test_roots_and_proofs_survive_a_reopen(tmp_path: Path, hasher: Hasher) -> None:
    path = tmp_path / "txlog.bin"
    log = TxLog(path, hasher)
    txs = fill(log, 5)
    log.close()
    log = TxLog(path, hasher)
    assert (log.height, log.size, log.block_hash) == (5, 15, b"\x05" * 32)
    assert log.size_at(3) == 6 and log.block_hash_at(2) == b"\x02" * 32
    assert log.root() == root(hasher, [hasher.hash_leaf(t) for t in txs])
    size = log.size_at(4)
    verify_inclusion(hasher, 7, size, hasher.hash_leaf(txs[7]), log.inclusion_proof(7, size),
                     log.root_at(size))  # fmt: skip
    verify_consistency(hasher, 6, 15, log.consistency_proof(6, 15), log.root_at(6), log.root())
    log.close()


def test_a_torn_last_record_is_dropped_and_damage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "txlog.bin"
    log = TxLog(path, SHA256)
    fill(log, 3)
    log.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])  # the last record torn by a crash
    log = TxLog(path, SHA256)
    assert log.height == 2 and path.stat().st_size < len(whole) - 5
    log.append_block(3, b"\x03" * 32, [b"again"])
    log.close()
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # a flipped bit in the first record, with records after it
    path.write_bytes(bytes(data))
    with pytest.raises(TxLogError, match="CRC"):
        TxLog(path, SHA256)


def test_truncate_cuts_back_to_a_height(tmp_path: Path) -> None:
    path = tmp_path / "txlog.bin"
    log = TxLog(path, SHA256)
    fill(log, 4)
    root3 = log.root_at(log.size_at(3))
    log.truncate(3)
    assert (log.height, log.size, log.root()) == (3, 6, root3)
    with pytest.raises(TxLogError, match="append of height 5"):
        log.append_block(5, b"\x05" * 32, [])
    log.close()
    log = TxLog(path, SHA256)
    assert log.root() == root3
    log.close()
