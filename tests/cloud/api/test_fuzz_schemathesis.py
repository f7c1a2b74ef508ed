"""Property-based fuzzing of the platform API from its own OpenAPI document.

Schemathesis reads ``/v1/openapi.json`` from the app in process (ASGI) and, for every
operation, generates valid and invalid requests (:data:`MAX_EXAMPLES` of each, derandomized
so a run is reproducible), sends each as a bank credit officer or as a supplier operator (drawn
with the case; identity API tokens with every scope), and checks that the server never answers
with a server error, that every status it answers is declared for the operation, and that every
body conforms to the declared response schema (problems included). A failure names the
operation and the request (schemathesis prints it as a ``curl`` command). ``GET /v1/stream``
is left out: its answer never ends. The app runs on SQLite with a small SIMULATED read model
(:func:`tally.cloud.views.seed.seed_views`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from cloud_factory import World, make_world
from graphworld import graph_service
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tally.cloud import authz
from tally.cloud import identity as I
from tally.cloud.api import install_graph
from tally.cloud.app import create_app
from tally.cloud.auditlog import AuditLog
from tally.cloud.identity_store import IdentityStore
from tally.cloud.storage import open_storage
from tally.cloud.storage.sql import SqlStorage
from tally.cloud.views.seed import seed_views
from tally.cloud.views.store import Views

PW = "correct horse battery"
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
USERS = {
    # tenant: (kind, username, roles)
    "bank-01": ("bank", "officer@bank-01", ["credit_officer"]),
    "sme-00001": ("supplier", "op@sme-00001", ["operator"]),
}
UNBOUNDED = frozenset({"/v1/stream"})
"""Operations whose answer never ends (server-sent events): not fuzzed here."""
schemathesis.serializer.alias("application/cbor", "application/octet-stream")  # bundles: bytes
ALL_SCOPES = [f"{a}:{noun}" for noun in authz.SCOPE_NOUNS.values() for a in I.SCOPE_ACTIONS]


class Fuzzed:
    """The app under test and the Authorization headers of its two callers."""

    def __init__(self, app: Any, headers: dict[str, dict[str, str]]) -> None:
        self.app = app
        self.headers = headers


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    storage = open_storage(f"sqlite:///{tmp / 'cloud.db'}")
    storage.migrate()
    assert isinstance(storage, SqlStorage)
    engine = storage.engine
    world: World = make_world()
    store = IdentityStore(engine, I.IdentityPolicy(scrypt_log_n=10))
    headers = {}
    views = Views(engine)
    seed_views(views, scale=0.01)
    for tenant, (kind, username, roles) in USERS.items():
        store.create_tenant(tenant, kind, f"Simulated {tenant}")
        store.create_user(tenant, username, PW, roles)
        token = store.issue_token(tenant, ALL_SCOPES, user=username).token
        headers[tenant] = {"authorization": f"Bearer {token}"}
    app = create_app(
        world.settings(str(tmp)), storage, world.trust, world.identity, identities=store,
        audit_log=AuditLog(engine), views=views,
    )  # fmt: skip
    install_graph(app, graph_service())  # the knowledge graph's operations too
    yield Fuzzed(app, headers)
    storage.close()


def fuzz(operation: Any, mode: GenerationMode, callers: list[dict[str, str]]) -> str | None:
    """Run ``operation``'s generated cases of ``mode``, each as one of ``callers`` (drawn
    with the case); the failure, if any, naming the operation and the request."""

    @given(case=operation.as_strategy(generation_mode=mode), caller=st.sampled_from(callers))
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def run(case: Any, caller: dict[str, str]) -> None:
        case.call_and_validate(headers=caller, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE and not _inputs(operation):
            return None  # nothing to make invalid (e.g. GET /v1/ping takes no input)
        return f"{operation.label} ({mode.value}): no request could be generated"
    except (Exception, BaseExceptionGroup) as exc:  # a failed check, with its request
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def _inputs(operation: Any) -> bool:
    """Whether the operation takes any parameter or body besides the authorization."""
    return bool(operation.definition.raw.get("parameters") or operation.body)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_answers_every_operation_within_its_contract(
    fuzzed: Fuzzed, mode: GenerationMode
) -> None:
    """Each operation, with valid (positive) or invalid (negative) requests; every failure
    is reported, each with the operation and the request that showed it."""
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", fuzzed.app)
    results = list(schema.get_all_operations())
    broken = [str(r.err()) for r in results if not isinstance(r, Ok)]
    assert not broken, broken  # every operation of the document can be tested
    operations = [r.ok() for r in results if isinstance(r, Ok) and r.ok().path not in UNBOUNDED]
    assert len(operations) >= 30, [op.label for op in operations]
    callers = list(fuzzed.headers.values())
    failures = [f for op in operations if (f := fuzz(op, mode, callers)) is not None]
    assert not failures, "\n\n".join(failures)


DESIGNED = {
    "GET /v1/ping", "GET /v1/receipts", "GET /v1/receipts/{no}", "GET /v1/loans",
    "GET /v1/loans/{id}", "GET /v1/notes", "GET /v1/notes/{id}", "GET /v1/trades",
    "GET /v1/trades/{id}", "GET /v1/documents", "GET /v1/documents/{hash}", "GET /v1/alerts",
    "POST /v1/alerts/{id}/ack", "GET /v1/applications", "POST /v1/applications",
    "GET /v1/applications/{id}", "POST /v1/applications/{id}/decision", "GET /v1/orgs/{id}",
    "GET /v1/chain/status", "GET /v1/chain/blocks", "GET /v1/chain/blocks/{height}",
    "GET /v1/chain/txs/{id}", "GET /v1/dashboards/portfolio", "GET /v1/dashboards/supplier",
    "GET /v1/dashboards/core", "GET /v1/dashboards/warehouse", "GET /v1/aggregates",
    "GET /v1/stream", "POST /v1/verify", "GET /v1/audit", "GET /v1/admin/users",
    "POST /v1/admin/users", "PATCH /v1/admin/users/{username}", "POST /v1/admin/tokens",
    "DELETE /v1/admin/tokens/{id}", "GET /v1/admin/tokens", "GET /v1/graph/tiers/{core}",
    "GET /v1/graph/neighbourhood/{firm}", "GET /v1/graph/circles", "GET /v1/graph/exposure/{firm}",
    "GET /v1/graph/contagion/{firm}", "GET /v1/graph/scores/{firm}", "GET /v1/graph/needs",
    "GET /v1/graph/brief", "GET /v1/graph/brief.pdf",
}  # fmt: skip
"""The endpoints of the API's design: the fuzzing covers what the document lists."""


async def test_the_spec_lists_every_designed_endpoint(fuzzed: Fuzzed) -> None:
    transport = httpx.ASGITransport(app=fuzzed.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cloud") as c:
        r = await c.get("/v1/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    spec = r.json()
    listed = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    assert listed >= DESIGNED, sorted(DESIGNED - listed)
