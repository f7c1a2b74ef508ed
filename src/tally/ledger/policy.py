"""Endorsement policies: which sets of member organisations may endorse a contract function.

The CBOR form (``docs/formats.md`` §21) is nested arrays::

    ["org", org] | ["role", role] | ["and", policy, ...] | ["or", policy, ...]
    | ["k_of", k, policy, ...]                                   ; 1 <= k <= number of policies

A set of endorsing organisations satisfies ``["org", o]`` when it contains ``o``,
``["role", r]`` when it contains a member with role ``r``, ``and`` when every sub-policy is
satisfied, ``or`` when one is, ``k_of`` when at least ``k`` are.

The text form, used in configuration and error messages::

    policy := "AND" "(" list ")" | "OR" "(" list ")" | K "-OF" "(" list ")"
            | "org" ":" name | "role" ":" name
    list   := policy ("," policy)*
    name   := bare | '"' (any character but '"' and '\\' | '\\"' | '\\\\')* '"'
    bare   := one or more letters, digits, "_", "-" or "."

Keywords (``AND``, ``OR``, ``K-OF``, ``org``, ``role``) are case-insensitive; names are not.
Whitespace may separate tokens. Example: ``AND(org:bank, OR(role:warehouse, 2-OF(org:a,
org:b, org:c)))``.

Positions inside a policy are written as index paths into the CBOR arrays: ``[2][1]`` is
element 1 of element 2 of the top-level array.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from tally.ledger.errors import LedgerError
from tally.ledger.formats import ROLES
from tally.ledger.genesis import GenesisError, Member

MAX_DEPTH = 32
"""Policies nested deeper than this are refused (they are never needed and would let a
malformed genesis exhaust the stack)."""

_OPS = ("org", "role", "and", "or", "k_of")


class PolicyError(LedgerError):
    """Raised when a policy is not of the CBOR form (``path`` locates the fault, ``reason``
    says what is wrong). :func:`check_policy` reports the same faults as GenesisError."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"policy{' at ' + path if path else ''}: {reason}")


class PolicySyntaxError(LedgerError, ValueError):
    """Raised by :func:`parse_policy` when the text is not a policy. ``pos`` is the 0-based
    character offset of the fault in ``text``; ``expected`` says what should have been there;
    ``found`` is what was there ("end of text" at the end)."""

    def __init__(self, text: str, pos: int, expected: str, found: str) -> None:
        self.text = text
        self.pos = pos
        self.expected = expected
        self.found = found
        super().__init__(f"policy text at position {pos}: expected {expected}, found {found}")


