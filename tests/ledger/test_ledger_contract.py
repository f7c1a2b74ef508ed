"""The contract runtime: read/write recording, errors, determinism, with a toy token contract
run against a real SQLite state."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tally.ledger.contract import (
    Context,
    Contract,
    ContractError,
    Execution,
    Registry,
    execute,
    function,
)
from tally.ledger.formats import Endorsement, Proposal, decode_endorsement
from tally.ledger.genesis import Member
from tally.ledger.state import SqliteState, StateStore

MEMBERS = {
    "bank": Member("bank", ("bank",), b""),
    "wh": Member("wh", ("warehouse",), b""),
}
TX = b"\x07" * 32


class Token(Contract):
    """Simulated token: balances under ``bal/<owner>``, a counter under ``count``."""

    name = "token"

    @function
    def mint(self, ctx: Context, owner: str, amount: int) -> int:
        if "bank" not in ctx.members[ctx.creator].roles:
            raise ContractError(f"{ctx.creator} may not mint")
        bal = (ctx.get(f"bal/{owner}") or 0) + amount
        ctx.put(f"bal/{owner}", bal)
        return bal

    @function
    def transfer(self, ctx: Context, frm: str, to: str, amount: int) -> None:
        have = ctx.get(f"bal/{frm}") or 0
        if amount > have:
            raise ContractError(f"insufficient funds: {frm} has {have}, needs {amount}")
        ctx.put(f"bal/{frm}", have - amount)
        ctx.put(f"bal/{to}", (ctx.get(f"bal/{to}") or 0) + amount)

    @function
    def burn(self, ctx: Context, owner: str) -> Any:
        ctx.delete(f"bal/{owner}")
        return ctx.get(f"bal/{owner}")  # own delete: None, and not a read of the state

    @function
    def balances(self, ctx: Context, prefix: str = "bal/") -> list[list[Any]]:
        return [[k, v] for k, v in ctx.range(prefix)]

    @function
    def count(self, ctx: Context, *steps: int) -> int:
        n = ctx.get("count") or 0
        for s in steps:
            n += s
            ctx.put("count", n)
        return ctx.get("count") or 0

    @function
    def stamp(self, ctx: Context) -> dict[str, Any]:
        ctx.put("last", {"by": ctx.creator, "tx": ctx.tx_id, "t": ctx.time})
        return {"price": Decimal("1.50"), "pair": (1, 2)}

    @function
    def put_float(self, ctx: Context, nested: bool) -> None:
        ctx.put("f", {"x": [1.5]} if nested else 0.1)

    @function
    def return_float(self, ctx: Context) -> float:
        ctx.put("ok", 1)
        return 2.5

    @function
    def put_set(self, ctx: Context) -> None:
        ctx.put("s", {1, 2})

    @function
    def put_none(self, ctx: Context) -> None:
        ctx.put("n", None)

    @function
    def bad_key(self, ctx: Context) -> None:
        ctx.get("nul\x00")

    @function
    def crash(self, ctx: Context) -> int:
        ctx.put("half", 1)
        return 1 // 0

    def helper(self, ctx: Context) -> None:
        """Not marked: proposals cannot call it."""
        ctx.put("helper", 1)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    with SqliteState(tmp_path / "state.db") as s:
        s.apply(1, [("bal/alice", 10, (1, 0)), ("bal/bob", 5, (1, 1)), ("bal0", 1, (1, 2)),
                    ("bal", 2, (1, 2)), ("count", 3, (1, 3))], b"c1")  # fmt: skip
        yield s


REGISTRY = Registry(Token())


def run(
    state: StateStore, fn: str, *args: Any, creator: str = "bank", contract: str = "token"
) -> Execution:
    p = Proposal(b"chain", contract, fn, args, creator, b"nonce", 1_700_000_000_000)
    return execute(REGISTRY, state, p, TX, MEMBERS)


def test_reads_and_writes_are_recorded_with_versions(state: StateStore) -> None:
    reads, writes, result, error = run(state, "transfer", "alice", "carol", 4)
    assert error == ""
    assert result is None
    assert reads == (("bal/alice", (1, 0)), ("bal/carol", None))  # absent: None
    assert writes == (("bal/alice", 6), ("bal/carol", 4))


def test_reads_of_own_writes_are_not_recorded(state: StateStore) -> None:
    ex = run(state, "count", 1, 2, 3)
    assert ex.result == 9
    assert ex.reads == (("count", (1, 3)),)  # read once, before writing; re-reads not recorded
    assert ex.writes == (("count", 9),)  # last write wins
    ex = run(state, "mint", "dave", 7)
    assert ex.reads == (("bal/dave", None),)


def test_delete_is_a_write_of_none(state: StateStore) -> None:
    ex = run(state, "burn", "bob")
    assert ex == Execution(reads=(), writes=(("bal/bob", None),), result=None, error="")


def test_range_is_sorted_merges_own_writes_and_records_returned_keys(state: StateStore) -> None:
    ex = run(state, "balances")
    assert ex.result == [["bal/alice", 10], ["bal/bob", 5]]  # not "bal" or "bal0"
    assert ex.reads == (("bal/alice", (1, 0)), ("bal/bob", (1, 1)))

    class Mixer(Contract):
        name = "mixer"

        @function
        def go(self, ctx: Context) -> list[Any]:
            ctx.put("bal/zed", 1)
            ctx.put("bal/aaron", 2)
            ctx.delete("bal/bob")
            ctx.put("bal/alice", 11)
            return ctx.range("bal/")

    p = Proposal(b"chain", "mixer", "go", (), "bank", b"n", 0)
    ex = execute(Registry(Mixer()), state, p, TX, MEMBERS)
    assert ex.error == ""
    assert ex.result == [["bal/aaron", 2], ["bal/alice", 11], ["bal/zed", 1]]
    assert ex.reads == ()  # every state key in the range was already written by the tx
    assert [k for k, _ in ex.writes] == ["bal/aaron", "bal/alice", "bal/bob", "bal/zed"]


def test_context_carries_the_proposal(state: StateStore) -> None:
    ex = run(state, "stamp", creator="wh")
    assert ex.writes == (("last", {"by": "wh", "tx": TX, "t": 1_700_000_000_000}),)
    assert ex.result == {"price": Decimal("1.5"), "pair": [1, 2]}  # as CBOR reads it back


@pytest.mark.parametrize(
    ("fn", "args", "error"),
    [
        ("mint", ("x", 1), None),
        ("nope", (), "unknown function"),
        ("helper", (), "unknown function"),
        ("__init__", (), "unknown function"),
        ("functions", (), "unknown function"),
        ("transfer", ("alice", "bob"), "bad arguments: transfer takes 3, got 2"),
        ("balances", (1, 2), "bad arguments: balances takes 0 to 1, got 2"),
        ("transfer", ("alice", "bob", 99), "insufficient funds: alice has 10, needs 99"),
        ("put_float", (False,), "non-deterministic value: float"),
        ("put_float", (True,), "non-deterministic value: float"),
        ("return_float", (), "non-deterministic value: float"),
        ("put_none", (), "put of None to 'n': use delete"),
        ("bad_key", (), "invalid key 'nul\\x00': must not contain NUL"),
        ("crash", (), "internal: ZeroDivisionError"),
    ],
)
def test_errors(state: StateStore, fn: str, args: tuple[Any, ...], error: str | None) -> None:
    ex = run(state, fn, *args, creator="wh")
    if error is None:  # wh is no bank
        assert ex.error == "wh may not mint"
        return
    assert ex.error == error
    assert (ex.reads, ex.writes, ex.result) == ((), (), None)  # a failure writes nothing


def test_unencodable_value(state: StateStore) -> None:
    ex = run(state, "put_set")
    assert ex.error.startswith("value not encodable: ")
    assert ex.writes == ()


def test_unknown_contract(state: StateStore) -> None:
    assert run(state, "mint", "x", 1, contract="tokn") == Execution(
        (), (), None, "unknown contract"
    )


def test_the_state_is_not_changed_by_execution(state: StateStore) -> None:
    before = state.range("")
    run(state, "transfer", "alice", "bob", 3)
    assert state.range("") == before and state.height() == 1


def test_registry() -> None:
    reg = Registry()
    reg.register(Token())
    assert reg.get("token") is not None and reg.get("other") is None
    assert reg.names() == ["token"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register(Token())

    class Nameless(Contract):
        pass

    with pytest.raises(ValueError, match="no contract name"):
        reg.register(Nameless())
    assert Token.functions >= {"mint", "transfer", "balances"}
    assert "helper" not in Token.functions


def _endorsement(state: StateStore, org: str, fn: str, *args: Any) -> bytes:
    ex = run(state, fn, *args)
    return Endorsement(TX, org, ex.reads, ex.writes, ex.result, ex.error).to_cbor()


def test_same_proposal_same_state_gives_identical_endorsements(tmp_path: Path) -> None:
    stores = []
    for name in ("a", "b"):
        s = SqliteState(tmp_path / f"{name}.db")
        s.apply(1, [("bal/alice", 10, (1, 0)), ("bal/bob", 5, (1, 1))], b"c1")
        stores.append(s)
    for fn, args in [("transfer", ("alice", "bob", 3)), ("balances", ()), ("stamp", ()),
                     ("transfer", ("bob", "alice", 99)), ("crash", ())]:  # fmt: skip
        one, two = (_endorsement(s, "bank", fn, *args) for s in stores)
        assert one == two
        # and the endorsement decodes back to exactly what execute produced
        ex = run(stores[0], fn, *args)
        assert decode_endorsement(one) == Endorsement(
            TX, "bank", ex.reads, ex.writes, ex.result, ex.error
        )
    # a different state version gives a different endorsement
    stores[1].apply(2, [("bal/alice", 10, (2, 0))], b"c2")
    assert _endorsement(stores[0], "bank", "transfer", "alice", "bob", 3) != _endorsement(
        stores[1], "bank", "transfer", "alice", "bob", 3
    )
    for s in stores:
        s.close()
