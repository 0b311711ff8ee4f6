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
from pgconverge.cli.envrun import add_env_options, check_combination, write_script
from pgconverge.runbook.style import format_plan, format_step, use_colour

__all__ = ["main", "build_parser", "format_plan", "format_step"]

EXIT_OK, EXIT_ERROR, EXIT_PENDING, EXIT_REFUSED = 0, 1, 2, 3

def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=None, metavar="URL",
                   help="libpq connection string or URL, or env:VAR to read it from a variable (keeps a "
                        "password off the command line); a password is never printed")
    p.add_argument("--sql", action="append", default=None, metavar="PATH",
                   help=".sql file or folder of the desired state; repeatable")
    p.add_argument("--json", action="store_true",
                   help="print a JSON document: the steps with their effective lock_timeout and statement_timeout, "
                        "the hashes, the proof, what the policy refuses")
    p.add_argument("--allow-hazards", default="", metavar="LIST",
                   help=f"comma list or 'all'; known: {', '.join(ALL_HAZARDS)}")
    p.add_argument("--drop", action="append", default=[], metavar="ID",
                   help="name an object that may be dropped, e.g. table:public.legacy ('*' for all); repeatable")
    p.add_argument("--unmanaged", default=None, choices=("refuse", "report", "drop"),
                   help="objects in the database that sql/ does not declare: refuse (plan them as drops, refused "
                        "unless a drop is named; the default), report (leave them alone and list them) or drop "
                        "(drop them, hazards shown)")
    p.add_argument("--only-schemas", default="", metavar="LIST", help="manage only these schemas (comma list)")
    p.add_argument("--exclude-schemas", default="", metavar="LIST", help="never manage these schemas (comma list)")
    p.add_argument("--compare-extension-versions", action="store_true",
                   help="plan extension updates even where sql/ pins no VERSION")
    p.add_argument("--no-cache", action="store_true", help="always rebuild the desired catalog")
    p.add_argument("--lock-timeout", default=None, metavar="DURATION",
                   help="how long each attempt of a step waits for its lock before it rolls back, pauses and "
                        "retries: the longest any other session queues behind it (default 500ms)")
    p.add_argument("--lock-deadline", default=None, metavar="DURATION",
                   help="how long a step keeps retrying for its lock, pauses included, before the run fails "
                        "naming the sessions that hold it (default 60s)")
    p.add_argument("--lock-retries", type=int, default=None, metavar="N",
                   help="at most this many retries of a step whose lock was not granted (default: as many as "
                        "fit in --lock-deadline)")
    p.add_argument("--statement-timeout", default=None, metavar="DURATION",
                   help="statement_timeout of each step (default 30min)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept an empty desired state (no file or no statement), which drops everything")
    p.add_argument("--allow-extension", action="append", default=[], metavar="NAME",
                   help="let sql/ create an extension that reaches outside the database (dblink, the FDWs, "
                        "untrusted languages); repeatable")
    p.add_argument("--scratch-role", default=None, metavar="ROLE",
                   help="a role without rights that the connecting role may SET ROLE to, for the scratch databases "
                        "when that role may not create roles (no CREATEROLE)")
    p.add_argument("--no-proof", action="store_true",
                   help="do not rehearse the plan on a copy of the target (for scratch databases only)")
    add_env_options(p)


def build_parser() -> argparse.ArgumentParser:
    from pgconverge import __version__

    parser = argparse.ArgumentParser(prog="pgconverge", description="Converge PostgreSQL databases to SQL.")
    parser.add_argument("--version", action="version", version=f"pgconverge {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = sub.add_parser("plan", help="show the SQL that would run (exit 2 when changes are pending)",
                          description="Show the plan: the SQL that apply would run, with its hazards. Exit 0 "
                                      "nothing to do, 2 changes pending, 3 refused, 1 error.")
    _add_common(plan)
    plan.add_argument("--script", default=None, metavar="FILE",
                      help="also write the plan as a psql script ('-': on stdout): the statements apply runs, in "
                           "its transactions, with SET lock_timeout and statement_timeout before each; run it "
                           "with psql -X -d DATABASE -f FILE")
    apply = sub.add_parser("apply", help="apply the plan, printing each statement as it runs",
                           description="Apply the plan. With --env: the deploy's runbook (preflight, gate, "
                                       "backup, converge, analyze, smoke checks, ledger row).")
    _add_common(apply)
    apply.set_defaults(script=None)
    _add_dump(sub)
    from pgconverge.cli.env import add_parsers

    add_parsers(sub)
    from pgconverge.cli.completion import add_parser as add_completion

    add_completion(sub)
    parser.set_defaults(root_parser=parser)
    return parser


def _add_dump(sub) -> None:
    d = sub.add_parser("dump", help="write the schema of a live database as sql/",
                       description="Write the desired state of a live database as sql/: schemas, extensions, "
                                   "types, one file per table, functions and views, numbered in dependency order. "
                                   "A plan of the database against the folder is empty. What sql/ cannot say is "
                                   "refused naming the kind and the object, and nothing is written. Exit 0 written, "
                                   "1 error or refused.")
    d.add_argument("--target", required=True, metavar="URL",
                   help="libpq connection string or URL, or env:VAR to read it from a variable (keeps a "
                        "password off the command line); a password is never printed")
    d.add_argument("--out", required=True, metavar="DIR", help="the folder to write (created; must be empty)")
    d.add_argument("--force", action="store_true", help="replace the contents of a non-empty --out folder")
    d.add_argument("--only-schemas", default="", metavar="LIST", help="dump only these schemas (comma list)")
    d.add_argument("--exclude-schemas", default="", metavar="LIST", help="never dump these schemas (comma list)")
    d.add_argument("--no-cache", action="store_true", help="always rebuild the shadow catalogs")
    d.add_argument("--json", action="store_true", help="print a JSON document: the files, their statements and objects")
    d.set_defaults(env_command=_run_dump)


