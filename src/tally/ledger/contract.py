"""The contract runtime: executing a proposal against the world state into a read/write set.

A contract is a :class:`Contract` subclass with a ``name`` and methods marked
:func:`function`; each takes ``(self, ctx, *args)`` with the proposal's ``args`` passed
positionally, and returns a deterministic-CBOR value (the endorsement's ``result``)::

    class Counter(Contract):
        name = "counter"

        @function
        def add(self, ctx: Context, key: str, n: int) -> int:
            v = (ctx.get(key) or 0) + n
            ctx.put(key, v)
            return v

Contracts must be deterministic, so that every endorsing peer produces the same endorsement
against the same state: they get no clock (``ctx.time`` is the proposal's ``t``) and no
randomness, iterate only in sorted order (``ctx.range`` is sorted) and store no floats (money
in integer minor units or Decimal). A contract refuses a proposal by raising
:class:`ContractError`; its message becomes the endorsement's ``error``.

:func:`execute` records, through the :class:`Context`:

* reads: every key the contract read from the state, with the version seen (None if it was
  absent) — keys the transaction had already written itself are not reads of the state;
* writes: the last value put to each key, None for a delete.

Both come back sorted by key, as ``tally.ledger.formats.Endorsement`` wants them. A failed
execution (any ``error``) has no reads, no writes and a None result.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

from tally.crypto import cbor
from tally.ledger.errors import LedgerError
from tally.ledger.formats import Proposal, Version
from tally.ledger.genesis import Member
from tally.ledger.state import (
    MAX_VALUE_BYTES,
    InvalidKey,
    StateView,
    check_key,
    check_prefix,
)

Reads = tuple[tuple[str, Version | None], ...]
Writes = tuple[tuple[str, Any], ...]

_F = TypeVar("_F", bound=Callable[..., Any])
_MARK = "__tally_contract_function__"


class ContractError(LedgerError):
    """Raised by a contract (or by :class:`Context` on its behalf) to refuse a proposal;
    ``reason`` becomes the endorsement's ``error``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def function(fn: _F) -> _F:
    """Mark a contract method as callable by proposals (its name is the proposal's ``fn``)."""
    setattr(fn, _MARK, True)
    return fn


class Contract:
    """Base class of contracts: set ``name`` and mark the callable methods with
    :func:`function`. Instances should hold no mutable state (all state is in ``ctx``)."""

    name: ClassVar[str]
    functions: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.functions = frozenset(
            n for n in dir(cls) if not n.startswith("_") and getattr(getattr(cls, n), _MARK, False)
        )


