"""A test harness for contracts: proposals executed with :func:`execute` against a real
SQLite state and committed one per block, as a peer does (no signatures, no ordering)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tally.crypto import INTL, SigningKey, Suite
from tally.ledger.contract import Execution, Registry, execute
from tally.ledger.contracts import members_view, system_contracts
from tally.ledger.formats import Proposal
from tally.ledger.genesis import Genesis, Member
from tally.ledger.state import SqliteState

T0 = 1_700_000_000_000


class ContractChain:
    """Members ``orgs`` (org -> roles) with fresh keys, ``policies``, the system contracts.

    Each proposal gets its own time ``t`` (one ms after the previous one), readable after
    the call as :attr:`t`."""

    def __init__(
        self,
        path: Path,
        orgs: Mapping[str, Sequence[str]],
        policies: Mapping[str, Any],
        suite: Suite = INTL,
        quorum: int = 1,
    ) -> None:
        self.suite = suite
        self.keys = {o: SigningKey.generate(suite) for o in orgs}
        self.genesis = Genesis(
            name="contracts test",
            suite=suite,
            t=T0,
            members={o: Member(o, tuple(r), self.keys[o].public.raw) for o, r in orgs.items()},
            policies=dict(policies),
            checkpoint_quorum=quorum,
        )
        self.state = SqliteState(path)
        self.registry = Registry(*system_contracts())
        self.height = 0
        self.t = T0 + 1000

    def run(self, contract: str, fn: str, *args: Any, creator: str = "bank") -> Execution:
        self.t += 1
        p = Proposal(self.genesis.chain, contract, fn, args, creator, self.t.to_bytes(8), self.t)
        members = members_view(self.state, self.genesis)
        return execute(self.registry, self.state, p, INTL.hash(p.to_cbor()), members)

    def ok(self, contract: str, fn: str, *args: Any) -> Execution:
        ex = self.run(contract, fn, *args)
        assert ex.error == "", ex.error
        self.height += 1
        self.state.apply(self.height, [(k, v, (self.height, 0)) for k, v in ex.writes], b"c")
        return ex

    def refused(self, contract: str, fn: str, *args: Any) -> str:
        ex = self.run(contract, fn, *args)
        assert ex.error, "expected a refusal"
        assert (ex.reads, ex.writes, ex.result) == ((), (), None)
        return ex.error
