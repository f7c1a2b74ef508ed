"""The server side of ``tally bench api``: the seeded database, its users, and the cloud
served by uvicorn in a process of its own.

:func:`prepare` migrates the database, loads the simulated read model
(:func:`tally.cloud.views.seed.seed_views`) and creates one user per role the benchmark reads
as (:data:`ROLES`), each with a random password that only the returned :class:`Users` holds.
:func:`start_server` starts :func:`_serve` in a spawned process: it builds the cloud app with
the read model, identities and audit log over the same database and serves it on a free port
of 127.0.0.1, which it sends back; closing the pipe stops it.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import secrets
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from tally.cloud.views.seed import SeedSummary

CLOUD = "cloud-bench"
ROLES: dict[str, tuple[str, str]] = {
    # benchmark role: (sample tenant of tally.cloud.views.seed, user role)
    "bank": ("bank", "credit_officer"),
    "supplier": ("supplier", "operator"),
    "core": ("core", "operator"),
    "warehouse": ("warehouse", "operator"),
    "regulator": ("regulator", "auditor"),
    "government": ("government", "viewer"),
}
KIND_OF = {"core": "core_enterprise"}
"""Benchmark roles whose tenant kind is not the role's name."""


@dataclass(frozen=True)
class Users:
    """Benchmark role → (tenant, username, password); the passwords are never printed."""

    logins: dict[str, tuple[str, str, str]]


def prepare(database_url: str, scale: float, seed: int = 7) -> tuple[SeedSummary, Users]:
    """Migrate ``database_url`` (empty), seed it at ``scale`` and create the users."""
    from tally.cloud.identity_store import IdentityStore
    from tally.cloud.storage import open_storage
    from tally.cloud.storage.sql import SqlStorage
    from tally.cloud.views.seed import seed_views
    from tally.cloud.views.store import Views

    storage = open_storage(database_url)
    try:
        storage.migrate()
        assert isinstance(storage, SqlStorage)
        summary = seed_views(Views(storage.engine), scale=scale, seed=seed)
        store = IdentityStore(storage.engine)
        logins: dict[str, tuple[str, str, str]] = {}
        for role, (sample, user_role) in ROLES.items():
            tenant = summary.sample[sample]
            sites = summary.sites.get(tenant, ()) if role == "warehouse" else ()
            store.create_tenant(tenant, KIND_OF.get(role, role), f"Simulated {tenant}", sites)
            username = f"{user_role.replace('_', '.')}@{tenant}"
            password = secrets.token_urlsafe(18)
            store.create_user(tenant, username, password, [user_role])
            logins[role] = (tenant, username, password)
    finally:
        storage.close()
    return summary, Users(logins)


def _serve(database_url: str, data_dir: str, out: Connection) -> None:
    """The server process: the cloud app over ``database_url`` until ``out`` is closed."""
    from tally.cloud.app import create_app
    from tally.cloud.auditlog import AuditLog
    from tally.cloud.config import CloudSettings
    from tally.cloud.identity_store import IdentityStore
    from tally.cloud.keys import CloudIdentity
    from tally.cloud.server import CloudServer
    from tally.cloud.storage import open_storage
    from tally.cloud.storage.sql import SqlStorage
    from tally.cloud.views.store import Views
    from tally.crypto import SigningKey, get_suite
    from tally.device.trust import Trust

    async def main() -> None:
        suite = get_suite("intl")
        key = SigningKey.generate(suite)
        settings = CloudSettings(
            id=CLOUD, org="bank-01", port=0, data_dir=Path(data_dir), database_url=database_url
        )
        storage = open_storage(database_url)
        assert isinstance(storage, SqlStorage)
        engine = storage.engine
        app = create_app(
            settings, storage, Trust(suite, {"bank-01": key.public}),
            CloudIdentity(CLOUD, "bank-01", key), identities=IdentityStore(engine),
            audit_log=AuditLog(engine), views=Views(engine),
        )  # fmt: skip
        server = CloudServer(app, settings)
        port = await server.start()
        out.send(port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(out.fileno(), stop.set)
        await stop.wait()
        await server.stop()
        storage.close()

    asyncio.run(main())


@dataclass
class ServerProcess:
    """A running server process; :meth:`stop` ends it (and always reaps it)."""

    process: BaseProcess
    pipe: Connection
    port: int

    def stop(self) -> None:
        self.pipe.close()
        self.process.join(15)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


def start_server(database_url: str, data_dir: Path, timeout: float = 60.0) -> ServerProcess:
    """Start the server process; return it once it listens. Raises RuntimeError."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_serve, args=(database_url, str(data_dir), child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise RuntimeError(f"the API server did not start within {timeout:.0f} s")
        port = int(parent.recv())
    except (RuntimeError, EOFError) as exc:
        parent.close()
        proc.terminate()
        proc.join(10)
        raise RuntimeError(f"the API server did not start: {exc}") from None
    return ServerProcess(proc, parent, port)
