"""Views and materialized views: CREATE, CREATE OR REPLACE VIEW (when the old columns stay),
DROP, comments, and the indexes of materialized views."""

from __future__ import annotations

from pgconverge.catalog.model import View
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.kinds import indexes
from pgconverge.planning.kinds.dependants import drift, needs
from pgconverge.quoting import lit, q

_VIEW_WORD = {"v": "VIEW", "m": "MATERIALIZED VIEW"}


def _view_sql(v: View, verb: str) -> str:
    options = f" WITH ({', '.join(v.options)})" if v.options else ""
    return f"{verb} {q(v.schema, v.name)}{options} AS\n{v.definition.rstrip().rstrip(';')}"




def diff(p: Diff) -> None:
    replaced = p.replaced
    for key, v in p.desired.views.items():
        have = p.actual.views.get(key)
        if have is None or have.id in replaced:
            create_view(p, v, recreated=have is not None)
            continue
        if not have.same_definition(v):
            # same leading columns: the view keeps its identity, its grants and its dependants
            p.add(_view_sql(v, "CREATE OR REPLACE VIEW"), "replace_view", v.id, provides=frozenset({v.id}),
                  requires=frozenset(v.depends_on))
        view_extras(p, v, have)
    for have in p.actual.views.values():
        if have.id in replaced:
            p.add(f"DROP {_VIEW_WORD[have.kind]} {q(have.schema, have.name)}", "drop_view", have.id,
                  hazards=drift(have.id in p.desired.views,
                                 f"{_VIEW_WORD[have.kind].lower()} {have.schema}.{have.name}", have.id),
                  removes=frozenset({have.id} | {i.id for i in have.indexes.values()}),
                  provides=frozenset({have.id + "#gone"}), drop_before=frozenset(have.depends_on))


def create_view(p: Diff, v: View, recreated: bool) -> None:
    verb = "CREATE MATERIALIZED VIEW" if v.kind == "m" else "CREATE VIEW"
    text = _view_sql(v, verb)
    p.add(text, "create_view", v.id, provides=frozenset({v.id}),
          requires=needs(p, v.schema, v.depends_on, v.id, recreated),
          scratch=(text + "\nWITH NO DATA",) if v.kind == "m" else ())
    view_extras(p, v, None)


def view_extras(p: Diff, v: View, have: View | None) -> None:
    """Comments and (materialized views) indexes; `have` is None for a view just created."""
    name = q(v.schema, v.name)
    if v.comment != (have.comment if have else None):
        p.add(f"COMMENT ON {_VIEW_WORD[v.kind]} {name} IS {lit(v.comment)}", "comment", v.id,
              requires=frozenset({v.id}))
    old, new = dict(have.column_comments) if have else {}, dict(v.column_comments)
    for col in sorted(set(old) | set(new)):
        if old.get(col) != new.get(col):
            p.add(f"COMMENT ON COLUMN {q(v.schema, v.name, col)} IS {lit(new.get(col))}", "comment", v.id,
                  requires=frozenset({v.id}))
    old_idx = have.indexes if have else {}
    for iname, idx in old_idx.items():
        if iname not in v.indexes or v.indexes[iname].definition != idx.definition or not idx.valid:
            indexes.add_drop(p, idx, True, (hz.index_dropped(
                idx.id, f"index {idx.schema}.{idx.name} on materialized view {v.name} is dropped"),))
    for iname, idx in v.indexes.items():
        was = old_idx.get(iname)
        if was is not None and was.definition == idx.definition and was.valid:
            if was.comment != idx.comment:
                indexes.add_comment(p, idx)
            continue
        if have is None:
            indexes.add_create(p, idx, False, frozenset({v.id}))
        else:
            indexes.add_create(p, idx, True, frozenset({v.id}), (hz.index_build(
                idx.id, f"index {idx.name} is built on materialized view {v.schema}.{v.name}",
                " (CONCURRENTLY: reads go on)"),))
        if idx.comment:
            indexes.add_comment(p, idx, frozenset({idx.id}))
