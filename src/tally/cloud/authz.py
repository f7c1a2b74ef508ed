"""Authorisation: one policy, in one place, that says who may do what to which resource.

:func:`decide` takes a principal (who asks: its tenant, the tenant's kind, its roles, the
scopes of its API token, its sites — :class:`tally.cloud.identity.Principal` fits), an action
(``read``, ``write`` or ``admin``) and a :class:`ResourceRef` (a resource's kind, its owner
tenant, the other tenants involved, its bank, its site, whether it is sensitive) and returns a
:class:`Decision`: allowed or not, and the rule that decided, named in the reason.

The policy is data: :data:`RULES` are the grants, each for some tenant kinds, one action,
some resource kinds, some user roles and one relation between the asker and the resource
(the resource is its tenant's own; its tenant is among the resource's parties; it is the
resource's bank; the resource is at one of its sites; any resource). Before the grants the
refusals of :data:`DENY_RULES` apply in their order (an API token without the scope, a
regulator writing, anything changing the audit log, the government portal outside
aggregates). A request no grant covers is refused by ``default-deny``; one a grant covers
except that the resource is sensitive by ``sensitive`` (viewers never read sensitive
resources; only the rules marked so extend to them).

:func:`matrix` gives the whole table (tenant kind × user role × resource kind × action → the
rules that may grant it, and the rule that refuses otherwise); :func:`render_matrix_markdown`
prints it as the "Authorisation" section of ``docs/security.md`` and a test checks that the
document and this module agree. After a change of the policy regenerate the section with
``python -m tally.cloud.authz docs/security.md``.

Everything here is pure: no clock, no input or output (except that command), no state.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from tally.cloud.identity import TENANT_KINDS, USER_ROLES

ACTIONS = ("read", "write", "admin")
VIAS = ("session", "token")
SCOPE_NOUNS: dict[str, str] = {
    "device": "devices",
    "telemetry": "telemetry",
    "evidence": "evidence",
    "receipt": "receipts",
    "loan": "loans",
    "note": "notes",
    "document": "documents",
    "trade": "trades",
    "party": "parties",
    "alert": "alerts",
    "chain": "chain",
    "audit": "audit",
    "aggregate": "aggregates",
    "user": "users",
}
RESOURCE_KINDS = tuple(SCOPE_NOUNS)
GOVERNANCE = frozenset({"audit", "user"})
BUSINESS = frozenset(RESOURCE_KINDS) - GOVERNANCE
TENANT_TOKEN_ROLES = frozenset({"operator"})
"""The roles of a tenant-wide API token (one issued to no user), always within its scopes."""

BEGIN = "<!-- authz:begin -->"
END = "<!-- authz:end -->"


class AuthzError(ValueError):
    """Raised for a malformed question (an unknown action, a malformed resource)."""


class PrincipalLike(Protocol):
    """What :func:`decide` needs to know about who asks."""

    @property
    def tenant(self) -> str: ...
    @property
    def tenant_kind(self) -> str: ...
    @property
    def user(self) -> str | None: ...
    @property
    def roles(self) -> Collection[str]: ...
    @property
    def scopes(self) -> Collection[str]: ...
    @property
    def via(self) -> str: ...
    @property
    def sites(self) -> Collection[str]: ...


@dataclass(frozen=True)
class ResourceRef:
    """What is asked about: ``kind`` (one of :data:`RESOURCE_KINDS`), the ``owner`` tenant,
    ``parties`` (the other tenants involved: custodian, issuer, counterparties), the ``bank``
    responsible for it (the pledgee, the lender, the confirming bank), the ``site`` it is at
    and whether it is ``sensitive`` (identity numbers, accounts, financial statements)."""

    kind: str
    owner: str
    parties: frozenset[str] = frozenset()
    bank: str | None = None
    site: str | None = None
    sensitive: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_NOUNS:
            raise AuthzError(
                f"resource kind must be one of {', '.join(RESOURCE_KINDS)}, got {self.kind!r}"
            )
        if not isinstance(self.owner, str) or not self.owner:
            raise AuthzError(f"resource owner must be a non-empty tenant id, got {self.owner!r}")
        if not isinstance(self.parties, frozenset):
            got = type(self.parties).__name__
            raise AuthzError(f"resource parties must be a frozenset of tenant ids, got {got}")
        for p in sorted(self.parties, key=repr):
            if not isinstance(p, str) or not p:
                raise AuthzError(f"resource party must be a non-empty tenant id, got {p!r}")
        for name in ("bank", "site"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise AuthzError(f"resource {name} must be None or non-empty text, got {value!r}")
        if not isinstance(self.sensitive, bool):
            raise AuthzError(f"resource sensitive must be True or False, got {self.sensitive!r}")


@dataclass(frozen=True)
class Decision:
    """The answer: ``allowed``, and ``reason`` starting with the deciding ``rule``'s name."""

    allowed: bool
    reason: str
    rule: str


