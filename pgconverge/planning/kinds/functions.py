"""Functions and procedures: CREATE, CREATE OR REPLACE (when the signature and result stay),
DROP, and comments. A SECURITY DEFINER routine carries authz_change."""

from __future__ import annotations

import re

from pgconverge.catalog.model import Function
from pgconverge.errors import UnsupportedError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.kinds.dependants import drift, needs
from pgconverge.quoting import lit, q

_ROUTINE = {"f": "FUNCTION", "w": "FUNCTION", "p": "PROCEDURE"}


def _function_sql(f: Function) -> str:
    text = f.definition.rstrip()
    if _SQL_BODY.search(_function_header(text)) and "\nAS " in text:
        # a SQL body in a string is checked at CREATE against what exists then; the shadow
        # checked it already, and what it reads may come later in this plan (a BEGIN ATOMIC
        # body is different: its dependencies are known and ordered)
        return "SET LOCAL check_function_bodies = off;\n" + text
    return text


_SQL_BODY = re.compile(r"^ LANGUAGE sql$", re.M)


def _function_header(definition: str) -> str:
    return re.split(r"\nAS |\nBEGIN ATOMIC|\nRETURN ", definition, maxsplit=1)[0]


def _definer_hazard(f: Function) -> tuple[Hazard, ...]:
    if re.search(r"\bSECURITY DEFINER\b", _function_header(f.definition)):
        return (hz.authz_change(f.id, f"{_ROUTINE[f.kind].lower()} {f.schema}.{f.name}({f.identity_args}) runs "
                                "with its owner's privileges (SECURITY DEFINER)"),)
    return ()




def diff(p: Diff) -> None:
    replaced = p.replaced
    for fid, f in p.desired.functions.items():
        have = p.actual.functions.get(fid)
        text = _function_sql(f)
        if have is None or fid in replaced:
            p.add(text, "create_function", fid, hazards=_definer_hazard(f), provides=frozenset({fid, f.name_id}),
                  requires=needs(p, f.schema, f.depends_on, fid, have is not None))
        elif have.definition != f.definition:
            p.add(text, "replace_function", fid, hazards=_definer_hazard(f),
                  provides=frozenset({fid, f.name_id}), requires=frozenset(f.depends_on))
        before = have.comment if have is not None and fid not in replaced else None
        if f.comment != before:
            p.add(f"COMMENT ON {_ROUTINE[f.kind]} {q(f.schema, f.name)}({f.identity_args}) IS {lit(f.comment)}",
                  "comment", fid, requires=frozenset({fid}))
    removed = p.removed()
    for fid, have in p.actual.functions.items():
        if fid in replaced:
            _check_function_users(p, have, removed)
            p.add(f"DROP {_ROUTINE[have.kind]} {q(have.schema, have.name)}({have.identity_args})",
                  "drop_function", fid, removes=frozenset({fid, have.name_id}),
                  hazards=drift(fid in p.desired.functions,
                                 f"{_ROUTINE[have.kind].lower()} {have.schema}.{have.name}({have.identity_args})", fid),
                  provides=frozenset({fid + "#gone"}), drop_before=frozenset(have.depends_on))


def _check_function_users(p: Diff, f: Function, removed: set[str]) -> None:
    """A function dropped and created again (new signature or result type) while a column
    default, constraint or index that stays keeps calling it: PostgreSQL refuses the DROP."""
    if f.id not in p.desired.functions:
        return
    for user, uses in sorted(p.actual.depends.items()):
        if (user.split(":", 1)[0] in ("column", "constraint", "index") and f.id in uses
                and user not in removed and f.id in p.desired.depends.get(user, ())):
            raise UnsupportedError(
                "function change", f"{f.schema}.{f.name}({f.identity_args})",
                f"its result type or parameters change, so it must be dropped and created again, but "
                f"{user.replace(':', ' ', 1)} uses it; change it in two deployments")
