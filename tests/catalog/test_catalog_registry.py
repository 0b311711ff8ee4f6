"""The registry of catalog kinds and what is derived from it: pure logic, no server."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from importlib import resources

import pytest

from pgconverge.catalog import kinds
from pgconverge.catalog.introspect import parse_catalog
from pgconverge.catalog.kinds import (BY_NAME, CATALOG_KINDS, KINDS, WHOLE_DATABASE_FIELDS, Document, catalog_hash,
                                      catalog_query, copy_catalog, fingerprint_catalogs, fingerprint_query, scope)
from pgconverge.catalog.model import (Acl, Catalog, Collation, Column, CompositeType, DefaultAcl, Domain, EnumType,
                                      Extension, Function, RangeType, RlsPolicy, Schema, Sequence, Table, Trigger,
                                      Unsupported, View)

# One record in schema `s` per record type a kind fills: a kind added without a sample fails here.
SAMPLES = {
    Schema: lambda s: Schema(s),
    Extension: lambda s: Extension(f"ext_{s}", s, "1.0"),
    EnumType: lambda s: EnumType(s, "mood", ("a",)),
    Sequence: lambda s: Sequence(s, "seq", "bigint", 1, 1, 1, 9, 1, False),
    Table: lambda s: Table(s, "t", columns={"id": Column("id", "integer", position=1)}, estimated_rows=5),
    Collation: lambda s: Collation(s, "coll", "c", lc_collate="C", lc_ctype="C"),
    Domain: lambda s: Domain(s, "dom", "integer"),
    CompositeType: lambda s: CompositeType(s, "comp"),
    RangeType: lambda s: RangeType(s, "rng", "integer"),
    View: lambda s: View(s, "v", "v", " SELECT 1;"),
    Function: lambda s: Function(s, "f", "", "f", "CREATE FUNCTION ..."),
    Trigger: lambda s: Trigger(s, "t", "trg", "CREATE TRIGGER ..."),
    RlsPolicy: lambda s: RlsPolicy(s, "t", "pol"),
    Acl: lambda s: Acl("table", s, "t", owner="alice"),
    DefaultAcl: lambda s: DefaultAcl("alice", s, "r", frozenset({("bob", "SELECT", False)})),
    Unsupported: lambda s: Unsupported("operator class", f"{s}.opc"),
}


def catalog_with(*schemas: str) -> Catalog:
    """A catalog holding one sample of every kind in each schema."""
    cat = Catalog(server_version=150000)
    for kind in CATALOG_KINDS:
        held = getattr(cat, kind.attr)
        for s in schemas:
            record = SAMPLES[kind.record](s)
            if kind.key_of is None:
                held.append(record)
            else:
                held[kind.key(record)] = record
    return cat


def only_key(d: dict):
    # key-agnostic: the Catalog dicts are about to be keyed by record.id
    (key,) = d
    return key


def test_every_catalog_field_is_a_kind_or_whole_database():
    attrs = {k.attr for k in CATALOG_KINDS}
    catalog_fields = {f.name for f in fields(Catalog)}
    assert attrs <= catalog_fields
    assert catalog_fields - attrs == WHOLE_DATABASE_FIELDS
    assert not attrs & WHOLE_DATABASE_FIELDS


def test_every_kind_has_its_query_file_and_a_document_field():
    folder = resources.files("pgconverge.catalog") / "queries"
    on_disk = {p.name for p in folder.iterdir() if p.name.endswith(".sql")}
    assert {k.query_file for k in KINDS} | {"shared.sql", "fingerprint.sql", "stale_statistics.sql"} == on_disk
    assert [f for f in Document.__struct_fields__] == ["server_version", *(k.name for k in KINDS)]
    assert len(BY_NAME) == len(KINDS)


def test_every_catalog_kind_knows_its_record_key_and_schema():
    for kind in CATALOG_KINDS:
        assert kind.record in SAMPLES, kind.name
        assert kind.schema_of is not None, kind.name
        record = SAMPLES[kind.record]("s1")
        assert kind.schema_of(record) == "s1", kind.name
        if kind.key_of is not None:
            hash(kind.key(record))


def test_glue_query_holds_every_kind_once_and_the_ledger_schema_is_filled_in():
    text = catalog_query()
    for kind in KINDS:
        assert text.count(f"'{kind.name}', (SELECT coalesce(json_agg(q), '[]') FROM (") == 1, kind.name
    assert ":'ledger_schema'" not in text
    assert "'pgconverge'" in text and "%I.data_blocks" in text
    assert text.startswith("SET search_path = pg_catalog;\n")


def test_fingerprint_covers_every_catalog_each_kind_reads():
    catalogs = fingerprint_catalogs()
    assert len(catalogs) == len(set(catalogs))
    text = fingerprint_query()
    assert ":catalog_versions" not in text
    for kind in KINDS:
        for c in kind.reads:
            assert c in catalogs
            assert f'\'{c}\', (SELECT ARRAY[count(*)' in text and f'FROM "pg_catalog"."{c}")' in text
    for c in kinds.SHARED_READS:
        assert c in catalogs


@pytest.mark.parametrize("kind", CATALOG_KINDS, ids=lambda k: k.name)
def test_scope_keeps_and_drops_each_kind(kind):
    cat = catalog_with("a", "b")
    only = getattr(scope(cat, only_schemas=["a"]), kind.attr)
    excluded = getattr(scope(cat, exclude_schemas=["a"]), kind.attr)
    values = list(only.values()) if isinstance(only, dict) else only
    rest = list(excluded.values()) if isinstance(excluded, dict) else excluded
    assert [kind.schema_of(r) for r in values] == ["a"]
    assert [kind.schema_of(r) for r in rest] == ["b"]
    assert len(getattr(cat, kind.attr)) == 2  # the original is left alone


def test_scope_without_schemas_is_the_catalog_itself():
    cat = catalog_with("a")
    assert scope(cat) is cat and scope(cat, [], []) is cat


def test_scope_of_records_in_no_schema():
    cat = Catalog()
    cat.unsupported = [Unsupported("cast", "integer AS mood")]
    glob = DefaultAcl("alice", None, "r", frozenset({("bob", "SELECT", False)}))
    cat.default_acls = {glob.id: glob}
    cat.depends = {"view:a.v": ("table:a.t",)}
    cat.available_extensions = {"hstore": "1.8"}
    only = scope(cat, only_schemas=["a"])
    assert only.unsupported == cat.unsupported  # a cast is no schema's: kept
    assert only.default_acls == {}  # global default privileges: only without a schema list
    assert scope(cat, exclude_schemas=["a"]).default_acls == cat.default_acls
    # whole-database facts pass through
    assert only.depends is cat.depends and only.available_extensions is cat.available_extensions


def test_catalog_hash_ignores_position_row_estimates_volatility_and_owner():
    cat = catalog_with("a")
    base = catalog_hash(cat)
    other = copy_catalog(cat)
    tkey, akey = only_key(other.tables), only_key(other.acls)
    t = other.tables[tkey]
    col = replace(t.columns["id"], position=7, volatile_default=True, depends_on=("type:a.mood",))
    other.tables[tkey] = replace(t, columns={"id": col}, estimated_rows=10**6)
    acl = other.acls[akey]
    other.acls[akey] = replace(acl, owner="somebody")
    assert catalog_hash(other) == base
    other.tables[tkey] = replace(t, columns={"id": replace(col, default="1")})
    assert catalog_hash(other) != base
    other = copy_catalog(cat)
    other.acls[akey] = replace(acl, entries=frozenset({("bob", "SELECT", False)}))
    assert catalog_hash(other) != base


def test_catalog_hash_ignores_unsupported_and_whole_database_facts_but_not_extra():
    cat = catalog_with("a")
    base = catalog_hash(cat)
    other = copy_catalog(cat)
    other.unsupported.append(Unsupported("cast", "x AS y"))
    other.depends["x"] = ("y",)
    other.current_user = "somebody"
    assert catalog_hash(other) == base
    other.extra["k"] = 1
    assert catalog_hash(other) != base


def test_copy_catalog_is_independent_and_shares_the_records():
    cat = catalog_with("a")
    cat.extra["x"] = 1
    cp = copy_catalog(cat)
    for f in fields(Catalog):
        value = getattr(cat, f.name)
        if isinstance(value, (dict, list)):
            assert getattr(cp, f.name) is not value and getattr(cp, f.name) == value, f.name
    tkey = only_key(cat.tables)
    cp.tables.clear()
    cp.unsupported.clear()
    cp.extra["y"] = 2
    cp.schemas["z"] = Schema("z")
    assert tkey in cat.tables and cat.unsupported and "y" not in cat.extra and len(cat.schemas) == 1
    assert copy_catalog(cat).tables[tkey] is cat.tables[tkey]


DOC = {
    "server_version": 150004,
    "schemas": [{"name": "app", "comment": None}],
    "extensions": [{"name": "hstore", "schema": "app", "version": "1.8"}],
    "available_extensions": [{"name": "hstore", "version": "1.8"}],
    "enums": [{"schema": "app", "name": "mood", "labels": None, "comment": None}],
    "sequences": [
        {"schema": "app", "name": "t_id_seq", "data_type": "bigint", "start": 1, "increment": 1, "min_value": 1,
         "max_value": 9223372036854775807, "cache": 1, "cycle": False, "owned_table": "t", "owned_column": "id",
         "owner_deptype": "i", "comment": None}],
    "tables": [{
        "schema": "app", "name": "t", "kind": "r", "persistence": "p", "comment": None, "rls_enabled": False,
        "rls_forced": False, "estimated_rows": 0, "partition_key": None, "partition_bound": None,
        "partition_of": None, "inherits": [],
        "columns": [{"name": "id", "type": "bigint", "not_null": True, "default": None, "collation": None,
                     "coll_dep": None, "identity": "d", "generated": "", "comment": None, "position": 1,
                     "local": True, "type_deps": None, "seq_deps": None, "func_deps": None,
                     "volatile_default": False},
                    {"name": "m", "type": "app.mood", "not_null": False, "default": "app.f()",
                     "collation": None, "coll_dep": None, "identity": "", "generated": "", "comment": None,
                     "position": 2, "local": True, "type_deps": ["app.mood"], "seq_deps": None,
                     "func_deps": ["app.f"], "volatile_default": True}]}],
    "constraints": [{"schema": "app", "table": "t", "name": "t_pkey", "kind": "p",
                     "definition": "PRIMARY KEY (id)", "validated": True, "columns": ["id"], "ref_table": None,
                     "index": "t_pkey", "index_definition": "CREATE UNIQUE INDEX t_pkey ON app.t USING btree (id)",
                     "comment": None, "local": True, "inhcount": 0}],
    "functions": [{"schema": "app", "name": "f", "identity_args": "", "kind": "f", "definition": "CREATE ...",
                   "result": "app.mood", "arg_names": [], "n_defaults": 0, "comment": None}],
    "session": [{"current_user": "alice"}],
    "depends": [{"object": "function:app.f()", "uses": ["type:app.mood"]}],
    "unsupported": [{"kind": "cast", "identity": "integer AS app.mood"}],
}


def test_parse_from_text_and_from_dict_agree():
    from_text = parse_catalog(json.dumps(DOC))
    from_dict = parse_catalog(DOC)
    assert from_text == from_dict
    t = from_text.tables[only_key(from_text.tables)]
    assert t.columns["id"].identity_sequence is not None and from_text.sequences == {}
    assert t.columns["m"].volatile_default and not t.columns["id"].volatile_default
    assert t.columns["m"].depends_on == ("function:app.f", "type:app.mood")
    assert t.constraints["t_pkey"].columns == ("id",)
    assert from_text.enums[only_key(from_text.enums)].labels == ()
    assert from_text.functions["function:app.f()"].depends_on == ("type:app.mood",)
    assert from_text.current_user == "alice" and from_text.available_extensions == {"hstore": "1.8"}
    assert from_text.unsupported == [Unsupported("cast", "integer AS app.mood")]
    assert parse_catalog(bytes(json.dumps(DOC), "utf-8")) == from_text


def test_record_of_makes_the_same_frozen_record_as_init():
    from dataclasses import FrozenInstanceError, asdict

    from pgconverge.catalog.model import record_of

    col = Column("id", "integer", not_null=True, default="nextval('s'::regclass)", position=1,
                 depends_on=("sequence:public.s",), volatile_default=True)
    fast = record_of(Column, **asdict(col) | {"identity_sequence": None})
    assert fast == col and hash(fast.depends_on) == hash(col.depends_on) and type(fast) is Column
    with pytest.raises(FrozenInstanceError):
        fast.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        record_of(Column, name="id", type="integer")  # a field left out would be missing, not defaulted
    with pytest.raises(TypeError):
        record_of(Column, **asdict(col), colour="red")


def test_catalog_hash_does_not_depend_on_the_dict_keys():
    cat = catalog_with("a", "b")
    by_id = copy_catalog(cat)
    for kind in CATALOG_KINDS:
        if kind.key_of is not None:
            setattr(by_id, kind.attr, {r.id: r for r in getattr(cat, kind.attr).values()})
    assert by_id.tables.keys() == {"table:a.t", "table:b.t"}
    assert catalog_hash(by_id) == catalog_hash(cat)


def test_catalog_hash_hashes_the_bytes_of_the_whole_plain_document():
    # hashes recorded in ledgers and sign-offs keep their values: the record-at-a-time hash must
    # feed exactly the bytes of the one json.dumps of the whole document it replaced
    import hashlib

    from pgconverge.catalog.kinds import NOT_HASHED, _hash_name
    from pgconverge.catalog.model import to_plain

    cat = catalog_with("a")
    cat.extra["note"] = {"b": [1, "é"], "a": None}
    whole = {k.attr: {_hash_name(k.key_of(r)): to_plain(r, NOT_HASHED | k.unhashed) for r in getattr(cat, k.attr).values()}
             for k in CATALOG_KINDS if k.hashed}
    whole["extra"] = to_plain(cat.extra, NOT_HASHED)
    expected = hashlib.sha256(json.dumps(whole, sort_keys=True, default=str).encode()).hexdigest()
    assert catalog_hash(cat) == expected