@dataclass(frozen=True)
class Rule:
    """A grant: tenants of ``tenant_kinds`` with one of ``roles`` may ``action`` a resource of
    one of ``kinds`` when ``relation`` holds; a sensitive one too if ``sensitive`` (never for a
    viewer). ``code`` is the letter the matrix shows."""

    name: str
    code: str
    action: str
    tenant_kinds: frozenset[str]
    kinds: frozenset[str]
    roles: frozenset[str]
    relation: str
    sensitive: bool
    says: str


Relation = Callable[[PrincipalLike, ResourceRef], bool]
RELATIONS: dict[str, tuple[Relation, str]] = {
    "own": (lambda p, r: r.owner == p.tenant, "its own tenant's"),
    "party": (lambda p, r: p.tenant in r.parties, "it is among the resource's parties"),
    "bank": (lambda p, r: r.bank == p.tenant, "it is the resource's bank"),
    "bank-or-party": (
        lambda p, r: r.bank == p.tenant or p.tenant in r.parties,
        "it is the resource's bank or among its parties",
    ),
    "site": (lambda p, r: r.site is not None and r.site in p.sites, "at one of its sites"),
    "any": (lambda p, r: True, "any tenant's"),
}


def _fs(*items: str) -> frozenset[str]:
    return frozenset(items)


_ALL_ROLES = frozenset(USER_ROLES)
_WORKERS = _fs("operator", "admin")
_FINANCE = _fs("operator", "credit_officer", "admin")
_CREDIT = _fs("credit_officer", "admin")
_MEMBERS = frozenset(TENANT_KINDS) - _fs("regulator", "government")
_CONSORTIUM = _fs("bank", "core_enterprise", "warehouse", "logistics")
_OPS_KINDS = _fs("device", "telemetry", "evidence", "alert", "chain", "aggregate")


