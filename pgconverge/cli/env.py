"""CLI subcommands about environments: ``history`` (the ledger) and ``signoff`` (the gate).

``history --env ENV`` and ``signoff`` read an environment's inventory the way a deploy does.

Targets are given as a URL / conninfo string, or as ``env:VAR`` to read the URL from an
environment variable, so that a password never needs to be on the command line.
``signoff`` reads the environments' inventories (inventory/<env>.py with its group data and
per-host data, loaded by pyinfra's own loader) for the connections, the sql/ folder and the
sign-off file, unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from pgconverge.runbook.settings import EnvSettings

EXIT_OK, EXIT_ERROR, EXIT_REFUSED = 0, 1, 3
_NAMED = re.compile(r"^([A-Za-z0-9_.-]+)=((?:postgres(?:ql)?://|env:).*)$", re.S)


def resolve_target(value: str) -> str:
    """A URL or conninfo; ``env:VAR`` reads it from the environment, and takes it out of the
    environment so that no psql, pg_dump or shell started later inherits it (``exec.secrets``)."""
    if value.startswith("env:"):
        from pgconverge.exec.secrets import env_url

        return env_url(value[4:], f"--target {value}")
    return value


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("history", help="print a database's ledger: the runs, backups and smoke results")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--target", help="URL/conninfo, or env:VAR to read it from a variable")
    which.add_argument("--env", help="every database of this environment's inventory (inventory/ENV.py)")
    p.add_argument("--database", default=None, help="with --env: only the database with this label")
    p.add_argument("--root", default=".", help="with --env: the project folder holding inventory/ (default: .)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="the N newest runs (default 20)")
    p.add_argument("--action", choices=["deploy", "restore", "drill", "refresh"], default=None,
                   help="only the runs of this runbook")
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.set_defaults(env_command=history_main)

    p = sub.add_parser("signoff", help="sign off production's plan with your SSH key, after staging converged "
                                       "and passed (exit 3 when the evidence is missing); --verify checks one")
    p.add_argument("--key", default=None,
                   help="your SSH signing key (its private key file, or its .pub when the key is in ssh-agent); "
                        "its principal in the allowed signers file is the approver")
    p.add_argument("--approver", default=None, help=argparse.SUPPRESS)  # refused with a message: see signoff_main
    p.add_argument("--verify", action="store_true",
                   help="check the existing sign-off against production, staging's ledger and the allowed signers, "
                        "as the deploy's gate does (exit 0 covered, 3 refused); writes nothing")
    p.add_argument("--allowed-signers", default=None,
                   help="who may sign (ssh-keygen's allowed_signers format; default: pgconverge_allowed_signers, "
                        "signoffs/allowed_signers)")
    p.add_argument("--env", default="production", help="the environment signed off (default: production)")
    p.add_argument("--from", dest="from_env", default=None,
                   help="the environment whose ledger is the evidence (default: pgconverge_signoff_from, staging)")
    p.add_argument("--production", action="append", default=[], metavar="[NAME=]URL",
                   help="a database of --env (default: its group data); env:VAR reads the URL from a variable")
    p.add_argument("--staging", action="append", default=[], metavar="[NAME=]URL",
                   help="a database of --from (default: its group data)")
    p.add_argument("--sql", action="append", default=None, help="desired state (default: the group data's)")
    p.add_argument("--smoke", default=None, help="smoke checks folder (default: the group data's)")
    p.add_argument("--out", default=None, help="the sign-off file (default: pgconverge_signoff_file); "
                                               "its signature is written next to it, as <file>.sig")
    p.add_argument("--root", default=".", help="the project folder holding inventory/ and group_data/ (default: .)")
    p.add_argument("--json", action="store_true", help="print the sign-off (or the verdicts of --verify) as JSON")
    p.set_defaults(env_command=signoff_main)


def _error(msg: str) -> int:
    print(f"pgconverge: error: {msg}", file=sys.stderr)
    return EXIT_ERROR


def history_main(args: argparse.Namespace) -> int:
    from pgconverge.runbook import ledger
    from pgconverge.exec.runner import LocalRunner, PsqlError

    try:
        if args.target:
            runs = ledger.history(LocalRunner(resolve_target(args.target)), args.limit, args.action)
            if args.json:
                print(json.dumps([r.to_json() for r in runs], indent=2, default=str))
            else:
                print(ledger.format_history(runs))
            return EXIT_OK
        found = []
        for t in load_environment(args.env, args.root).targets:
            runner = _runner(t.spec)
            label = t.name or runner.query_json("SELECT to_json(current_database());")
            if args.database in (None, label):
                found.append((t.host, label, ledger.history(runner, args.limit, args.action)))
        if not found:
            raise ValueError(f"inventory/{args.env}.py has no database {args.database!r}" if args.database
                             else f"inventory/{args.env}.py lists no databases")
    except (PsqlError, ValueError, FileNotFoundError) as e:
        return _error(str(e))
    if args.json:
        print(json.dumps([{"host": host, "database": label, "runs": [r.to_json() for r in runs]}
                          for host, label, runs in found], indent=2, default=str))
    else:
        print("\n\n".join(f"== {args.env} {label} on {host}\n{ledger.format_history(runs)}"
                           for host, label, runs in found))
    return EXIT_OK


@dataclass(frozen=True)
class Target:
    """One database to plan: its label (None: the server's name for it), URL or spec, and the
    settings of the host that carries it."""

    name: str | None
    spec: Any
    settings: EnvSettings
    host: str | None = None  # the inventory host carrying it (None: named on the command line)


@dataclass(frozen=True)
class Environment:
    """An environment as the CLI sees it: the settings shared by its hosts, and its databases."""

    settings: EnvSettings
    targets: list[Target]


# Settings that make one sign-off: every host of an environment must agree on them.
_SHARED = ("sql", "smoke", "signoff_file", "signoff_from", "require_signoff")


def load_environment(env: str, root: str) -> Environment:
    """inventory/<env>.py through pyinfra's own loader: each host's data exactly as a deploy sees it."""
    from pgconverge.pyinfra.inventory import inventory_path, load_hosts

    hosts = load_hosts(env, root)
    if not hosts:
        raise ValueError(f"{inventory_path(env, root)} lists no hosts")
    targets: list[Target] = []
    shared = hosts[0].settings()
    for h in hosts:
        settings = h.settings()
        for key in _SHARED:
            if getattr(settings, key) != getattr(shared, key):
                raise ValueError(f"the hosts of {inventory_path(env, root)} disagree on pgconverge_{key} "
                                 f"({hosts[0].name}: {getattr(shared, key)!r}, {h.name}: {getattr(settings, key)!r}): "
                                 "one sign-off covers one sql/")
        targets += [Target(s.get("name") if isinstance(s, dict) else None, s, settings, h.name)
                    for s in h.databases()]
    return Environment(shared, targets)


def _targets(values: list[str], environment: Environment, env: str, option: str) -> list[Target]:
    """The databases named on the command line, else those of the environment's inventory."""
    if values:
        out = []
        for v in values:
            m = _NAMED.match(v)
            name, url = (m.group(1), resolve_target(m.group(2))) if m else (None, resolve_target(v))
            out.append(Target(name, url, environment.settings))
        return out
    if not environment.targets:
        raise ValueError(f"inventory/{env}.py and its group data list no databases (pgconverge_databases): "
                         f"pass {option} URL")
    return environment.targets


def _runner(target: Any):
    from pgconverge.exec.runner import LocalRunner, conn_from_spec

    return LocalRunner(conn_from_spec(target) if isinstance(target, dict) else target)


def _in_root(root: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(root, path)


def signoff_main(args: argparse.Namespace) -> int:
    from pgconverge.runbook import gate, signoff, smoke, sshsig
    from pgconverge.api import Engine, Options
    from pgconverge.exec.runner import LocalRunner, PsqlError, conn_from_spec
    from pgconverge.source import SourceError, load_source

    if args.approver is not None:
        return _error("--approver is gone: the approver is the principal of the SSH key that signs, as listed in "
                      "signoffs/allowed_signers; sign with --key PATH")
    if not args.verify and not args.key:
        return _error("pass --key PATH: the sign-off is signed with your SSH key (e.g. ~/.ssh/id_ed25519)")
    try:
        production_env = load_environment(args.env, args.root)
        prod = production_env.settings
        from_env = args.from_env or prod.signoff_from
        try:
            staging_env = load_environment(from_env, args.root)
        except FileNotFoundError:
            if not args.staging:
                raise
            staging_env = Environment(EnvSettings(env=from_env), [])
        sql = args.sql or [_in_root(args.root, p) for p in prod.sql]
        source = load_source(sql if len(sql) > 1 else sql[0])
        # the checks production runs after its converge: staging must have passed exactly these
        smoke_dir = args.smoke or (_in_root(args.root, prod.smoke) if prod.smoke else None)
        smoke_hash = smoke.checks_hash(smoke.load(smoke_dir))
        out = args.out or _in_root(args.root, prod.signoff_file)
        allowed = args.allowed_signers or _in_root(args.root, prod.allowed_signers)
        shadows: dict[str, LocalRunner] = {}

        def shadow_for(settings: EnvSettings) -> LocalRunner | None:
            if not settings.shadow:
                return None
            key = repr(settings.shadow)
            if key not in shadows:
                shadows[key] = LocalRunner(conn_from_spec(settings.shadow))
            return shadows[key]

        def plans(targets: list[Target]):
            done = []
            for t in targets:
                runner = _runner(t.spec)
                engine = Engine(runner, source, Options.build(**t.settings.engine_options()),
                                shadow=shadow_for(t.settings))
                plan = engine.plan()
                label = t.name or runner.query_json("SELECT to_json(current_database());")
                done.append((label, runner, engine, plan, t.settings))
            return done

        production = plans(_targets(args.production, production_env, args.env, "--production"))
        policies = {signoff.Policy.of(st.allow_hazards, st.drops) for *_x, st in production}
        if len(policies) != 1:
            raise signoff.SignoffRefused(f"the {args.env} databases have different policies "
                                         f"({'; '.join(p.describe() for p in policies)}): one sign-off covers one")
        policy = policies.pop()
        staging_targets = _targets(args.staging, staging_env, from_env, "--staging")
        if args.verify:
            def specs(env: str) -> list:
                if env == from_env:
                    return [t.spec for t in staging_targets]
                return [t.spec for t in load_environment(env, args.root).targets]

            reader = gate.reader_of(specs)
            verdicts = [(label, gate.check(out, allowed, gate.Current(args.env, label, plan, source.sha256,
                                                                       smoke_hash, policy), reader))
                        for label, _r, _e, plan, _s in production]
            return _print_verdicts(out, args.env, verdicts, args.json)
        for label, _r, engine, plan, _s in production:
            refused = engine.policy(plan).refused(plan.hazards)
            if refused:
                raise signoff.SignoffRefused(
                    f"{args.env}'s policy refuses the plan for {label}: "
                    + "; ".join(f"{h.name}: {h.reason}" for h in refused))
        staging = [signoff.StagingDatabase(label, runner, plan)
                   for label, runner, _e, plan, _s in plans(staging_targets)]
        made = signoff.make(args.env, source.sha256, smoke_hash, policy,
                            [(label, plan) for label, _r, _e, plan, _s in production], from_env, staging)
        signer = signoff.write_signed(out, made, args.key, allowed)
    except signoff.SignoffRefused as e:
        print(f"pgconverge: sign-off refused: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except sshsig.SignatureError as e:
        return _error(str(e))
    except (PsqlError, SourceError, ValueError, FileNotFoundError) as e:
        return _error(str(e))
    sig = sshsig.signature_path(out)
    if args.json:
        print(json.dumps({"file": out, "signature": str(sig), "signer": signer.principal,
                          "key": signer.fingerprint, **made.to_json()}, indent=2, default=str))
        return EXIT_OK
    print(f"sign-off written to {out}, signed by {signer} in {sig}")
    print(f"  approved at {made.approved_at}")
    print(f"  sql/ {made.source_hash[:12]}, desired schema {made.desired_hash[:12]}, smoke checks "
          f"{made.smoke_hash[:12]}")
    print(f"  policy: {made.policy.describe()}")
    for d in made.databases:
        print(f"  {args.env} {d.database}: from schema {d.start_hash[:12]}, plan {d.plan_hash[:12]} "
              f"({d.steps} step(s); hazards: {', '.join(d.hazards) or 'none'})")
    for r in made.staging_runs:
        print(f"  evidence: {from_env} {r.database} run #{r.run_id} {r.outcome} at {r.finished_at}, "
              f"smoke {r.smoke}")
        if r.snapshot:
            print(f"    on snapshot: {r.describe_snapshot()}")
    print("commit both files; the deploy verifies the signature against the allowed signers file")
    return EXIT_OK


def _print_verdicts(path: str, env: str, verdicts: list, as_json: bool) -> int:
    refused = [v for _l, v in verdicts if v.refusal]
    if as_json:
        print(json.dumps({"file": path, "covered": not refused, "databases": [
            {"database": label, "refusal": v.refusal, "signer": v.signer.principal if v.signer else None,
             "notes": list(v.notes)} for label, v in verdicts]}, indent=2))
    else:
        for label, v in verdicts:
            if v.refusal:
                print(f"{env} {label}: REFUSED: {v.refusal}", file=sys.stderr)
            else:
                who = f"signed off by {v.signer}" if v.signer else "covered"
                print(f"{env} {label}: {who}" + "".join(f"; {n}" for n in v.notes))
    return EXIT_REFUSED if refused else EXIT_OK