def _fmt(path: tuple[int, ...]) -> str:
    return "".join(f"[{i}]" for i in path)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shape(policy: Any, path: tuple[int, ...] = ()) -> None:
    """Check the CBOR form (everything but membership); raise PolicyError at the fault."""
    if len(path) > MAX_DEPTH:
        raise PolicyError(_fmt(path), f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(policy, list | tuple) or not policy:
        raise PolicyError(
            _fmt(path), f"a policy is a non-empty array, got {type(policy).__name__} {policy!r}"
        )
    op = policy[0]
    if op not in _OPS:
        raise PolicyError(_fmt((*path, 0)), f"unknown operator {op!r} (one of {', '.join(_OPS)})")
    if op in ("org", "role"):
        if len(policy) != 2:
            raise PolicyError(_fmt(path), f'["{op}", name] has 2 elements, got {len(policy)}')
        name = policy[1]
        if not isinstance(name, str) or not name:
            raise PolicyError(_fmt((*path, 1)), f"{op} must be non-empty text, got {name!r}")
        if op == "role" and name not in ROLES:
            raise PolicyError(
                _fmt((*path, 1)), f"unknown role {name!r} (one of {', '.join(ROLES)})"
            )
        return
    first = 1
    if op == "k_of":
        if len(policy) < 2 or not _int(policy[1]):
            got = repr(policy[1]) if len(policy) > 1 else "nothing"
            raise PolicyError(_fmt((*path, 1)), f"k_of needs an integer k, got {got}")
        first = 2
    subs = policy[first:]
    if not subs:
        raise PolicyError(_fmt(path), f"{op} needs at least one policy, got none")
    if op == "k_of" and not 1 <= policy[1] <= len(subs):
        raise PolicyError(
            _fmt((*path, 1)), f"k_of k={policy[1]} out of range 1..{len(subs)} (its policies)"
        )
    for i, sub in enumerate(subs, start=first):
        _shape(sub, (*path, i))


def _orgs(policy: Any, path: tuple[int, ...] = ()) -> list[tuple[str, str]]:
    """Every ``org`` named in a well-formed policy, with its path."""
    if policy[0] == "org":
        return [(_fmt((*path, 1)), policy[1])]
    if policy[0] == "role":
        return []
    first = 2 if policy[0] == "k_of" else 1
    out: list[tuple[str, str]] = []
    for i in range(first, len(policy)):
        out.extend(_orgs(policy[i], (*path, i)))
    return out


def check_policy(policy: Any, members: Mapping[str, Member], where: str) -> None:
    """Check ``policy`` is of the CBOR form and names only known orgs and roles.

    Raises :class:`GenesisError` with ``where`` (e.g. ``"policy loan.pledge"``), the index
    path of the fault and what is wrong, e.g. ``policy loan.pledge at [2][1]: unknown org
    'bnak' (members: bank, warehouse)``.
    """
    try:
        _shape(policy)
    except PolicyError as exc:
        at = f" at {exc.path}" if exc.path else ""
        raise GenesisError(f"{where}{at}: {exc.reason}") from None
    for at, org in _orgs(policy):
        if org not in members:
            raise GenesisError(
                f"{where} at {at}: unknown org {org!r} (members: {', '.join(sorted(members))})"
            )


def satisfied(policy: Any, orgs: AbstractSet[str], members: Mapping[str, Member]) -> bool:
    """Whether endorsements by ``orgs`` satisfy ``policy`` under membership ``members``.

    An org that is not in ``members`` counts for ``["org", o]`` only if it is named and a
    member; it holds no roles. Raises :class:`PolicyError` if ``policy`` is malformed.
    """
    _shape(policy)
    present = {o for o in orgs if o in members}
    roles = {r for o in present for r in members[o].roles}
    return _eval(policy, present, roles)


def _eval(policy: Any, present: set[str], roles: set[str]) -> bool:
    op = policy[0]
    if op == "org":
        return policy[1] in present
    if op == "role":
        return policy[1] in roles
    if op == "and":
        return all(_eval(p, present, roles) for p in policy[1:])
    if op == "or":
        return any(_eval(p, present, roles) for p in policy[1:])
    k: int = policy[1]
    return sum(1 for p in policy[2:] if _eval(p, present, roles)) >= k


# -- text form ------------------------------------------------------------------------------


def _bare_char(c: str) -> bool:
    return c.isalnum() or c in "_-."


def _name(name: str) -> str:
    if name and all(_bare_char(c) for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe(policy: Any) -> str:
    """The text form of a policy in CBOR form, e.g. ``2-OF(org:bank, role:warehouse)``.

    ``parse_policy(describe(p)) == p`` for every well-formed ``p``. Raises
    :class:`PolicyError` if ``policy`` is malformed.
    """
    _shape(policy)
    return _describe(policy)


def _describe(policy: Any) -> str:
    op = policy[0]
    if op in ("org", "role"):
        return f"{op}:{_name(policy[1])}"
    if op == "k_of":
        return f"{policy[1]}-OF(" + ", ".join(_describe(p) for p in policy[2:]) + ")"
    return str(op).upper() + "(" + ", ".join(_describe(p) for p in policy[1:]) + ")"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, expected: str, pos: int | None = None) -> PolicySyntaxError:
        at = self.pos if pos is None else pos
        found = "end of text" if at >= len(self.text) else repr(self.text[at : at + 12])
        return PolicySyntaxError(self.text, at, expected, found)

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, ch: str, what: str) -> None:
        self.skip()
        if not self.text.startswith(ch, self.pos):
            raise self.fail(what)
        self.pos += 1

    def word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isascii() and self.text[self.pos].isalnum()
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def name(self, kind: str) -> str:
        self.skip()
        start = self.pos
        t = self.text
        if t.startswith('"', start):
            out: list[str] = []
            i = start + 1
            while True:
                if i >= len(t):
                    raise self.fail(f"a closing '\"' for the quoted {kind} name", start)
                c = t[i]
                if c == '"':
                    break
                if c == "\\":
                    if i + 1 >= len(t) or t[i + 1] not in '"\\':
                        raise self.fail('\\" or \\\\ after a backslash', i)
                    out.append(t[i + 1])
                    i += 2
                    continue
                out.append(c)
                i += 1
            self.pos = i + 1
            value = "".join(out)
        else:
            while self.pos < len(t) and _bare_char(t[self.pos]):
                self.pos += 1
            value = t[start : self.pos]
        if not value:
            raise self.fail(f"a non-empty {kind} name", start)
        if kind == "role" and value not in ROLES:
            raise self.fail(f"a role (one of {', '.join(ROLES)})", start)
        return value

    def policy(self) -> list[Any]:
        self.skip()
        start = self.pos
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"at most {MAX_DEPTH} levels of nesting")
        word = self.word()
        lower = word.lower()
        if lower in ("org", "role"):
            self.expect(":", f"':' after {word}")
            return [lower, self.name(lower)]
        if lower in ("and", "or"):
            return [lower, *self.group(word)]
        if word.isdigit() and self.text[self.pos : self.pos + 3].lower() == "-of":
            self.pos += 3
            k = int(word)
            subs = self.group(f"{word}-OF")
            if not 1 <= k <= len(subs):
                raise self.fail(f"k between 1 and {len(subs)} (the number of policies)", start)
            return ["k_of", k, *subs]
        raise self.fail("a policy (AND(…), OR(…), K-OF(…), org:NAME or role:ROLE)", start)

    def group(self, op: str) -> list[Any]:
        self.expect("(", f"'(' after {op}")
        self.depth += 1
        subs = [self.policy()]
        while True:
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                subs.append(self.policy())
                continue
            if self.text.startswith(")", self.pos):
                self.pos += 1
                self.depth -= 1
                return subs
            raise self.fail(f"',' or ')' in {op}(…)")


def parse_policy(text: str) -> Any:
    """Parse the text form into the CBOR form; raise :class:`PolicySyntaxError` with the
    position of the fault and what was expected there. Org names are not checked against a
    membership (that is :func:`check_policy`'s job); role names are."""
    p = _Parser(text)
    out = p.policy()
    p.skip()
    if p.pos != len(text):
        raise p.fail("end of text after a complete policy")
    return out