RULES: tuple[Rule, ...] = (
    Rule("own-read", "o", "read", frozenset(TENANT_KINDS) - _fs("government"), BUSINESS,
         _ALL_ROLES, "own", True, "a tenant reads its own resources"),
    Rule("governance-read", "o", "read", frozenset(TENANT_KINDS), GOVERNANCE,
         _fs("auditor", "admin"), "own", True,
         "auditors and admins read their own tenant's audit log and users"),
    Rule("bank-customer-read", "c", "read", _fs("bank"), BUSINESS - _fs("aggregate"),
         _ALL_ROLES, "bank-or-party", True,
         "a bank reads its customers' resources: those it is the bank of or a party to"),
    Rule("warehouse-site-read", "s", "read", _fs("warehouse"),
         _fs("device", "telemetry", "evidence", "alert", "receipt"), _ALL_ROLES, "site", False,
         "a warehouse reads the devices, telemetry, evidence, alerts and receipts of its sites"),
    Rule("warehouse-custody-read", "k", "read", _fs("warehouse"), _fs("receipt"), _ALL_ROLES,
         "party", False, "a warehouse reads the receipts it keeps (it is among their parties)"),
    Rule("core-note-read", "p", "read", _fs("core_enterprise"), _fs("note"), _ALL_ROLES,
         "party", False, "a core enterprise reads the notes it issued (it is among their "
         "parties)"),
    Rule("core-trade-read", "p", "read", _fs("core_enterprise"), _fs("trade"), _ALL_ROLES,
         "party", False, "a core enterprise reads its suppliers' trades with it"),
    Rule("regulator-read", "a", "read", _fs("regulator"), BUSINESS, _ALL_ROLES, "any", True,
         "the regulator reads every tenant's resources"),
    Rule("regulator-audit-read", "a", "read", _fs("regulator"), GOVERNANCE, _fs("auditor"),
         "any", True, "the regulator's auditors read every tenant's audit log and users"),
    Rule("government-aggregate-read", "a", "read", _fs("government"), _fs("aggregate"),
         _ALL_ROLES, "any", False, "the government portal reads aggregates"),
    Rule("chain-member-read", "m", "read", _CONSORTIUM, _fs("chain"), _ALL_ROLES, "any",
         False, "every consortium member reads the chain's blocks and transactions, "
         "whoever created them"),
    Rule("own-ops-write", "o", "write", _MEMBERS, _OPS_KINDS, _WORKERS, "own", True,
         "operators and admins write their own tenant's devices, telemetry, evidence, "
         "alerts, chain records and aggregates"),
    Rule("own-finance-write", "o", "write", _MEMBERS,
         _fs("receipt", "note", "document", "trade"), _FINANCE, "own", True,
         "operators, credit officers and admins write their own tenant's receipts, notes, "
         "documents and trades"),
    Rule("bank-customer-write", "c", "write", _fs("bank"),
         _fs("receipt", "loan", "note", "trade", "document"), _CREDIT, "bank", True,
         "a bank's credit officers and admins write the receipts, loans, notes, trades and "
         "documents it is the bank of"),
    Rule("warehouse-custody-write", "k", "write", _fs("warehouse"), _fs("receipt"), _WORKERS,
         "party", False, "a warehouse's operators and admins write the receipts it keeps"),
    Rule("core-note-write", "p", "write", _fs("core_enterprise"), _fs("note"), _FINANCE,
         "party", False, "a core enterprise writes the notes it issued"),
    Rule("supplier-apply", "o", "write", _fs("supplier", "core_enterprise"), _fs("loan"),
         _FINANCE, "own", True, "operators, credit officers and admins of suppliers and core "
         "enterprises write their own loans: they apply for financing"),
    Rule("own-admin", "o", "admin", _MEMBERS, _fs("device", "alert", "chain", "user"),
         _fs("admin"), "own", True,
         "admins administer their own tenant's devices, alert rules, chain links and users"),
    Rule("own-user-admin", "o", "admin", _fs("regulator", "government"), _fs("user"),
         _fs("admin"), "own", True, "admins of the regulator and the government portal "
         "administer their own tenant's users"),
)  # fmt: skip

DENY_RULES: dict[str, str] = {
    "unknown-tenant-kind": "a tenant whose kind is not a known tenant kind is granted nothing",
    "unknown-channel": "a principal not authenticated by a session or a token is granted nothing",
    "no-role": "a principal with no known role is granted nothing",
    "token-scope": "an API token does only what its scopes name: '<action>:<noun>'",
    "regulator-read-only": "the regulator writes nothing through the platform",
    "audit-append-only": "nobody writes or administers the audit log; only the platform appends",
    "government-aggregates-only": "the government portal reads aggregates and writes nothing",
    "sensitive": "a rule that covers the resource does not extend to sensitive resources",
    "default-deny": "anything no rule grants is refused",
}


def scope_for(action: str, kind: str) -> str:
    """The API token scope that ``action`` on a resource of ``kind`` needs."""
    return f"{action}:{SCOPE_NOUNS[kind]}"


