"""``make deploy``: the runbooks, end to end, against the embedded PostgreSQL cluster.

The cluster holds a "staging" and a "production" database, both loaded fresh from
examples/old_schema.sql (production as it is before the change). The inventories
inventory/staging.py and inventory/production.py reach them through the URLs in
STAGING_DATABASE_URL and PRODUCTION_DATABASE_URL (their group data's ``url_env``),
which this demo points at the cluster. Then, with the real ``pyinfra`` and
``pgconverge`` commands:

    1. a dry run on staging        (preflight, the plan with its hazards, plan files)
    2. the staging converge        (backup, converge, VACUUM ANALYZE, smoke checks, ledger)
    3. the sign-off                (from staging's ledger evidence, signed with an SSH key)
    4. production, wrong sign-off  (an edited copy of it: refused, nothing changes, non-zero exit)
    5. the production converge     (the gate passes: backup, converge, smoke, ledger)
    6. a restore drill             (newest backup -> scratch database -> hash vs ledger, every table in it)
    7. refresh staging             (production's newest verified backup, masked by sql/mask, recorded)

Artefacts: plans/ and backups/ as configured; the demo's sign-offs go to
.pgconverge/demo/signoffs/ so that the repository's signoffs/ stays untouched. The approver's
key is made for the demo in a private temporary folder, with an allowed_signers file naming it
(the repository's signoffs/allowed_signers lists real approvers); the folder is removed at the end.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from pgconverge.dev.embedded import Cluster, default_cluster
from pgconverge.exec.runner import find_psql

REPO = Path(__file__).resolve().parents[2]  # pgconverge/dev/demo.py -> the project folder
DEMO_DIR = Path(".pgconverge") / "demo"
SIGNOFF = DEMO_DIR / "signoffs" / "production.yml"
WRONG_SIGNOFF = DEMO_DIR / "signoffs" / "production-wrong.yml"


def banner(n: int | str, title: str) -> None:
    line = "=" * 78
    print(f"\n{line}\n== {n}. {title}\n{line}", flush=True)


def run(cmd: list[str], env: dict[str, str], expect: int | None = 0) -> int:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    started = time.monotonic()
    rc = subprocess.run(cmd, env=env, cwd=REPO, stdin=subprocess.DEVNULL).returncode
    print(f"-- exit {rc} in {time.monotonic() - started:.1f}s", flush=True)
    if expect is not None and (rc == 0) != (expect == 0):
        raise SystemExit(f"demo: expected exit {'0' if expect == 0 else 'non-zero'}, got {rc}")
    return rc


def fresh_database(cluster: Cluster, name: str) -> str:
    """Drop and re-create `name`, load the old schema into it; returns its URL."""
    cluster.drop_database(name)
    cluster.create_database(name)
    subprocess.run([find_psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", cluster.conninfo(name),
                    "-f", str(REPO / "examples" / "old_schema.sql")], check=True, stdout=subprocess.DEVNULL)
    return cluster.url(name)


def schema_of(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables "
            "WHERE table_schema = 'public' ORDER BY 1")]


def emails(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT email FROM users ORDER BY \"createdAt\"")]


def demo_approver(folder: Path) -> tuple[Path, Path]:
    """An SSH key for the demo's approver, and an allowed_signers file that names it."""
    key = folder / "demo-approver"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "demo-approver", "-f", str(key)],
                   check=True, stdin=subprocess.DEVNULL)
    allowed = folder / "allowed_signers"
    public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    allowed.write_text(f"demo-approver@example.com {public}\n")
    print(f"approver key: {key}.pub\nallowed signers ({allowed}):\n  {allowed.read_text().strip()}")
    return key, allowed


def main() -> int:
    keys = Path(tempfile.mkdtemp(prefix="pgconverge-demo-keys-"))  # 0700: only we read the key
    try:
        return _demo(keys)
    finally:
        shutil.rmtree(keys, ignore_errors=True)


