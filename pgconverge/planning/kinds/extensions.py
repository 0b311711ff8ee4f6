"""Extensions: CREATE, ALTER (schema, version), COMMENT ON and DROP EXTENSION.

Versions are compared only when the options ask for it (globally or per pinned extension):
otherwise a database on a newer minor version of an extension is left alone."""

from __future__ import annotations

from pgconverge.catalog.model import Extension, schema_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.quoting import lit, q


def diff(p: Diff) -> None:
    for eid, e in p.desired.extensions.items():
        name = e.name
        compare_version = p.options.compare_extension_versions or name in p.options.pinned_extensions
        have = p.actual.extensions.get(eid)
        if have is None:
            version = f" VERSION {lit(e.version)}" if compare_version else ""
            p.add(f"CREATE EXTENSION IF NOT EXISTS {q(name)} WITH SCHEMA {q(e.schema)}{version}",
                  "create_extension", e.id, hazards=(hz.extension_change(e.id, name, "is installed"),),
                  provides=frozenset({e.id}), requires=frozenset({schema_id(e.schema)}))
            if e.own_comment:
                _comment(p, e, e.comment)
            continue
        if have.schema != e.schema:
            p.add(f"ALTER EXTENSION {q(name)} SET SCHEMA {q(e.schema)}", "alter_extension", e.id,
                  hazards=(hz.extension_change(e.id, name, f"moves to schema {e.schema}"),),
                  provides=frozenset({e.id}), requires=frozenset({schema_id(e.schema)}))
        if compare_version and have.version != e.version:
            p.add(f"ALTER EXTENSION {q(name)} UPDATE TO {lit(e.version)}", "alter_extension", e.id,
                  hazards=(hz.extension_change(e.id, name, f"is updated from {have.version} to {e.version}"),),
                  provides=frozenset({e.id}))
        if (e.own_comment, e.comment) != (have.own_comment, have.comment):
            _comment(p, e, e.comment if e.own_comment else have.control_comment)
    for eid, e in p.actual.extensions.items():
        if eid not in p.desired.extensions:
            p.add(f"DROP EXTENSION {q(e.name)}", "drop_extension", e.id, removes=frozenset({e.id}),
                  hazards=(hz.extension_change(e.id, e.name, "is dropped"),
                           hz.deletes_data(e.id, f"extension {e.name}", " is dropped with its objects")))


def _comment(p: Diff, e: Extension, text: str | None) -> None:
    p.add(f"COMMENT ON EXTENSION {q(e.name)} IS {lit(text)}", "comment", e.id, requires=frozenset({e.id}))