def _barrier(tenant_kind: str, action: str, kind: str) -> tuple[str, str] | None:
    """The refusal that holds whatever the resource's relations, else None."""
    if tenant_kind == "regulator" and action == "write":
        return "regulator-read-only", f"the regulator may not write a {kind}"
    if kind == "audit" and action != "read":
        return "audit-append-only", f"nobody may {action} the audit log"
    if tenant_kind == "government" and (
        action == "write" or kind not in GOVERNANCE | {"aggregate"}
    ):
        return "government-aggregates-only", f"the government portal may not {action} a {kind}"
    return None


def _deny(rule: str, detail: str) -> Decision:
    return Decision(False, f"{rule}: {detail}", rule)


def _effective_roles(p: PrincipalLike) -> list[str]:
    if p.via == "token" and p.user is None and not p.roles:
        return sorted(TENANT_TOKEN_ROLES)
    return [r for r in USER_ROLES if r in p.roles]


def decide(principal: PrincipalLike, action: str, resource: ResourceRef) -> Decision:
    """May ``principal`` do ``action`` to ``resource``? Raises AuthzError for an unknown action."""
    if action not in ACTIONS:
        raise AuthzError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    p, tk, kind = principal, principal.tenant_kind, resource.kind
    who = f"{tk} {p.tenant!r}"
    if tk not in TENANT_KINDS:
        return _deny("unknown-tenant-kind", f"tenant {p.tenant!r} has kind {tk!r}")
    if p.via not in VIAS:
        return _deny("unknown-channel", f"{who} authenticated by {p.via!r}")
    roles = _effective_roles(p)
    if not roles:
        return _deny("no-role", f"{who}: none of the roles {sorted(p.roles)} is known")
    if p.via == "token" and scope_for(action, kind) not in p.scopes:
        scope = scope_for(action, kind)
        return _deny("token-scope", f"the API token of {who} lacks the scope {scope!r}")
    barrier = _barrier(tk, action, kind)
    if barrier is not None:
        return _deny(*barrier)
    blocked: Rule | None = None
    for rule in RULES:
        if rule.action != action or tk not in rule.tenant_kinds or kind not in rule.kinds:
            continue
        if not RELATIONS[rule.relation][0](p, resource):
            continue
        for role in roles:
            if role not in rule.roles:
                continue
            if resource.sensitive and (not rule.sensitive or role == "viewer"):
                blocked = blocked or rule
                continue
            detail = f"{rule.says} ({role} of {who}; {kind} of {resource.owner!r})"
            return Decision(True, f"{rule.name}: {detail}", rule.name)
    asked = f"{who} with roles {roles} {action} the {kind} of {resource.owner!r}"
    if blocked is not None:
        return _deny("sensitive", f"{blocked.name} does not let {asked}: it is sensitive")
    return _deny("default-deny", f"no rule lets {asked}")


class Cell(NamedTuple):
    """One entry of the matrix: the rules that may grant (their relation decides) and the
    rule that refuses when none does."""

    grants: tuple[str, ...]
    deny: str


MatrixKey = tuple[str, str, str, str]
"""(tenant kind, user role, resource kind, action)"""


def matrix() -> dict[MatrixKey, Cell]:
    """The whole policy: every tenant kind × user role × resource kind × action."""
    out: dict[MatrixKey, Cell] = {}
    for tk in TENANT_KINDS:
        for role in USER_ROLES:
            for kind in RESOURCE_KINDS:
                for action in ACTIONS:
                    barrier = _barrier(tk, action, kind)
                    if barrier is not None:
                        out[(tk, role, kind, action)] = Cell((), barrier[0])
                        continue
                    grants = tuple(
                        r.name
                        for r in RULES
                        if r.action == action
                        and tk in r.tenant_kinds
                        and kind in r.kinds
                        and role in r.roles
                    )
                    out[(tk, role, kind, action)] = Cell(grants, "default-deny")
    return out


_RULE_BY_NAME = {r.name: r for r in RULES}


