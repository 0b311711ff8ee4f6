"""Generic fixtures: one real PostgreSQL cluster per test session, fresh databases per test."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from pathlib import Path

import psycopg
import pytest

from pgconverge.dev.embedded import Cluster

if TYPE_CHECKING:
    from pgconverge.planning.steps import Plan

REPO = Path(__file__).resolve().parent.parent
TEST_DB_PREFIX = "pgc_test_"
TEST_ROLE = "schemainspect_test_role"


def _prepare(cluster: Cluster) -> None:
    # Runs only when no other pytest session shares the cluster: leftovers of killed runs.
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (TEST_DB_PREFIX.replace("_", r"\_") + "%",),
        ).fetchall()
    for (name,) in names:
        cluster.drop_database(name)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The session's started cluster; its data dir is kept between runs so later runs start fast."""
    c = Cluster(REPO / ".pgconverge" / "test-cluster")
    with c.session(cleanup=_prepare):
        with psycopg.connect(c.conninfo(), autocommit=True) as conn:
            # Roles are cluster-wide; a concurrent session may create it at the same moment.
            conn.execute(
                f"""DO $$ BEGIN
                      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{TEST_ROLE}') THEN
                        CREATE ROLE {TEST_ROLE} NOLOGIN;
                      END IF;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END $$"""
            )
        yield c


@pytest.fixture
def make_db(cluster: Cluster) -> Iterator[Callable[[], str]]:
    """Factory: make_db() creates a fresh database (from template0) and returns its conninfo."""
    created: list[str] = []

    def make() -> str:
        name = TEST_DB_PREFIX + secrets.token_hex(6)
        created.append(name)
        return cluster.create_database(name)

    yield make
    for name in created:
        cluster.drop_database(name)


@pytest.fixture
def db(make_db: Callable[[], str]) -> str:
    """Conninfo of one fresh, empty database."""
    return make_db()


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to `db`."""
    with psycopg.connect(db, autocommit=True) as c:
        yield c


ALLOW_ALL = dict(allow_hazards="all", drops=["*"])


@pytest.fixture
def converge() -> Callable[..., "Plan"]:
    """converge(db, sql, **options): apply `sql` to `db` with every hazard allowed (options override),
    and check what a converged run means: a non-empty plan was proved on a copy of the target first,
    apply's own check after the change passed (pg_dump of the target equals a fresh load of `sql`),
    and a second plan is empty. Returns the plan that ran."""
    import pgconverge
    from pgconverge import proof

    def run(db: str, sql, **options):
        opts = {**ALLOW_ALL, **options}
        result = pgconverge.apply(db, sql, **opts)
        plan = result.plan
        if plan.steps and opts.get("prove", True):
            assert plan.proof is not None and plan.proof.status == proof.PROVED, plan.proof
        again = pgconverge.plan(db, sql, **opts)
        assert again.is_empty, f"a second plan is not empty:\n{again.to_sql()}"
        return plan

    return run


# --------------------------------------------------------------------------- SSH signing keys (sign-offs)


@dataclass(frozen=True)
class SigningKey:
    """A real ed25519 key made by ssh-keygen for a test: its private key file and principal."""

    key: Path
    principal: str

    @property
    def public(self) -> str:
        return " ".join(Path(f"{self.key}.pub").read_text().split()[:2])

    def allowed_line(self) -> str:
        return f"{self.principal} {self.public}\n"


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory) -> dict[str, SigningKey]:
    """alice (the approver the tests list in allowed_signers) and mallory (whom they do not list)."""
    folder = tmp_path_factory.mktemp("keys")
    keys = {}
    for name in ("alice", "mallory"):
        path = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True,
                       stdin=subprocess.DEVNULL)
        keys[name] = SigningKey(path, f"{name}@example.com")
    return keys
