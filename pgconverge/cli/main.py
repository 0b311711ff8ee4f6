"""The `pgconverge` command: plan and apply against one database.

Exit codes: 0 nothing to do or applied and converged; 2 `plan` has changes
pending; 3 refused (a hazard not allowed, or a gate failed); 1 any other error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from pgconverge.planning.hazards import ALL_HAZARDS, HazardRefused
from pgconverge.errors import PlanError
from pgconverge.planning.steps import Step
from pgconverge.runbook.style import format_plan, format_step, use_colour

__all__ = ["main", "build_parser", "format_plan", "format_step"]

EXIT_OK, EXIT_ERROR, EXIT_PENDING, EXIT_REFUSED = 0, 1, 2, 3

def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", required=True,
                   help="libpq connection string or URL, or env:VAR to read it from a variable (keeps a "
                        "password off the command line); a password is never printed")
    p.add_argument("--sql", action="append", required=True, help=".sql file or folder; repeatable")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--allow-hazards", default="", help=f"comma list or 'all'; known: {', '.join(ALL_HAZARDS)}")
    p.add_argument("--drop", action="append", default=[],
                   help="name an object that may be dropped, e.g. table:public.legacy ('*' for all)")
    p.add_argument("--only-schemas", default="", help="manage only these schemas")
    p.add_argument("--exclude-schemas", default="", help="never manage these schemas")
    p.add_argument("--compare-extension-versions", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="always rebuild the desired catalog")
    p.add_argument("--lock-timeout", default=None,
                   help="how long each attempt of a step waits for its lock before it rolls back, pauses and "
                        "retries: the longest any other session queues behind it (default 500ms)")
    p.add_argument("--lock-deadline", default=None,
                   help="how long a step keeps retrying for its lock, pauses included, before the run fails "
                        "naming the sessions that hold it (default 60s)")
    p.add_argument("--lock-retries", type=int, default=None,
                   help="at most this many retries of a step whose lock was not granted (default: as many as "
                        "fit in --lock-deadline)")
    p.add_argument("--statement-timeout", default=None, help="statement_timeout of each step (default 0: none)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept an empty desired state (no file or no statement), which drops everything")
    p.add_argument("--no-proof", action="store_true",
                   help="do not rehearse the plan on a copy of the target (for scratch databases only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgconverge", description="Converge PostgreSQL databases to SQL.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_common(sub.add_parser("plan", help="show the SQL that would run (exit 2 when changes are pending)"))
    _add_common(sub.add_parser("apply", help="apply the plan, printing each statement as it runs"))
    from pgconverge.cli.env import add_parsers

    add_parsers(sub)
    return parser


def _options(args: argparse.Namespace) -> dict:
    return dict(only_schemas=args.only_schemas, exclude_schemas=args.exclude_schemas,
                allow_hazards=args.allow_hazards, drops=args.drop,
                compare_extension_versions=args.compare_extension_versions, use_cache=not args.no_cache,
                lock_timeout=args.lock_timeout or None, lock_deadline=args.lock_deadline or None,
                statement_timeout=args.statement_timeout or None,
                retries=args.lock_retries, allow_empty=args.allow_empty, prove=not args.no_proof)


def main(argv: Sequence[str] | None = None) -> int:
    from pgconverge.api import Engine, NotConverged, Options, PlanChanged
    from pgconverge.exec.runner import LocalRunner, PsqlError
    from pgconverge.catalog.shadow import default_cache_dir
    from pgconverge.source import SourceError, load_source

    args = build_parser().parse_args(argv)
    if getattr(args, "env_command", None):
        return args.env_command(args)
    colours = use_colour(sys.stdout) and not args.json
    try:
        options = Options.build(**_options(args))
        source = load_source(args.sql if len(args.sql) > 1 else args.sql[0],
                             cache_dir=(options.cache_dir or default_cache_dir()) if options.use_cache else None)
        from pgconverge.cli.env import resolve_target

        engine = Engine(LocalRunner(resolve_target(args.target)), source, options)
        plan = engine.plan()
        refused = engine.policy().refused(plan.hazards)
        if args.command == "plan":
            if args.json:
                doc = plan.to_json()
                doc["refused"] = [{"name": h.name, "reason": h.reason, "object": h.object} for h in refused]
                print(json.dumps(doc, indent=2))
            else:
                print(format_plan(plan, colours))
                if refused:
                    print(f"\n-- refused by policy: {len(refused)} hazard(s) not allowed", file=sys.stderr)
                    for h in refused:
                        print(f"--   {h.name}: {h.reason}", file=sys.stderr)
            if plan.is_empty:
                return EXIT_OK
            return EXIT_REFUSED if refused else EXIT_PENDING
        # apply
        if plan.is_empty:
            print(json.dumps(plan.to_json()) if args.json else "-- no changes: the database is converged")
            return EXIT_OK

        def show(step: Step) -> None:
            if not args.json:
                print(format_step(step, colours), flush=True)

        result = engine.execute(plan, on_step=show)
        if args.json:
            doc = plan.to_json()
            doc["applied"] = True
            doc["seconds"] = round(result.seconds, 3)
            print(json.dumps(doc, indent=2))
        else:
            print(f"-- applied {len(result.executed)} step(s) in {result.seconds:.2f}s; the database is converged")
        return EXIT_OK
    except HazardRefused as e:
        print(f"pgconverge: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except (SourceError, PlanError, PsqlError, NotConverged, PlanChanged, ValueError, TypeError) as e:
        print(f"pgconverge: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except FileNotFoundError as e:
        print(f"pgconverge: error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