def _cell_text(m: dict[MatrixKey, Cell], tk: str, role: str, kind: str) -> str:
    parts = []
    for action in ACTIONS:
        codes = ",".join(_RULE_BY_NAME[n].code for n in m[(tk, role, kind, action)].grants)
        if codes:
            parts.append(f"{action[0].upper()}:{codes}")
    return " ".join(parts) or "—"


def render_matrix_markdown() -> str:
    """The "Authorisation" section of docs/security.md, markers included."""
    m = matrix()
    lines = [
        BEGIN,
        "## Authorisation",
        "",
        "One policy decides every request: `tally.cloud.authz.decide(principal, action, "
        "resource)` returns whether it is allowed and the rule that decided. Actions are "
        "`read`, `write` and `admin`. A resource names its owner tenant, the other tenants "
        "involved (its parties), its bank, its site and whether it is sensitive. This section "
        "is generated from the code (`python -m tally.cloud.authz docs/security.md`); a test "
        "fails when they differ.",
        "",
        "### Refusals, checked first and in this order",
        "",
        "| rule | refuses |",
        "| --- | --- |",
    ]
    lines += [f"| `{name}` | {says} |" for name, says in DENY_RULES.items()]
    lines += [
        "",
        "An API token needs the scope `<action>:<noun>` (`write:receipts`) on top of its "
        "user's roles; a session is limited by roles only. A tenant-wide token (issued to no "
        f"user) acts with the roles {', '.join(sorted(TENANT_TOKEN_ROLES))}, within its scopes.",
        "",
        "| resource kind | " + " | ".join(RESOURCE_KINDS) + " |",
        "| --- |" + " --- |" * len(RESOURCE_KINDS),
        "| noun | " + " | ".join(SCOPE_NOUNS[k] for k in RESOURCE_KINDS) + " |",
        "",
        "### Grants",
        "",
        "| rule | code | action | tenant kinds | resource kinds | roles | when | sensitive |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in RULES:
        tks = ", ".join(t for t in TENANT_KINDS if t in r.tenant_kinds)
        kinds = ", ".join(k for k in RESOURCE_KINDS if k in r.kinds)
        roles = ", ".join(x for x in USER_ROLES if x in r.roles)
        when = RELATIONS[r.relation][1]
        sens = "yes, not viewers" if r.sensitive else "no"
        lines.append(
            f"| `{r.name}` | {r.code} | {r.action} | {tks} | {kinds} | {roles} | {when} | {sens} |"
        )
    lines += [
        "",
        "### The matrix",
        "",
        "Per tenant kind: what each user role may do to each resource kind. `R`, `W`, `A` are "
        "read, write and admin; the letters after them are the codes of the grants above "
        "(o own tenant, c the bank's customers, s a warehouse's sites, k a warehouse's "
        "custody, p a core enterprise's notes and trades, a all tenants, m the chain for "
        "consortium members). — means never.",
    ]
    for tk in TENANT_KINDS:
        lines += ["", f"#### {tk}", "", "| resource | " + " | ".join(USER_ROLES) + " |"]
        lines.append("| --- |" + " --- |" * len(USER_ROLES))
        for kind in RESOURCE_KINDS:
            cells = [_cell_text(m, tk, role, kind) for role in USER_ROLES]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def replace_section(document: str) -> str:
    """``document`` with its authorisation section (or, without one, appended) regenerated."""
    section = render_matrix_markdown()
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 and end < 0:
        return document.rstrip("\n") + "\n\n" + section
    if start < 0 or end < start or document.count(BEGIN) != 1 or document.count(END) != 1:
        raise AuthzError(f"the document must hold {BEGIN} and then {END}, once each")
    rest = document[end + len(END) :].lstrip("\n")
    return document[:start] + section + ("\n" + rest if rest else "")


def main(argv: list[str]) -> int:
    """``python -m tally.cloud.authz PATH``: regenerate the section in PATH (security.md)."""
    if len(argv) != 1:
        print("usage: python -m tally.cloud.authz docs/security.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(replace_section(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
