"""Identity rules without a database: password hashes, policy, validation, messages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import pytest
from pydantic import ValidationError

from tally.cloud import identity as I
from tally.cloud.errors import BadRequest
from tally.cloud.problems import problem_body

FAST = I.ScryptParams(10, 8, 1)


def test_default_hash_has_the_documented_form_and_cost() -> None:
    encoded = I.hash_password("correct horse battery", I.IdentityPolicy().scrypt)
    m = re.fullmatch(r"scrypt\$15\$8\$1\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)", encoded)
    assert m is not None, encoded
    assert len(base64.b64decode(m.group(1))) == 16
    assert len(base64.b64decode(m.group(2))) == 32
    assert I.verify_password("correct horse battery", encoded)
    assert not I.verify_password("correct horse batterY", encoded)
    assert not I.needs_rehash(encoded, I.ScryptParams(15, 8, 1))


def test_hash_is_scrypt_of_the_salted_password() -> None:
    salt = bytes(range(16))
    encoded = I.hash_password("pässword", FAST, salt=salt)
    expected = hashlib.scrypt("pässword".encode(), salt=salt, n=1024, r=8, p=1, dklen=32)
    assert encoded == (
        f"scrypt$10$8$1${base64.b64encode(salt).decode()}${base64.b64encode(expected).decode()}"
    )
    assert I.hash_password("pässword", FAST) != I.hash_password("pässword", FAST)  # fresh salt


def test_verify_uses_the_stored_parameters_rfc7914_vector() -> None:
    # RFC 7914 §12: P="password", S="NaCl", N=1024, r=8, p=16, dkLen=64.
    dk = bytes.fromhex(
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    )
    encoded = f"scrypt$10$8$16${base64.b64encode(b'NaCl').decode()}${base64.b64encode(dk).decode()}"
    assert I.verify_password("password", encoded)
    assert not I.verify_password("Password", encoded)
    assert I.params_of(encoded) == I.ScryptParams(10, 8, 16)
    assert I.needs_rehash(encoded, I.ScryptParams(10, 8, 16))  # salt and hash sizes differ


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    encoded = I.hash_password("some password", FAST)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert not I.verify_password("other password", encoded)
    assert len(calls) == 1 and len(calls[0][0]) == len(calls[0][1]) == 32


def test_passwords_are_compared_after_unicode_normalisation() -> None:
    composed, decomposed = "caf\u00e9 au lait!", "cafe\u0301 au lait!"
    assert I.verify_password(decomposed, I.hash_password(composed, FAST))


def test_rehash_is_needed_when_any_parameter_changes() -> None:
    encoded = I.hash_password("some password", FAST)
    assert not I.needs_rehash(encoded, FAST)
    assert I.needs_rehash(encoded, I.ScryptParams(11, 8, 1))
    assert I.needs_rehash(encoded, I.ScryptParams(10, 4, 1))
    assert I.needs_rehash(encoded, I.ScryptParams(10, 8, 2))


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("bcrypt$10$8$1$AA==$AA==", "expected 'scrypt$<log2 N>$<r>$<p>$<b64 salt>$<b64 hash>'"),
        ("scrypt$10$8$1$AA==", "got 5 '$'-fields"),
        ("scrypt$x$8$1$AA==$AA==", "invalid literal for int() with base 10: 'x'"),
        ("scrypt$10$8$1$A!==$AA==", "expected 'scrypt$<log2 N>$<r>$<p>$<b64 salt>$<b64 hash>'"),
        ("scrypt$0$8$1$AA==$AA==", "parameters out of range: ScryptParams(log_n=0, r=8, p=1)"),
        ("scrypt$10$8$1$$AA==", "parameters out of range"),
    ],
)
def test_malformed_hashes_are_reported_precisely(encoded: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        I.verify_password("x", encoded)
    assert str(exc.value).startswith("password hash: ")
    assert message in str(exc.value)


def test_policy_defaults_are_the_documented_ones() -> None:
    p = I.IdentityPolicy()
    assert p.scrypt == I.ScryptParams(15, 8, 1)
    assert (p.lockout_failures, p.lockout_ms) == (5, 15 * 60_000)
    assert (p.session_idle_ms, p.session_absolute_ms) == (30 * 60_000, 12 * 3_600_000)
    assert p.min_password_length == 12


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"scrypt_log_n": 22, "scrypt_r": 16},
            "scrypt_log_n=22 with scrypt_r=16 needs 8192 MiB per hash; the limit is 1024 MiB",
        ),
        (
            {"session_idle_ms": 7_200_000, "session_absolute_ms": 3_600_000},
            "session_idle_ms (7200000) must not exceed session_absolute_ms (3600000)",
        ),
        (
            {"token_ttl_ms": 10_000, "token_max_ttl_ms": 5_000},
            "token_ttl_ms (10000) must not exceed token_max_ttl_ms (5000)",
        ),
        ({"scrypt_log_n": 9}, "scrypt_log_n\n  Input should be greater than or equal to 10"),
        ({"lockout_failure": 3}, "lockout_failure\n  Extra inputs are not permitted"),
    ],
)
def test_bad_policies_say_which_field_and_rule(fields: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        I.IdentityPolicy(**fields)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (I.check_tenant_id, "ba/nk", "tenant id 'ba/nk' must be 1 to 64 characters of A-Z, a-z, "
         "0-9, '.', '_', '-', starting with a letter or digit"),
        (I.check_tenant_id, "", "tenant id '' must be 1 to 64 characters"),
        (I.check_tenant_kind, "banc", "tenant kind 'banc' is not one of bank, core_enterprise, "
         "supplier, warehouse, logistics, regulator, government"),
        (I.check_name, " Bank", "tenant name ' Bank' must be 1 to 200 characters without "
         "surrounding spaces"),
        (I.check_sites, ["wh1", ""], "site '' must be 1 to 200 characters without surrounding "
         "spaces"),
        (I.check_username, "Al", "username 'Al' must be 3 to 100 characters of a-z, 0-9, '.', "
         "'_', '@', '-', starting with a letter or digit"),
        (I.check_username, "-alice", "username '-alice' must be 3 to 100 characters"),
        (I.check_roles, [], "a user needs at least one role (admin, operator, credit_officer, "
         "auditor, viewer)"),
        (I.check_roles, ["viewer", "root"], "role 'root' is not one of admin, operator, "
         "credit_officer, auditor, viewer"),
        (I.check_scopes, [], "an API token needs at least one scope, e.g. 'read:telemetry'"),
        (I.check_scopes, ["read:telemetry", "delete:all"], "scope 'delete:all' must be "
         "'<read|write|admin>:<resource>' with a lower-case resource of at most 40 characters, "
         "e.g. 'read:telemetry'"),
    ],
)  # fmt: skip
def test_each_rule_names_field_value_and_rule(check: Any, value: Any, message: str) -> None:
    with pytest.raises(BadRequest) as exc:
        check(value)
    assert str(exc.value).startswith(message)


def test_good_values_pass_and_lists_are_sorted_and_deduplicated() -> None:
    assert I.check_tenant_id("core-ent.01") == "core-ent.01"
    assert I.check_roles(["viewer", "admin", "viewer"]) == ["admin", "viewer"]
    assert I.check_scopes(["write:receipts", "read:telemetry"]) == [
        "read:telemetry",
        "write:receipts",
    ]
    assert I.check_sites(["wh2", "wh1"]) == ["wh1", "wh2"]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "password must be at least 12 characters (got 5)"),
        ("x" * 1025, "password must be at most 1024 characters (got 1025)"),
        ("Alice.Example", "password must not be the username"),
    ],
)
def test_password_rules(password: str, message: str) -> None:
    with pytest.raises(BadRequest) as exc:
        I.check_password(password, "alice.example", I.IdentityPolicy())
    assert str(exc.value) == message


def test_token_lifetime_rule() -> None:
    policy = I.IdentityPolicy(token_ttl_ms=1000, token_max_ttl_ms=60_000)
    assert I.check_ttl(60_000, policy) == 60_000
    for bad in (0, 60_001):
        with pytest.raises(BadRequest) as exc:
            I.check_ttl(bad, policy)
        assert str(exc.value) == f"token lifetime {bad} ms must be between 1 and 60000 ms"


def test_secrets_are_random_and_only_their_hash_is_an_id() -> None:
    token = I.new_api_token()
    assert re.fullmatch(r"tly_[A-Za-z0-9_-]{43}", token)
    assert len(base64.urlsafe_b64decode(token[4:] + "=")) == 32
    secret = I.new_session_secret()
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert I.new_api_token() != token and I.new_session_secret() != secret
    assert I.secret_id(token) == hashlib.sha256(token.encode()).hexdigest()


def test_times_and_spans_in_messages() -> None:
    assert I.iso_ms(1_735_689_600_000) == "2025-01-01T00:00:00Z"
    assert I.iso_ms(1_735_690_500_250) == "2025-01-01T00:15:00.250Z"
    assert [I.span(ms) for ms in (43_200_000, 1_800_000, 90_000, 1500)] == [
        "12 h",
        "30 min",
        "90 s",
        "1500 ms",
    ]


def test_refusals_become_problems_with_their_own_type() -> None:
    locked = problem_body(I.AccountLocked(1_735_690_500_000))
    assert locked == {
        "type": "urn:tally:problem:account_locked",
        "title": "Login refused",
        "status": 401,
        "detail": "account locked until 2025-01-01T00:15:00Z",
    }
    assert problem_body(I.CsrfRefused(I.CSRF_MISMATCH))["status"] == 403
    assert problem_body(I.TokenRefused(I.TOKEN_UNKNOWN))["type"].endswith(":token_refused")
    assert problem_body(I.SessionRefused(I.SESSION_UNKNOWN))["detail"] == "session unknown or ended"


def test_principal_is_immutable() -> None:
    p = I.Principal("bank", "bank", "alice", frozenset({"viewer"}), frozenset(), "session")
    assert p.sites == frozenset()
    with pytest.raises(AttributeError):
        p.tenant = "acme"  # type: ignore[misc]