def _demo(keys: Path) -> int:
    os.chdir(REPO)
    py = str(Path(sys.executable))
    bindir = Path(sys.executable).parent
    pyinfra = [str(bindir / "pyinfra")]
    pgconverge = [str(bindir / "pgconverge")] if (bindir / "pgconverge").exists() else [py, "-m", "pgconverge.cli"]

    banner(0, "the embedded cluster: staging and production at the old schema")
    cluster = default_cluster()
    cluster.ensure_started()
    urls = {name: fresh_database(cluster, name) for name in ("staging", "production")}
    env = {**os.environ, "STAGING_DATABASE_URL": urls["staging"], "PRODUCTION_DATABASE_URL": urls["production"],
           "PGCONVERGE_ACTOR": os.environ.get("PGCONVERGE_ACTOR", "demo"), "PYINFRA_PROGRESS": "off"}
    for name, url in urls.items():
        print(f"{name}: {url}\n  tables: {', '.join(schema_of(url))}")
    SIGNOFF.parent.mkdir(parents=True, exist_ok=True)
    for f in (SIGNOFF, WRONG_SIGNOFF):
        f.unlink(missing_ok=True)
        Path(f"{f}.sig").unlink(missing_ok=True)

    banner(1, "dry run on staging: preflight, the plan and its hazards, plan files")
    run(pyinfra + ["inventory/staging.py", "deploy.py", "--dry"], env)

    banner(2, "converge staging: backup, converge, VACUUM ANALYZE, smoke checks, ledger")
    run(pyinfra + ["-y", "inventory/staging.py", "deploy.py"], env)
    run(pgconverge + ["history", "--target", "env:STAGING_DATABASE_URL", "--limit", "3"], env)

    banner(3, "sign-off: production's plan, on the evidence of staging's ledger, signed with an SSH key")
    key, allowed = demo_approver(keys)
    run(pgconverge + ["signoff", "--env", "production", "--key", str(key), "--allowed-signers", str(allowed),
                      "--out", str(SIGNOFF)], env)
    print(SIGNOFF.read_text())
    signers = f"pgconverge_allowed_signers={allowed}"

    banner(4, "production with a wrong sign-off (edited after signing, signature copied): refused, nothing changes")
    before = schema_of(urls["production"])
    WRONG_SIGNOFF.write_text(SIGNOFF.read_text().replace("source_hash: ", "source_hash: 0000", 1))
    shutil.copy(f"{SIGNOFF}.sig", f"{WRONG_SIGNOFF}.sig")
    run(pyinfra + ["-y", "inventory/production.py", "deploy.py",
                   "--data", f"pgconverge_signoff_file={WRONG_SIGNOFF}", "--data", signers], env, expect=1)
    after = schema_of(urls["production"])
    print(f"production tables unchanged: {before == after}")
    if before != after:
        raise SystemExit("demo: the refused run changed production")

    banner(5, "converge production: the signature and the sign-off match, so: backup, converge, smoke, ledger")
    run(pyinfra + ["-y", "inventory/production.py", "deploy.py", "--data", f"pgconverge_signoff_file={SIGNOFF}",
                   "--data", signers], env)
    print(f"production tables now: {', '.join(schema_of(urls['production']))}")

    banner(6, "restore drill: the newest production backup, restored into a scratch database")
    run(pyinfra + ["-y", "inventory/production.py", "drill.py"], env)
    run(pgconverge + ["history", "--target", "env:PRODUCTION_DATABASE_URL", "--limit", "5"], env)

    banner(7, "refresh staging from production's newest verified backup, masked by sql/mask in the same transaction")
    print(f"production users: {', '.join(emails(urls['production']))}")
    run(pyinfra + ["-y", "inventory/staging.py", "refresh.py"], env)
    print(f"staging users now: {', '.join(emails(urls['staging']))}")
    run(pgconverge + ["history", "--target", "env:STAGING_DATABASE_URL", "--limit", "3"], env)

    banner("done", "staging and production converged; the backup restores to the recorded schema; staging holds "
                   "production's data, masked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
