"""The authorisation policy (tally.cloud.authz): the whole matrix against an independent
statement of the rules, cross-tenant access only by named rules, the regulator read-only, the
government portal on aggregates only, API token scopes, sensitive resources, refusals of bad
questions, and docs/security.md agreeing with the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.cloud import authz
from tally.cloud.authz import (
    ACTIONS,
    BEGIN,
    DENY_RULES,
    END,
    RESOURCE_KINDS,
    RULES,
    AuthzError,
    ResourceRef,
    decide,
    matrix,
    render_matrix_markdown,
    replace_section,
)
from tally.cloud.identity import TENANT_KINDS, USER_ROLES, Principal

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
SELF, OTHER, STRANGER = "t-self", "t-other", "t-stranger"
MY_SITE = "site-1"
VARIANTS = ("own", "party", "bank", "site", "unrelated")
GRANTS = {r.name for r in RULES}
CROSS_TENANT_RULES = {
    "bank-customer-read",
    "bank-customer-write",
    "warehouse-site-read",
    "warehouse-custody-read",
    "warehouse-custody-write",
    "core-note-read",
    "core-trade-read",
    "core-note-write",
    "regulator-read",
    "regulator-audit-read",
    "government-aggregate-read",
    "chain-member-read",
}
ALL_TENANTS_RULES = {
    "regulator-read",
    "regulator-audit-read",
    "government-aggregate-read",
    "chain-member-read",
}
CONSORTIUM = {"bank", "core_enterprise", "warehouse", "logistics"}


def who(
    kind: str,
    *roles: str,
    via: str = "session",
    scopes: frozenset[str] = frozenset(),
    user: str | None = "alice",
) -> Principal:
    return Principal(
        tenant=SELF,
        tenant_kind=kind,
        user=user,
        roles=frozenset(roles),
        scopes=scopes,
        via=via,  # type: ignore[arg-type]
        sites=frozenset({MY_SITE}),
    )


def res(kind: str, variant: str, sensitive: bool = False) -> ResourceRef:
    if variant == "own":
        return ResourceRef(kind, SELF, sensitive=sensitive)
    if variant == "party":
        return ResourceRef(kind, OTHER, parties=frozenset({SELF}), sensitive=sensitive)
    if variant == "bank":
        return ResourceRef(kind, OTHER, bank=SELF, sensitive=sensitive)
    if variant == "site":
        return ResourceRef(kind, OTHER, site=MY_SITE, sensitive=sensitive)
    assert variant == "unrelated"
    return ResourceRef(
        kind, STRANGER, frozenset({OTHER}), bank="t-bank-x", site="site-9", sensitive=sensitive
    )


# -- the rules, stated again independently of the module's tables -----------------------
SITE_KINDS = {"device", "telemetry", "evidence", "alert", "receipt"}
OPS_KINDS = {"device", "telemetry", "evidence", "alert", "chain", "aggregate"}
FINANCE_KINDS = {"receipt", "note", "document", "trade"}
BANK_WRITES = {"receipt", "loan", "note", "trade", "document"}


def oracle(tk: str, role: str, kind: str, action: str, variant: str, sensitive: bool) -> str:
    """The rule that must decide, for one role and a session."""
    if tk == "regulator" and action == "write":
        return "regulator-read-only"
    if kind == "audit" and action != "read":
        return "audit-append-only"
    if tk == "government" and (action == "write" or kind not in {"aggregate", "audit", "user"}):
        return "government-aggregates-only"
    own = variant == "own"
    cands: list[tuple[str, bool]] = []  # (rule, also for sensitive resources)
    if action == "read" and kind in {"audit", "user"}:
        if own and role in {"auditor", "admin"}:
            cands.append(("governance-read", True))
        if tk == "regulator" and role == "auditor":
            cands.append(("regulator-audit-read", True))
    elif action == "read":
        if own and tk != "government":
            cands.append(("own-read", True))
        if tk == "bank" and variant in {"bank", "party"} and kind != "aggregate":
            cands.append(("bank-customer-read", True))
        if tk == "warehouse" and variant == "site" and kind in SITE_KINDS:
            cands.append(("warehouse-site-read", False))
        if tk == "warehouse" and variant == "party" and kind == "receipt":
            cands.append(("warehouse-custody-read", False))
        if tk == "core_enterprise" and variant == "party" and kind == "note":
            cands.append(("core-note-read", False))
        if tk == "core_enterprise" and variant == "party" and kind == "trade":
            cands.append(("core-trade-read", False))
        if tk == "regulator":
            cands.append(("regulator-read", True))
        if tk == "government" and kind == "aggregate":
            cands.append(("government-aggregate-read", False))
        if tk in CONSORTIUM and kind == "chain":
            cands.append(("chain-member-read", False))
    elif action == "write":
        if own and kind in OPS_KINDS and role in {"operator", "admin"}:
            cands.append(("own-ops-write", True))
        if own and kind in FINANCE_KINDS and role in {"operator", "credit_officer", "admin"}:
            cands.append(("own-finance-write", True))
        bank_writes = tk == "bank" and variant == "bank" and kind in BANK_WRITES
        if bank_writes and role in {"credit_officer", "admin"}:
            cands.append(("bank-customer-write", True))
        keeps = tk == "warehouse" and variant == "party" and kind == "receipt"
        if keeps and role in {"operator", "admin"}:
            cands.append(("warehouse-custody-write", False))
        issued = tk == "core_enterprise" and variant == "party" and kind == "note"
        if issued and role in {"operator", "credit_officer", "admin"}:
            cands.append(("core-note-write", False))
        applies = tk in {"supplier", "core_enterprise"} and own and kind == "loan"
        if applies and role in {"operator", "credit_officer", "admin"}:
            cands.append(("supplier-apply", True))
    elif own and role == "admin":
        if tk in {"regulator", "government"} and kind == "user":
            cands.append(("own-user-admin", True))
        elif tk not in {"regulator", "government"} and kind in {"device", "alert", "chain", "user"}:
            cands.append(("own-admin", True))
    for rule, covers_sensitive in cands:
        if not sensitive or (covers_sensitive and role != "viewer"):
            return rule
    return "sensitive" if cands else "default-deny"


def walk() -> list[tuple[str, str, str, str, str, bool]]:
    return [
        (tk, role, kind, action, variant, sensitive)
        for tk in TENANT_KINDS
        for role in USER_ROLES
        for kind in RESOURCE_KINDS
        for action in ACTIONS
        for variant in VARIANTS
        for sensitive in (False, True)
    ]


# -- the whole matrix -------------------------------------------------------------------
def test_every_decision_of_the_matrix_is_the_stated_rule() -> None:
    cases = walk()
    assert len(cases) == 7 * 5 * 14 * 3 * 5 * 2
    wrong = []
    for tk, role, kind, action, variant, sensitive in cases:
        d = decide(who(tk, role), action, res(kind, variant, sensitive))
        expected = oracle(tk, role, kind, action, variant, sensitive)
        if d.rule != expected or d.allowed != (expected in GRANTS):
            wrong.append(f"{tk}/{role} {action} {kind} ({variant}, {sensitive}): {d.reason}")
        assert d.reason.startswith(f"{d.rule}: "), d.reason
        assert d.rule in GRANTS | set(DENY_RULES)
    assert wrong == []


def test_no_cross_tenant_access_except_by_named_rules() -> None:
    allowed_cross = set()
    for tk, role, kind, action, variant, sensitive in walk():
        if variant == "own":
            continue
        d = decide(who(tk, role), action, res(kind, variant, sensitive))
        if not d.allowed:
            continue
        allowed_cross.add(d.rule)
        assert action != "admin", d.reason
        assert d.rule in CROSS_TENANT_RULES, d.reason
        if variant == "unrelated":
            assert d.rule in ALL_TENANTS_RULES, d.reason
            assert action == "read", d.reason
            assert tk in {"regulator", "government"} or kind == "chain", d.reason
    # every cross-tenant rule is exercised, and no action but read and write crosses tenants
    assert allowed_cross == CROSS_TENANT_RULES


def test_a_tenant_of_each_kind_reads_nothing_unrelated_outside_the_named_rules() -> None:
    for tk in ("bank", "core_enterprise", "supplier", "warehouse", "logistics"):
        for role in USER_ROLES:
            for kind in RESOURCE_KINDS:
                for action in ACTIONS:
                    d = decide(who(tk, role), action, res(kind, "unrelated"))
                    if kind == "chain" and action == "read" and tk in CONSORTIUM:
                        # the chain is every consortium member's (suppliers are not members)
                        assert (d.allowed, d.rule) == (True, "chain-member-read"), d.reason
                        continue
                    assert not d.allowed and d.rule in {"default-deny", "audit-append-only"}


def test_matrix_is_complete_and_agrees_with_decide() -> None:
    m = matrix()
    assert len(m) == len(TENANT_KINDS) * len(USER_ROLES) * len(RESOURCE_KINDS) * len(ACTIONS)
    for (tk, role, kind, action), cell in m.items():
        seen = set()
        for variant in VARIANTS:
            d = decide(who(tk, role), action, res(kind, variant))
            if d.allowed:
                seen.add(d.rule)
                assert d.rule in cell.grants
            else:
                assert d.rule == cell.deny, (tk, role, kind, action, variant, d.reason)
        assert seen == set(cell.grants), (tk, role, kind, action)
        codes = [next(r.code for r in RULES if r.name == n) for n in cell.grants]
        assert len(codes) == len(set(codes)), f"two grants share a code in {tk}/{role}/{kind}"
    assert matrix() == m


def test_every_rule_decides_somewhere() -> None:
    rules = {decide(who(*c[:2]), c[3], res(c[2], c[4], c[5])).rule for c in walk()}
    rules |= {decide(who("alien", "admin"), "read", res("device", "own")).rule}
    rules |= {decide(who("bank", "admin", via="cookie"), "read", res("device", "own")).rule}
    rules |= {decide(who("bank", "root"), "read", res("device", "own")).rule}
    rules |= {decide(who("bank", "admin", via="token"), "read", res("device", "own")).rule}
    assert rules == GRANTS | set(DENY_RULES)


# -- the issue's words ------------------------------------------------------------------
def test_the_parties_see_what_the_issue_says() -> None:
    supplier = who("supplier", "viewer")
    for kind in ("receipt", "loan", "note", "device"):
        assert decide(supplier, "read", res(kind, "own")).rule == "own-read"
        assert not decide(supplier, "read", res(kind, "party")).allowed
        assert not decide(supplier, "read", res(kind, "bank")).allowed
    core = who("core_enterprise", "viewer")
    assert decide(core, "read", res("note", "party")).rule == "core-note-read"
    assert decide(core, "read", res("trade", "party")).rule == "core-trade-read"
    assert not decide(core, "read", res("receipt", "party")).allowed
    assert not decide(core, "read", res("loan", "party")).allowed
    bank = who("bank", "viewer")
    for variant in ("bank", "party"):
        for kind in ("receipt", "loan", "note", "document", "trade", "telemetry", "device"):
            assert decide(bank, "read", res(kind, variant)).rule == "bank-customer-read"
    assert not decide(bank, "read", res("aggregate", "bank")).allowed
    warehouse = who("warehouse", "viewer")
    for kind in ("device", "telemetry", "evidence", "alert", "receipt"):
        assert decide(warehouse, "read", res(kind, "site")).rule == "warehouse-site-read"
    assert decide(warehouse, "read", res("receipt", "party")).rule == "warehouse-custody-read"
    assert not decide(warehouse, "read", res("loan", "site")).allowed
    # a site is a warehouse's only: other tenant kinds carrying sites see nothing by them
    for tk in ("bank", "supplier", "logistics", "core_enterprise"):
        assert not decide(who(tk, "admin"), "read", res("device", "site")).allowed


def test_only_the_lending_bank_writes_a_loan() -> None:
    assert decide(who("bank", "credit_officer"), "write", res("loan", "bank")).allowed
    assert not decide(who("bank", "operator"), "write", res("loan", "bank")).allowed
    # a bank merely among the parties reads but does not write
    assert decide(who("bank", "credit_officer"), "read", res("loan", "party")).allowed
    assert not decide(who("bank", "credit_officer"), "write", res("loan", "party")).allowed
    # the borrower writes its own loans only as applications (supplier-apply), and only
    # with a role that may apply for financing
    for tk in ("supplier", "core_enterprise"):
        for role in USER_ROLES:
            d = decide(who(tk, role), "write", res("loan", "own"))
            applies = role in {"operator", "credit_officer", "admin"}
            assert (d.allowed, d.rule) == (
                (True, "supplier-apply") if applies else (False, "default-deny")
            ), d.reason
            assert not decide(who(tk, role), "write", res("loan", "bank")).allowed
            assert not decide(who(tk, role), "write", res("loan", "party")).allowed
    for tk in ("warehouse", "logistics"):
        assert not decide(who(tk, "admin"), "write", res("loan", "own")).allowed


def test_admin_actions_only_for_admins_within_their_own_tenant() -> None:
    for tk in TENANT_KINDS:
        for role in USER_ROLES:
            for kind in RESOURCE_KINDS:
                for variant in VARIANTS:
                    d = decide(who(tk, role), "admin", res(kind, variant))
                    if d.allowed:
                        assert role == "admin" and variant == "own", d.reason
                        assert d.rule in {"own-admin", "own-user-admin"}


def test_auditors_read_their_tenant_and_the_regulators_read_everyone() -> None:
    for tk in TENANT_KINDS:
        d = decide(who(tk, "auditor"), "read", res("audit", "own"))
        assert (d.allowed, d.rule) == (True, "governance-read")
        d = decide(who(tk, "auditor"), "read", res("audit", "unrelated"))
        assert d.allowed == (tk == "regulator"), d.reason
    for role in ("operator", "credit_officer", "viewer", "admin"):
        assert not decide(who("regulator", role), "read", res("audit", "unrelated")).allowed
    assert not decide(who("bank", "viewer"), "read", res("audit", "own")).allowed


# -- regulator and government -----------------------------------------------------------
def test_the_regulator_writes_nothing() -> None:
    for role in USER_ROLES:
        for kind in RESOURCE_KINDS:
            for variant in VARIANTS:
                for sensitive in (False, True):
                    d = decide(who("regulator", role), "write", res(kind, variant, sensitive))
                    assert (d.allowed, d.rule) == (False, "regulator-read-only")
                    assert d.reason == f"regulator-read-only: the regulator may not write a {kind}"
                d = decide(who("regulator", role), "admin", res(kind, variant))
                expected = role == "admin" and kind == "user" and variant == "own"
                assert d.allowed == expected, d.reason


def test_the_regulator_reads_every_business_resource() -> None:
    for kind in authz.BUSINESS:
        for variant in VARIANTS:
            d = decide(who("regulator", "viewer"), "read", res(kind, variant))
            assert d.allowed, d.reason
            d = decide(who("regulator", "viewer"), "read", res(kind, variant, sensitive=True))
            assert not d.allowed and d.rule == "sensitive"
            assert decide(who("regulator", "auditor"), "read", res(kind, variant, True)).allowed


def test_the_government_portal_sees_aggregates_only() -> None:
    for role in USER_ROLES:
        gov = who("government", role)
        for kind in RESOURCE_KINDS:
            for variant in VARIANTS:
                for action in ACTIONS:
                    d = decide(gov, action, res(kind, variant))
                    if kind not in {"aggregate", "audit", "user"} or action == "write":
                        audit = kind == "audit" and action != "read"
                        barrier = "audit-append-only" if audit else "government-aggregates-only"
                        assert (d.allowed, d.rule) == (False, barrier)
                    elif d.allowed and kind != "aggregate":
                        # its own tenant's governance: its users and its audit log
                        assert variant == "own" and role in {"admin", "auditor"}, d.reason
            for variant in VARIANTS:
                d = decide(gov, "read", res("aggregate", variant))
                assert (d.allowed, d.rule) == (True, "government-aggregate-read")
            d = decide(gov, "read", res("aggregate", "unrelated", sensitive=True))
            assert (d.allowed, d.rule) == (False, "sensitive")


# -- tokens -----------------------------------------------------------------------------
def test_a_token_does_only_what_its_scopes_name_even_for_an_admin() -> None:
    reads = frozenset({"read:receipts"})
    admin = who("supplier", "admin", via="token", scopes=reads)
    d = decide(admin, "write", res("receipt", "own"))
    assert (d.allowed, d.rule) == (False, "token-scope")
    assert d.reason == (
        "token-scope: the API token of supplier 't-self' lacks the scope 'write:receipts'"
    )
    assert decide(admin, "read", res("receipt", "own")).allowed
    writes = frozenset({"write:receipts"})
    assert decide(dataclasses.replace(admin, scopes=writes), "write", res("receipt", "own")).allowed
    assert not decide(
        dataclasses.replace(admin, scopes=writes), "read", res("receipt", "own")
    ).allowed
    # the same principal by session: roles only
    assert decide(dataclasses.replace(admin, via="session"), "write", res("receipt", "own")).allowed


def test_a_scope_never_widens_the_roles() -> None:
    every = frozenset(authz.scope_for(a, k) for a in ACTIONS for k in RESOURCE_KINDS)
    viewer = who("bank", "viewer", via="token", scopes=every)
    for kind in RESOURCE_KINDS:
        assert not decide(viewer, "write", res(kind, "own")).allowed
        assert not decide(viewer, "admin", res(kind, "own")).allowed
    for tk, role, kind, action, variant, sensitive in walk():
        p = who(tk, role, via="token", scopes=every)
        d = decide(p, action, res(kind, variant, sensitive))
        assert d.rule == oracle(tk, role, kind, action, variant, sensitive)


def test_a_tenant_wide_token_acts_as_an_operator_within_its_scopes() -> None:
    scopes = frozenset({"write:devices", "write:loans", "admin:users", "read:audit"})
    token = who("bank", via="token", scopes=scopes, user=None)
    assert decide(token, "write", res("device", "own")).rule == "own-ops-write"
    assert decide(token, "write", res("loan", "bank")).rule == "default-deny"
    assert decide(token, "admin", res("user", "own")).rule == "default-deny"
    assert decide(token, "read", res("audit", "own")).rule == "default-deny"
    assert decide(token, "read", res("device", "own")).rule == "token-scope"
    # a session without roles is not a tenant-wide token
    d = decide(who("bank", user=None), "read", res("device", "own"))
    assert d.rule == "no-role"


def test_several_roles_add_up() -> None:
    p = who("bank", "viewer", "credit_officer")
    d = decide(p, "write", res("loan", "bank"))
    assert d.allowed and "credit_officer of bank 't-self'" in d.reason
    d = decide(p, "read", res("loan", "bank", sensitive=True))
    assert d.allowed and "credit_officer" in d.reason


# -- sensitive resources ----------------------------------------------------------------
def test_sensitive_resources() -> None:
    assert decide(who("supplier", "operator"), "read", res("document", "own", True)).allowed
    d = decide(who("supplier", "viewer"), "read", res("document", "own", True))
    assert (d.allowed, d.rule) == (False, "sensitive")
    assert d.reason == (
        "sensitive: own-read does not let supplier 't-self' with roles ['viewer'] read the "
        "document of 't-self': it is sensitive"
    )
    assert decide(who("bank", "auditor"), "read", res("document", "bank", True)).allowed
    d = decide(who("warehouse", "admin"), "read", res("device", "site", True))
    assert (d.allowed, d.rule) == (False, "sensitive")
    d = decide(who("core_enterprise", "admin"), "read", res("trade", "party", True))
    assert (d.allowed, d.rule) == (False, "sensitive")


# -- bad questions ----------------------------------------------------------------------
def test_unknown_principals_are_refused_with_the_reason() -> None:
    d = decide(who("alien", "admin"), "read", res("device", "own"))
    assert d == authz.Decision(
        False, "unknown-tenant-kind: tenant 't-self' has kind 'alien'", "unknown-tenant-kind"
    )
    d = decide(who("bank", "admin", via="cookie"), "read", res("device", "own"))
    assert d.reason == "unknown-channel: bank 't-self' authenticated by 'cookie'"
    d = decide(who("bank", "root", "superuser"), "read", res("device", "own"))
    assert d.reason == "no-role: bank 't-self': none of the roles ['root', 'superuser'] is known"


def test_malformed_questions_raise_precise_errors() -> None:
    p = who("bank", "admin")
    r = res("device", "own")
    before = (p, r)
    with pytest.raises(
        AuthzError, match=r"^action must be one of read, write, admin, got 'delete'$"
    ):
        decide(p, "delete", r)
    assert (p, r) == before
    cases = [
        (dict(kind="invoice", owner=SELF), "resource kind must be one of device, telemetry, "),
        (dict(kind="loan", owner=""), "resource owner must be a non-empty tenant id, got ''"),
        (
            dict(kind="loan", owner=SELF, parties={"a"}),
            "resource parties must be a frozenset of tenant ids, got set",
        ),
        (
            dict(kind="loan", owner=SELF, parties=frozenset({""})),
            "resource party must be a non-empty tenant id, got ''",
        ),
        (dict(kind="loan", owner=SELF, bank=""), "resource bank must be None or non-empty text"),
        (dict(kind="loan", owner=SELF, site=7), "resource site must be None or non-empty text"),
        (dict(kind="loan", owner=SELF, sensitive=1), "resource sensitive must be True or False"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AuthzError, match="^" + re.escape(message)):
            ResourceRef(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(AuthzError, match=r"got 'invoice'$"):
        ResourceRef("invoice", SELF)


# -- properties -------------------------------------------------------------------------
tenants = st.sampled_from([SELF, OTHER, STRANGER])


@given(
    tk=st.sampled_from(TENANT_KINDS),
    roles=st.frozensets(st.sampled_from(USER_ROLES), min_size=1),
    action=st.sampled_from(ACTIONS),
    kind=st.sampled_from(RESOURCE_KINDS),
    owner=tenants,
    parties=st.frozensets(tenants),
    bank=st.none() | tenants,
    site=st.none() | st.sampled_from([MY_SITE, "site-9"]),
    sensitive=st.booleans(),
)
def test_any_question_is_answered_by_a_rule_of_the_matrix(
    tk: str,
    roles: frozenset[str],
    action: str,
    kind: str,
    owner: str,
    parties: frozenset[str],
    bank: str | None,
    site: str | None,
    sensitive: bool,
) -> None:
    p = who(tk, *roles)
    r = ResourceRef(kind, owner, parties, bank, site, sensitive)
    d = decide(p, action, r)
    assert decide(p, action, r) == d
    assert d.reason.startswith(f"{d.rule}: ")
    m = matrix()
    if d.allowed:
        assert any(d.rule in m[(tk, role, kind, action)].grants for role in roles)
        if owner != SELF:
            assert d.rule in CROSS_TENANT_RULES
    # a decision for several roles is the best of the decisions for each
    assert d.allowed == any(decide(who(tk, role), action, r).allowed for role in roles)


# -- the document -----------------------------------------------------------------------
def test_security_md_shows_the_generated_matrix() -> None:
    text = SECURITY_MD.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "docs/security.md lacks the markers"
    section = text[text.index(BEGIN) : text.index(END) + len(END)] + "\n"
    assert section == render_matrix_markdown(), (
        "docs/security.md disagrees with tally.cloud.authz: regenerate the section with "
        "`python -m tally.cloud.authz docs/security.md`"
    )


def test_replace_section_touches_nothing_else() -> None:
    section = render_matrix_markdown()
    assert replace_section("# Security\n") == "# Security\n\n" + section
    doc = f"# Security\n\n## Identity\n\ntext\n\n{BEGIN}\nold\n{END}\n\n## Later\n\nmore\n"
    out = replace_section(doc)
    assert out == f"# Security\n\n## Identity\n\ntext\n\n{section}\n## Later\n\nmore\n"
    assert replace_section(out) == out
    for broken in (f"x {BEGIN} y", f"x {END} y", f"{END} {BEGIN}", f"{BEGIN}{END}{BEGIN}{END}"):
        with pytest.raises(AuthzError, match="must hold"):
            replace_section(broken)
    assert render_matrix_markdown() == section


# -- organisation profiles and the chain --------------------------------------------------
def test_an_organisation_profile_is_read_by_itself_its_bank_and_the_regulator() -> None:
    for tk in ("bank", "core_enterprise", "supplier", "warehouse", "logistics", "regulator"):
        assert decide(who(tk, "viewer"), "read", res("party", "own")).rule == "own-read"
        d = decide(who(tk, "viewer"), "read", res("party", "own", sensitive=True))
        assert (d.allowed, d.rule) == (False, "sensitive")
        assert decide(who(tk, "auditor"), "read", res("party", "own", sensitive=True)).allowed
    assert decide(who("bank", "viewer"), "read", res("party", "bank")).rule == (
        "bank-customer-read"
    )
    assert decide(who("regulator", "viewer"), "read", res("party", "unrelated")).allowed
    for tk in ("core_enterprise", "supplier", "warehouse", "logistics"):
        assert not decide(who(tk, "admin"), "read", res("party", "unrelated")).allowed
        assert not decide(who(tk, "admin"), "read", res("party", "bank")).allowed
    assert not decide(who("government", "admin"), "read", res("party", "own")).allowed
    for tk in TENANT_KINDS:
        for action in ("write", "admin"):
            assert not decide(who(tk, "admin"), action, res("party", "own")).allowed
    assert authz.scope_for("read", "party") == "read:parties"


def test_consortium_members_read_the_chain_and_suppliers_only_their_own() -> None:
    for tk in TENANT_KINDS:
        for role in USER_ROLES:
            d = decide(who(tk, role), "read", res("chain", "unrelated"))
            member = tk in CONSORTIUM
            assert d.allowed == (member or tk == "regulator"), d.reason
            if member:
                assert d.rule == "chain-member-read"
            d = decide(who(tk, role), "read", res("chain", "unrelated", sensitive=True))
            assert d.allowed == (tk == "regulator" and role != "viewer"), d.reason
    assert decide(who("supplier", "viewer"), "read", res("chain", "own")).rule == "own-read"