def _run_dump(args: argparse.Namespace) -> int:
    from pgconverge.cli.env import resolve_target
    from pgconverge.dump import dump
    from pgconverge.exec.runner import Conn, LocalRunner, PsqlError
    from pgconverge.source import SourceError

    names = [x.strip() for x in args.only_schemas.split(",") if x.strip()]
    excluded = [x.strip() for x in args.exclude_schemas.split(",") if x.strip()]
    try:
        runner = LocalRunner(Conn.parse(resolve_target(args.target), "--target"))
        result = dump(runner, args.out, only_schemas=names, exclude_schemas=excluded, force=args.force,
                      use_cache=not args.no_cache)
    except (SourceError, PlanError, PsqlError, ValueError, OSError) as e:
        print(f"pgconverge: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps({"out": str(result.out), "statements": result.statements, "layout": result.layout,
                          "source_hash": result.source_hash,
                          "files": [{"path": f.path, "statements": f.statements, "objects": list(f.objects)}
                                    for f in result.files]}, indent=2))
    else:
        for f in result.files:
            print(f"-- {f.path}: {f.statements} statement(s)")
        print(f"-- wrote {len(result.files)} file(s), {result.statements} statement(s) to {result.out}; "
              "a plan of the database against it is empty")
    return EXIT_OK


def _options(args: argparse.Namespace) -> dict:
    return dict(only_schemas=args.only_schemas, exclude_schemas=args.exclude_schemas,
                allow_hazards=args.allow_hazards, drops=args.drop,
                compare_extension_versions=args.compare_extension_versions, use_cache=not args.no_cache,
                lock_timeout=args.lock_timeout or None, lock_deadline=args.lock_deadline or None,
                statement_timeout=args.statement_timeout or None,
                retries=args.lock_retries, allow_empty=args.allow_empty, prove=not args.no_proof,
                allow_extensions=args.allow_extension, unmanaged=args.unmanaged,
                scratch_role=args.scratch_role)


def main(argv: Sequence[str] | None = None) -> int:
    from pgconverge.api import NotConverged, Options, PlanChanged, local_engine
    from pgconverge.exec.runner import Conn, PsqlError
    from pgconverge.catalog.shadow import default_cache_dir
    from pgconverge.exec.script import plan_json, render_plan_script
    from pgconverge.planning.unmanaged import remedy as unmanaged_remedy
    from pgconverge.source import SourceError, load_source

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "env_command", None):
        return args.env_command(args)
    problem = check_combination(args)
    if args.script == "-" and args.json:
        problem = "--script - and --json both print on stdout: give --script a file"
    if problem:
        print(f"pgconverge {args.command}: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    colours = use_colour(sys.stdout) and not args.json and args.script != "-"
    try:
        if args.env:
            from pgconverge.cli.envrun import run

            return run(args, colours)
        options = Options.build(**_options(args))
        sql = args.sql if len(args.sql) > 1 else args.sql[0]
        from pgconverge.cli.env import resolve_target

        try:
            conn = Conn.parse(resolve_target(args.target), "--target")
        except Exception as bad:
            # sql/'s own errors first, as they always came, then the target's
            load_source(sql, cache_dir=(options.cache_dir or default_cache_dir()) if options.use_cache else None)
            raise bad
        engine = local_engine(conn, sql, options)
        plan = engine.plan()
        refused = engine.policy(plan).refused(plan.hazards)
        if args.command == "plan":
            if args.script:
                write_script(args.script, render_plan_script(plan, options.settings))
            if args.json:
                doc = plan_json(plan, options.settings)
                doc["refused"] = [{"name": h.name, "reason": h.reason, "object": h.object} for h in refused]
                print(json.dumps(doc, indent=2))
            elif args.script != "-":
                print(format_plan(plan, colours))
                if refused:
                    print(f"\n-- refused by policy: {len(refused)} hazard(s) not allowed", file=sys.stderr)
                    for h in refused:
                        print(f"--   {h.name}: {h.reason}", file=sys.stderr)
                    remedy = unmanaged_remedy(plan, refused)
                    if remedy:
                        print(f"-- {remedy}", file=sys.stderr)
            if plan.is_empty:
                return EXIT_OK
            return EXIT_REFUSED if refused else EXIT_PENDING
        # apply
        if plan.is_empty:
            print(json.dumps(plan_json(plan, options.settings)) if args.json
                  else "-- no changes: the database is converged")
            return EXIT_OK

        def show(step: Step) -> None:
            if not args.json:
                print(format_step(step, colours), flush=True)

        from pgconverge.exec.progress import reporter_for_stream

        # progress of long steps on stderr: a bar on a terminal, a line every few seconds otherwise
        result = engine.execute(plan, on_step=show, progress=reporter_for_stream(sys.stderr))
        if args.json:
            doc = plan_json(plan, options.settings)
            doc["applied"] = True
            doc["seconds"] = round(result.seconds, 3)
            doc["step_times"] = [{"what": t.what, "seconds": round(t.seconds, 3)} for t in result.step_times]
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
    except OSError as e:  # a file that is missing or cannot be written
        print(f"pgconverge: error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