class Registry:
    """The contracts a peer can execute, by name."""

    def __init__(self, *contracts: Contract) -> None:
        self._contracts: dict[str, Contract] = {}
        for c in contracts:
            self.register(c)

    def register(self, contract: Contract) -> None:
        """Add ``contract``; raise ValueError if it has no name or the name is taken."""
        name = getattr(contract, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{type(contract).__name__} has no contract name")
        if name in self._contracts:
            raise ValueError(f"a contract named {name!r} is already registered")
        self._contracts[name] = contract

    def get(self, name: str) -> Contract | None:
        """The contract called ``name``, or None."""
        return self._contracts.get(name)

    def names(self) -> list[str]:
        return sorted(self._contracts)


def _float_inside(value: Any, depth: int = 0) -> bool:
    if isinstance(value, float):
        return True
    if depth > 64:
        return False
    if isinstance(value, list | tuple):
        return any(_float_inside(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return any(
            _float_inside(k, depth + 1) or _float_inside(v, depth + 1) for k, v in value.items()
        )
    return False


def normalise(value: Any) -> Any:
    """``value`` as it will read back from CBOR (tuples become lists, Decimals normalised),
    or raise :class:`ContractError` if it has no deterministic CBOR encoding."""
    if _float_inside(value):
        raise ContractError("non-deterministic value: float")
    try:
        data = cbor.encode(value)
    except (ValueError, RecursionError) as exc:
        raise ContractError(f"value not encodable: {exc}") from None
    if len(data) > MAX_VALUE_BYTES:
        raise ContractError(f"value of {len(data)} bytes exceeds {MAX_VALUE_BYTES}")
    return cbor.decode(data, max_size=MAX_VALUE_BYTES)


def _key(key: Any) -> str:
    try:
        return check_key(key)
    except InvalidKey as exc:
        raise ContractError(f"invalid key {key!r}: {exc.reason}") from None


class Context:
    """What a contract function sees of the world: the state (reads recorded), its pending
    writes, and the proposal's creator, transaction id, time and chain id (``chain``: the
    genesis chain id the proposal names, which consents are bound to)."""

    def __init__(
        self,
        state: StateView,
        creator: str,
        tx_id: bytes,
        time: int,
        members: Mapping[str, Member],
        *,
        chain: bytes,
    ) -> None:
        self.chain = chain
        self.creator = creator
        self.tx_id = tx_id
        self.time = time
        self.members = members
        self._state = state
        self._reads: dict[str, Version | None] = {}
        self._writes: dict[str, bytes | None] = {}  # encoded, so later mutation cannot leak

    def get(self, key: str) -> Any | None:
        """The value of ``key`` (this transaction's own write if it made one), None if absent."""
        key = _key(key)
        if key in self._writes:
            data = self._writes[key]
            return None if data is None else cbor.decode(data, max_size=MAX_VALUE_BYTES)
        found = self._state.get(key)
        if found is None:
            self._reads.setdefault(key, None)
            return None
        value, version = found
        self._reads.setdefault(key, (version[0], version[1]))
        return value

    def put(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (deterministic CBOR, no floats, not None: use delete)."""
        key = _key(key)
        if value is None:
            raise ContractError(f"put of None to {key!r}: use delete")
        self._writes[key] = cbor.encode(normalise(value))

    def delete(self, key: str) -> None:
        """Delete ``key`` (a no-op in the state if it is absent, but still a write)."""
        self._writes[_key(key)] = None

    def range(self, prefix: str) -> list[tuple[str, Any]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, sorted by key, including
        this transaction's own writes. Records a read of every key returned from the state."""
        try:
            prefix = check_prefix(prefix)
        except InvalidKey as exc:
            raise ContractError(f"invalid prefix {prefix!r}: {exc.reason}") from None
        merged: dict[str, Any] = {}
        for key, value, version in self._state.range(prefix):
            if key in self._writes:
                continue
            self._reads.setdefault(key, (version[0], version[1]))
            merged[key] = value
        for key, data in self._writes.items():
            if data is not None and key.startswith(prefix):
                merged[key] = cbor.decode(data, max_size=MAX_VALUE_BYTES)
        return sorted(merged.items())

    def reads(self) -> Reads:
        return tuple(sorted(self._reads.items()))

    def writes(self) -> Writes:
        return tuple(
            (k, None if d is None else cbor.decode(d, max_size=MAX_VALUE_BYTES))
            for k, d in sorted(self._writes.items())
        )


class Execution(NamedTuple):
    """The outcome of :func:`execute`: what an endorsement carries."""

    reads: Reads
    writes: Writes
    result: Any
    error: str


@dataclass(frozen=True)
class _Arity:
    least: int
    most: int | None  # None: any number (``*args``)

    def accepts(self, n: int) -> bool:
        return n >= self.least and (self.most is None or n <= self.most)

    def __str__(self) -> str:
        if self.most is None:
            return f"at least {self.least}"
        if self.most == self.least:
            return str(self.least)
        return f"{self.least} to {self.most}"


def _arity(method: Callable[..., Any]) -> _Arity:
    """How many proposal args a bound contract method takes (after ``ctx``)."""
    func = getattr(method, "__func__", None)
    if func is not None:
        return _arity_of(func, 2)  # the plain function: drop self and ctx (cached per function)
    return _arity_of(method, 1)


@functools.lru_cache(maxsize=4096)
def _arity_of(func: Callable[..., Any], skip: int) -> _Arity:
    params = list(inspect.signature(func).parameters.values())[skip:]
    least = most = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return _Arity(least, None)
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            most += 1
            if p.default is p.empty:
                least += 1
    return _Arity(least, most)


def _fail(error: str) -> Execution:
    return Execution((), (), None, error)


def execute(
    registry: Registry,
    state: StateView,
    proposal: Proposal,
    tx_id: bytes,
    members: Mapping[str, Member],
) -> Execution:
    """Run ``proposal`` against ``state``; never raises for anything the contract does.

    ``error`` is "" on success; else "unknown contract", "unknown function", "bad arguments:
    …", the reason of a :class:`ContractError` (e.g. "non-deterministic value: float"), or
    "internal: <exception type>" for any other exception from the contract.
    """
    contract = registry.get(proposal.contract)
    if contract is None:
        return _fail("unknown contract")
    if proposal.fn not in type(contract).functions:
        return _fail("unknown function")
    method: Callable[..., Any] = getattr(contract, proposal.fn)
    arity = _arity(method)
    if not arity.accepts(len(proposal.args)):
        return _fail(f"bad arguments: {proposal.fn} takes {arity}, got {len(proposal.args)}")
    ctx = Context(state, proposal.creator, tx_id, proposal.t, members, chain=proposal.chain)
    try:
        result = normalise(method(ctx, *proposal.args))
    except ContractError as exc:
        return _fail(exc.reason or "contract error")
    except Exception as exc:  # a contract bug must not crash the peer
        return _fail(f"internal: {type(exc).__name__}")
    return Execution(ctx.reads(), ctx.writes(), result, "")


__all__ = [
    "Context",
    "Contract",
    "ContractError",
    "Execution",
    "Reads",
    "Registry",
    "Writes",
    "execute",
    "function",
]
