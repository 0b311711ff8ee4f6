"""Integration tests of the type-like kinds and of partitioning and inheritance, against the
embedded PostgreSQL: for each kind, create, change, drop, an empty second plan, and the order
the dependency graph gives; and a kind that is still unhandled failing loudly."""

from __future__ import annotations

import psycopg
import pytest

import pgconverge
from pgconverge.planning.hazards import HazardRefused
from pgconverge.errors import PlanError, UnsupportedError
from pgconverge.proof import NotProved
from pgconverge.source import SourceError

ALL = dict(allow_hazards="all", drops=["*"])


def sqls(plan) -> list[str]:
    return [s.sql for s in plan.steps]


def hazards(plan) -> set[str]:
    return {h.name for s in plan.steps for h in s.hazards}


def one(conn, query: str, *args):
    row = conn.execute(query, args or None).fetchone()
    return row[0] if row and len(row) == 1 else row


def index_of(plan, fragment: str) -> int:
    found = [i for i, s in enumerate(plan.steps) if fragment in s.sql]
    assert found, f"no step contains {fragment!r}:\n{plan.to_sql()}"
    return found[0]


# --------------------------------------------------------------------------- collations


def test_collation_create_use_change_drop(converge, db, conn):
    v1 = """CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
            CREATE TABLE t (name text COLLATE nocase);"""
    plan = converge(db, v1)
    assert index_of(plan, "CREATE COLLATION") < index_of(plan, "CREATE TABLE")
    assert one(conn, "SELECT collisdeterministic FROM pg_collation WHERE collname = 'nocase'") is False
    conn.execute("INSERT INTO t VALUES ('Abc')")
    assert one(conn, "SELECT count(*) FROM t WHERE name = 'ABC'") == 1

    # the column moves to a new collation; the old one goes only after the column left it
    v2 = """CREATE COLLATION numeric (provider = icu, locale = 'en-u-kn-true');
            CREATE TABLE t (name text COLLATE numeric);"""
    plan = converge(db, v2)
    assert index_of(plan, "CREATE COLLATION") < index_of(plan, "ALTER COLUMN") < index_of(plan, "DROP COLLATION")
    assert "deletes_data" in hazards(plan)  # a drop of something sql/ no longer defines is gated
    assert one(conn, "SELECT count(*) FROM pg_collation WHERE collname = 'nocase'") == 0
    assert one(conn, "SELECT collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
                     "WHERE attrelid = 't'::regclass AND attname = 'name'") == "numeric"

    # an unused collation whose definition changes is created again
    v3 = v2 + "CREATE COLLATION spare (provider = icu, locale = 'de');"
    converge(db, v3)
    plan = converge(db, v2 + "CREATE COLLATION spare (provider = icu, locale = 'fr');")
    assert index_of(plan, "DROP COLLATION") < index_of(plan, "CREATE COLLATION")
    assert one(conn, "SELECT colliculocale FROM pg_collation WHERE collname = 'spare'") == "fr"


def test_collation_change_while_used_is_unsupported(converge, db, conn):
    converge(db, "CREATE COLLATION c1 (provider = icu, locale = 'de'); CREATE TABLE t (a text COLLATE c1);")
    with pytest.raises(UnsupportedError, match=r"unsupported: collation change public\.c1"):
        pgconverge.plan(db, "CREATE COLLATION c1 (provider = icu, locale = 'fr'); CREATE TABLE t (a text COLLATE c1);",
                        **ALL)
    assert one(conn, "SELECT colliculocale FROM pg_collation WHERE collname = 'c1'") == "de"


# --------------------------------------------------------------------------- domains


def test_domain_create_change_drop(converge, db, conn):
    v1 = """CREATE DOMAIN positive AS integer DEFAULT 1 CONSTRAINT positive_check CHECK (VALUE > 0);
            CREATE DOMAIN small_positive AS positive CONSTRAINT small CHECK (VALUE < 1000);
            CREATE TABLE t (id int, n small_positive);"""
    plan = converge(db, v1)
    assert index_of(plan, "CREATE DOMAIN \"public\".\"positive\"") < index_of(plan, "\"small_positive\"") \
        < index_of(plan, "CREATE TABLE")
    conn.execute("INSERT INTO t (id) VALUES (1)")
    assert one(conn, "SELECT n FROM t") == 1

    # default, NOT NULL and constraints change in place
    v2 = """CREATE DOMAIN positive AS integer DEFAULT 5 NOT NULL CONSTRAINT strictly CHECK (VALUE >= 1);
            CREATE DOMAIN small_positive AS positive CONSTRAINT small CHECK (VALUE < 100);
            CREATE TABLE t (id int, n small_positive);"""
    plan = converge(db, v2)
    text = plan.to_sql()
    assert "ALTER DOMAIN \"public\".\"positive\" SET DEFAULT 5" in text
    assert "ALTER DOMAIN \"public\".\"positive\" SET NOT NULL" in text
    assert "DROP CONSTRAINT \"positive_check\"" in text
    assert "ADD CONSTRAINT \"strictly\" CHECK ((VALUE >= 1)) NOT VALID" in text
    assert "VALIDATE CONSTRAINT \"strictly\"" in text
    assert "may_fail_on_existing_data" in hazards(plan)
    assert one(conn, "SELECT typnotnull FROM pg_type WHERE typname = 'positive'") is True
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO t VALUES (2, 500)")

    plan = converge(db, """CREATE DOMAIN positive AS integer;
                           CREATE DOMAIN small_positive AS positive CONSTRAINT small CHECK (VALUE < 100);
                           CREATE TABLE t (id int, n small_positive);""")
    assert "DROP DEFAULT" in plan.to_sql() and "DROP NOT NULL" in plan.to_sql()

    # the column leaves the domains before they are dropped, the inner one last
    plan = converge(db, "CREATE TABLE t (id int, n integer);")
    assert index_of(plan, "ALTER COLUMN \"n\" TYPE integer") < index_of(plan, "DROP DOMAIN \"public\".\"small_positive\"") \
        < index_of(plan, "DROP DOMAIN \"public\".\"positive\"")
    assert one(conn, "SELECT count(*) FROM pg_type WHERE typtype = 'd' AND typnamespace = 'public'::regnamespace") == 0
    assert one(conn, "SELECT n FROM t") == 1


def test_domain_base_type_change(converge, db, conn):
    converge(db, "CREATE DOMAIN code AS varchar(5);")
    plan = converge(db, "CREATE DOMAIN code AS varchar(10);")  # unused: created again
    assert index_of(plan, "DROP DOMAIN") < index_of(plan, "CREATE DOMAIN")
    converge(db, "CREATE DOMAIN code AS varchar(10); CREATE TABLE t (c code);")
    with pytest.raises(UnsupportedError, match=r"domain change public\.code"):
        pgconverge.plan(db, "CREATE DOMAIN code AS text; CREATE TABLE t (c code);", **ALL)


# --------------------------------------------------------------------------- composite types


def test_composite_type_create_alter_drop(converge, db, conn):
    v1 = """CREATE TYPE address AS (street text, city text);
            CREATE TABLE person (id int, home address);"""
    plan = converge(db, v1)
    assert index_of(plan, "CREATE TYPE") < index_of(plan, "CREATE TABLE")
    conn.execute("INSERT INTO person VALUES (1, ROW('Main St', 'Oslo'))")

    v2 = """CREATE TYPE address AS (street text, zip varchar(10));
            CREATE TABLE person (id int, home address);"""
    plan = converge(db, v2)
    text = plan.to_sql()
    assert 'DROP ATTRIBUTE "city"' in text and 'ADD ATTRIBUTE "zip" character varying(10)' in text
    assert "deletes_data" in hazards(plan)  # the city values stored in person.home go
    assert one(conn, "SELECT (home).street FROM person") == "Main St"

    # an unused type may change an attribute's type, or be recreated to reorder
    converge(db, v2 + "CREATE TYPE pair AS (a int, b int);")
    plan = converge(db, v2 + "CREATE TYPE pair AS (a bigint, b int);")
    assert 'ALTER ATTRIBUTE "a" TYPE bigint' in plan.to_sql()
    plan = converge(db, v2 + "CREATE TYPE pair AS (b int, a bigint);")
    assert index_of(plan, 'DROP TYPE "public"."pair"') < index_of(plan, 'CREATE TYPE "public"."pair"')
    assert one(conn, "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute "
                     "WHERE attrelid = 'pair'::regclass") == "b,a"

    # retyping an attribute of a type in use cannot be done: loud
    with pytest.raises(UnsupportedError, match=r"composite type change public\.address"):
        pgconverge.plan(db, """CREATE TYPE address AS (street varchar(3), zip varchar(10));
                               CREATE TABLE person (id int, home address);""", **ALL)

    plan = converge(db, "CREATE TABLE person (id int);")
    assert index_of(plan, 'DROP COLUMN "home"') < index_of(plan, 'DROP TYPE "public"."address"')
    assert one(conn, "SELECT count(*) FROM pg_type WHERE typname IN ('address', 'pair')") == 0


# --------------------------------------------------------------------------- range types


def test_range_type_create_change_drop(converge, db, conn):
    plan = converge(db, """CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
                           CREATE TABLE t (r floatrange);""")
    assert index_of(plan, "AS RANGE") < index_of(plan, "CREATE TABLE")
    conn.execute("INSERT INTO t VALUES ('[1.5,2.5)')")
    assert one(conn, "SELECT typname FROM pg_type WHERE typtype = 'm' AND typnamespace = 'public'::regnamespace") \
        == "floatmultirange"
    with pytest.raises(UnsupportedError, match=r"range type change public\.floatrange"):
        pgconverge.plan(db, "CREATE TYPE floatrange AS RANGE (subtype = float8); CREATE TABLE t (r floatrange);",
                        **ALL)
    plan = converge(db, "CREATE TABLE t (r text); CREATE TYPE floatrange AS RANGE (subtype = float8);")
    assert index_of(plan, "ALTER COLUMN \"r\" TYPE text") < index_of(plan, "DROP TYPE") \
        < index_of(plan, "AS RANGE")
    assert one(conn, "SELECT rngsubdiff FROM pg_range JOIN pg_type ON oid = rngtypid WHERE typname = 'floatrange'") \
        == "-"
    converge(db, "CREATE TABLE t (r text);")
    assert one(conn, "SELECT count(*) FROM pg_range JOIN pg_type ON oid = rngtypid WHERE typname = 'floatrange'") == 0


# --------------------------------------------------------------------------- enums


def test_enum_value_removed_through_a_new_type(converge, db, conn):
    v1 = """CREATE TYPE status AS ENUM ('new', 'open', 'stale', 'closed');
            CREATE TABLE ticket (id int, s status DEFAULT 'new', history status[]);"""
    converge(db, v1)
    conn.execute("INSERT INTO ticket VALUES (1, 'open', '{new,open}'), (2, 'closed', '{closed}')")
    v2 = """CREATE TYPE status AS ENUM ('new', 'open', 'closed');
            CREATE TABLE ticket (id int, s status DEFAULT 'new', history status[]);"""
    refused = pgconverge.plan(db, v2)
    with pytest.raises(HazardRefused, match="loses value"):
        pgconverge.apply(db, refused)
    plan = converge(db, v2)
    assert index_of(plan, "CREATE TYPE \"public\".\"status__pgc_new\"") < index_of(plan, "DROP DEFAULT") \
        < index_of(plan, "USING \"s\"::text") < index_of(plan, "DROP TYPE") < index_of(plan, "RENAME TO") \
        < index_of(plan, "SET DEFAULT")
    assert "USING \"history\"::text[]::\"public\".\"status__pgc_new\"[]" in plan.to_sql()
    assert one(conn, "SELECT enum_range(NULL::status)::text") == "{new,open,closed}"
    assert conn.execute("SELECT id, s::text, history::text FROM ticket ORDER BY id").fetchall() == [
        (1, "open", "{new,open}"), (2, "closed", "{closed}")]
    assert one(conn, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'ticket'::regclass") \
        == "'new'::status"


def test_enum_value_removal_fails_on_rows_holding_it_and_changes_nothing(converge, db, conn):
    converge(db, "CREATE TYPE color AS ENUM ('red', 'green', 'blue'); CREATE TABLE t (c color);")
    conn.execute("INSERT INTO t VALUES ('green')")
    with pytest.raises(Exception, match="green"):
        pgconverge.apply(db, "CREATE TYPE color AS ENUM ('red', 'blue'); CREATE TABLE t (c color);", **ALL)
    assert one(conn, "SELECT enum_range(NULL::color)::text") == "{red,green,blue}"
    assert one(conn, "SELECT count(*) FROM pg_type WHERE typname LIKE 'color%'") == 1
    assert one(conn, "SELECT c::text FROM t") == "green"


def test_enum_value_removal_recreates_the_views_that_use_it(converge, db, conn):
    views = """CREATE VIEW v AS SELECT * FROM t; CREATE VIEW v2 AS SELECT *, 'b'::e AS x FROM t;"""
    converge(db, "CREATE TYPE e AS ENUM ('a', 'b', 'c'); CREATE TABLE t (id int, c e DEFAULT 'a');" + views)
    conn.execute("INSERT INTO t VALUES (1, 'b')")
    plan = converge(db, "CREATE TYPE e AS ENUM ('a', 'b'); CREATE TABLE t (id int, c e DEFAULT 'a');" + views)
    assert index_of(plan, 'DROP VIEW "public"."v2"') < index_of(plan, "USING \"c\"::text") \
        < index_of(plan, 'DROP TYPE "public"."e"') < index_of(plan, 'CREATE VIEW "public"."v2"')
    assert conn.execute("SELECT id, c::text, x::text FROM v2").fetchall() == [(1, "b", "b")]


def test_enum_reorder_keeps_data(converge, db, conn):
    converge(db, "CREATE TYPE size AS ENUM ('small', 'large', 'medium'); CREATE TABLE t (s size);")
    conn.execute("INSERT INTO t VALUES ('medium'), ('large')")
    plan = converge(db, "CREATE TYPE size AS ENUM ('small', 'medium', 'large'); CREATE TABLE t (s size);")
    assert "deletes_data" not in hazards(plan)
    assert conn.execute("SELECT t.s::text AS label FROM t ORDER BY t.s").fetchall() == [("medium",), ("large",)]


# --------------------------------------------------------------------------- partitioning


PARENT = """CREATE TABLE m (id int NOT NULL, day date NOT NULL, v int) PARTITION BY RANGE (day);
            CREATE INDEX m_day ON m (day);"""
P1 = "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
P2 = "CREATE TABLE m_2025 PARTITION OF m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
PDEF = "CREATE TABLE m_other PARTITION OF m DEFAULT;"


def test_partitioned_table_partitions_and_partitioned_index(converge, db, conn):
    plan = converge(db, [PARENT, P1, PDEF])
    assert index_of(plan, "PARTITION BY RANGE") < index_of(plan, "PARTITION OF") 
    # the per-partition indexes come with the parent's: never planned one by one
    assert [s for s in plan.steps if s.kind == "create_index"] == [plan.steps[index_of(plan, "m_day")]]
    assert "ON ONLY" not in plan.to_sql()
    assert one(conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'm_day'::regclass") == 2
    conn.execute("INSERT INTO m VALUES (1, '2024-05-01', 1), (2, '2030-01-01', 2)")

    # a new partition while a default partition exists: the default one is scanned
    plan = converge(db, [PARENT, P1, P2, PDEF])
    assert sqls(plan) == ['CREATE TABLE "public"."m_2025" PARTITION OF "public"."m" '
                          "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"]
    assert "may_fail_on_existing_data" in hazards(plan)

    # a partition leaves (DETACH): it stays as a table with its rows and its own index
    standalone = "CREATE TABLE m_2024 (id int NOT NULL, day date NOT NULL, v int); CREATE INDEX m_2024_day_idx ON m_2024 (day);"
    plan = converge(db, [PARENT, standalone, P2, PDEF])
    assert sqls(plan) == ['ALTER TABLE "public"."m" DETACH PARTITION "public"."m_2024"']
    assert one(conn, "SELECT count(*) FROM m_2024") == 1 and one(conn, "SELECT count(*) FROM m") == 1

    # and comes back (ATTACH); a changed bound is DETACH then ATTACH
    converge(db, [PARENT, P1, P2, PDEF])
    assert one(conn, "SELECT count(*) FROM m") == 2
    wider = "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2023-01-01') TO ('2025-01-01');"
    plan = converge(db, [PARENT, wider, P2, PDEF])
    # checked against the new bound while still attached (SHARE UPDATE EXCLUSIVE), so that DETACH
    # and ATTACH follow each other in one transaction and ATTACH scans nothing of it
    assert [s.kind for s in plan.steps] == ["add_constraint", "validate", "detach", "attach", "alter_table"]
    assert "FOR VALUES FROM ('2023-01-01') TO ('2025-01-01')" in plan.steps[3].sql
    assert plan.steps[2].transactional and plan.steps[3].transactional
    assert one(conn, "SELECT count(*) FROM m") == 2

    # drop a partition and the default one; the parent's index stays
    plan = converge(db, [PARENT, wider])
    assert {s.sql for s in plan.steps} == {'DROP TABLE "public"."m_2025"', 'DROP TABLE "public"."m_other"'}
    converge(db, "CREATE TABLE keep (id int);")
    assert one(conn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'm%'") == 0


def test_parent_gains_a_column_after_a_partition_leaves(converge, db, conn):
    converge(db, [PARENT, P1, P2])
    wide = PARENT.replace("v int)", "v int, extra text)")
    standalone = "CREATE TABLE m_2025 (id int NOT NULL, day date NOT NULL, v int); CREATE INDEX ON m_2025 (day);"
    plan = converge(db, [wide, P1, standalone])
    assert index_of(plan, "DETACH PARTITION") < index_of(plan, "ADD COLUMN \"extra\"")
    assert one(conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'm_2025'::regclass AND attname = 'extra'") \
        == 0
    assert one(conn, "SELECT attislocal FROM pg_attribute WHERE attrelid = 'm_2024'::regclass "
                     "AND attname = 'extra'") is False


def test_existing_table_attached_as_partition(converge, db, conn):
    converge(db, [PARENT, "CREATE TABLE m_2024 (id int NOT NULL, day date, v int, junk int);"])
    conn.execute("INSERT INTO m_2024 VALUES (1, '2024-03-03', 1, 9)")
    plan = converge(db, [PARENT, P1])
    # the table gets the parent's shape first: junk goes, day becomes NOT NULL
    assert index_of(plan, 'DROP COLUMN "junk"') < index_of(plan, "ATTACH PARTITION")
    assert index_of(plan, 'SET NOT NULL') < index_of(plan, "ATTACH PARTITION")
    # online: the bound is proved by a validated CHECK first, so ATTACH scans nothing under ACCESS EXCLUSIVE
    assert "may_fail_on_existing_data" in hazards(plan) and "blocks_reads_writes" not in hazards(plan)
    assert index_of(plan, 'VALIDATE CONSTRAINT "pgconverge_partition_bound"') < index_of(plan, "ATTACH PARTITION") \
        < index_of(plan, 'DROP CONSTRAINT "pgconverge_partition_bound"')
    assert one(conn, "SELECT count(*) FROM m") == 1
    assert one(conn, "SELECT bool_and(NOT attislocal) FROM pg_attribute WHERE attrelid = 'm_2024'::regclass "
                     "AND attnum > 0 AND NOT attisdropped") is True


def test_partitioning_change_recreates_only_when_allowed(converge, db, conn):
    converge(db, ["CREATE TABLE events (id int, at date);",
                  "CREATE TABLE notes (id int PRIMARY KEY, body text);",
                  "CREATE TABLE refs (note int REFERENCES notes);"])
    conn.execute("INSERT INTO events VALUES (1, '2024-01-01')")
    to_partitioned = ["CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);",
                      "CREATE TABLE notes (id int PRIMARY KEY, body text) PARTITION BY HASH (id);",
                      "CREATE TABLE notes_0 PARTITION OF notes FOR VALUES WITH (MODULUS 1, REMAINDER 0);",
                      "CREATE TABLE refs (note int REFERENCES notes);"]
    plan = pgconverge.plan(db, to_partitioned, allow_hazards="all")
    refused = [h for s in plan.steps for h in s.hazards if h.name == "deletes_data"]
    assert {h.object for h in refused} == {"table:public.events", "table:public.notes"}
    assert "cannot become partitioned in place" in refused[0].reason
    with pytest.raises(HazardRefused, match="not named for deletion"):
        pgconverge.apply(db, plan, allow_hazards="all")
    assert one(conn, "SELECT relkind FROM pg_class WHERE relname = 'events'") == "r"

    plan = converge(db, to_partitioned)
    # the foreign key pointing at notes is dropped first and added again afterwards
    assert index_of(plan, 'DROP CONSTRAINT "refs_note_fkey"') < index_of(plan, 'DROP TABLE "public"."notes"') \
        < index_of(plan, 'CREATE TABLE "public"."notes"') < index_of(plan, 'ADD CONSTRAINT "refs_note_fkey"')
    assert one(conn, "SELECT relkind FROM pg_class WHERE relname = 'events'") == "p"

    # a new partition key: the partitions are detached, kept, and attached to the new parent
    conn.execute("INSERT INTO notes VALUES (7, 'x')")
    by_range = [to_partitioned[0],
                "CREATE TABLE notes (id int PRIMARY KEY, body text) PARTITION BY RANGE (id);",
                "CREATE TABLE notes_0 PARTITION OF notes FOR VALUES FROM (0) TO (100);",
                to_partitioned[3]]
    plan = converge(db, by_range)
    assert index_of(plan, "DETACH PARTITION") < index_of(plan, 'DROP TABLE "public"."notes"') \
        < index_of(plan, 'CREATE TABLE "public"."notes"') < index_of(plan, "ATTACH PARTITION")
    assert one(conn, "SELECT body FROM notes WHERE id = 7") == "x"


# --------------------------------------------------------------------------- inheritance


def test_inheritance_children_and_their_columns(converge, db, conn):
    v1 = ["CREATE TABLE base (id bigserial, created timestamptz DEFAULT now(), CONSTRAINT pos CHECK (id > 0));",
          "CREATE TABLE child (extra text) INHERITS (base);"]
    plan = converge(db, v1)
    assert index_of(plan, 'CREATE TABLE "public"."base"') < index_of(plan, 'CREATE TABLE "public"."child"')
    child_sql = plan.steps[index_of(plan, 'CREATE TABLE "public"."child"')].sql
    assert '"extra" text' in child_sql and '"created"' not in child_sql and '"pos"' not in child_sql
    conn.execute("INSERT INTO child (extra) VALUES ('a')")

    # the parent gains a column (it recurses) and drops one the child keeps as its own (ONLY)
    v2 = ["CREATE TABLE base (id bigserial, note text, CONSTRAINT pos CHECK (id > 0));",
          "CREATE TABLE child (extra text, created timestamptz DEFAULT now()) INHERITS (base);"]
    plan = converge(db, v2)
    assert 'ALTER TABLE ONLY "public"."base" DROP COLUMN "created"' in sqls(plan)
    assert not any('"child"' in s for s in sqls(plan))
    assert one(conn, "SELECT created IS NOT NULL FROM child") is True

    # the child leaves its parent (NO INHERIT), keeping the columns it had
    alone = ["CREATE TABLE base (id bigserial, note text, CONSTRAINT pos CHECK (id > 0));",
             "CREATE TABLE child (id bigint DEFAULT nextval('base_id_seq') NOT NULL, note text, extra text, "
             "created timestamptz DEFAULT now(), CONSTRAINT pos CHECK (id > 0));"]
    plan = converge(db, alone)
    assert sqls(plan) == ['ALTER TABLE "public"."child" NO INHERIT "public"."base"']
    assert one(conn, "SELECT count(*) FROM base") == 0 and one(conn, "SELECT count(*) FROM child") == 1

    # and joins it again (INHERIT): its columns stay its own (attislocal), which a child created with
    # INHERITS would not have, so the planner refuses sql/ that declares them inherited only, before
    # the proof, naming what to declare in the child...
    with pytest.raises(PlanError, match=r"table public\.child exists and is declared INHERITS \(public\.base\).*"
                       r"Declare column\(s\) id, note and constraint\(s\) pos in CREATE TABLE public\.child") as e:
        pgconverge.plan(db, v2, **ALL)
    assert not isinstance(e.value, NotProved)
    # ...and converges sql/ that declares them in the child as well, as PostgreSQL will keep them
    joined = ["CREATE TABLE base (id bigserial, note text, CONSTRAINT pos CHECK (id > 0));",
              "CREATE TABLE child (id bigint DEFAULT nextval('base_id_seq') NOT NULL, note text, extra text, "
              "created timestamptz DEFAULT now(), CONSTRAINT pos CHECK (id > 0)) INHERITS (base);"]
    plan = converge(db, joined)
    assert sqls(plan) == ['ALTER TABLE "public"."child" INHERIT "public"."base"']
    assert one(conn, "SELECT count(*) FROM base") == 1

    # dropping the parent and a child together: the child goes first
    plan = converge(db, "CREATE TABLE other (id int);")
    assert index_of(plan, 'DROP TABLE "public"."child"') < index_of(plan, 'DROP TABLE "public"."base"')


def test_parent_column_rename_reaches_the_children(converge, db, conn):
    converge(db, ["CREATE TABLE base (id int, old_name text);", "CREATE TABLE child () INHERITS (base);",
                  "CREATE TABLE p (id int, old_name text) PARTITION BY LIST (id);",
                  "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);"])
    conn.execute("INSERT INTO child VALUES (1, 'kept'); INSERT INTO p VALUES (1, 'kept')")
    plan = converge(db, ["CREATE TABLE base (\n id int,\n new_name text -- @renamed-from old_name\n);",
                         "CREATE TABLE child () INHERITS (base);",
                         "CREATE TABLE p (\n id int,\n new_name text -- @renamed-from old_name\n) PARTITION BY LIST (id);",
                         "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);"])
    assert [s.kind for s in plan.steps] == ["rename", "rename"]
    assert one(conn, "SELECT new_name FROM child") == "kept" and one(conn, "SELECT new_name FROM p1") == "kept"


def test_new_child_joins_with_the_parents_check_constraints(converge, db, conn):
    converge(db, ["CREATE TABLE base (id int NOT NULL, CONSTRAINT pos CHECK (id > 0));",
                  "CREATE TABLE child (id int, x int);"])
    # the child's own id stays its own (attislocal): declared inherited only, pg_dump would differ,
    # so the planner refuses it before the proof and says what to declare
    with pytest.raises(PlanError, match=r"Declare column\(s\) id and constraint\(s\) pos in CREATE TABLE "
                       r"public\.child") as e:
        pgconverge.plan(db, ["CREATE TABLE base (id int NOT NULL, CONSTRAINT pos CHECK (id > 0));",
                             "CREATE TABLE child (x int) INHERITS (base);"], **ALL)
    assert not isinstance(e.value, NotProved)
    plan = converge(db, ["CREATE TABLE base (id int NOT NULL, CONSTRAINT pos CHECK (id > 0));",
                         "CREATE TABLE child (id int NOT NULL, x int, CONSTRAINT pos CHECK (id > 0)) INHERITS (base);"])
    assert index_of(plan, 'ADD CONSTRAINT "pos"') < index_of(plan, "INHERIT")
    assert index_of(plan, "SET NOT NULL") < index_of(plan, "INHERIT")
    assert one(conn, "SELECT count(*) FROM pg_inherits WHERE inhrelid = 'child'::regclass") == 1


# --------------------------------------------------------------------------- source and unsupported kinds


def test_alter_drop_in_the_source_needs_permissive_source(converge, db, conn):
    history = "CREATE TABLE a (x int, y int); ALTER TABLE a DROP COLUMN y;"
    with pytest.raises(SourceError, match="DROP COLUMN"):
        pgconverge.plan(db, history)
    converge(db, history, permissive_source=True)
    assert one(conn, "SELECT string_agg(attname, ',') FROM pg_attribute WHERE attrelid = 'a'::regclass "
                     "AND attnum > 0 AND NOT attisdropped") == "x"


def test_unhandled_kind_in_the_database_fails_loudly_and_changes_nothing(db, conn):
    conn.execute("CREATE FOREIGN DATA WRAPPER dummy_fdw; CREATE SERVER dummy_srv FOREIGN DATA WRAPPER dummy_fdw;"
                 "CREATE FOREIGN TABLE remote_things (id int) SERVER dummy_srv;")
    with pytest.raises(UnsupportedError, match=r"unsupported: foreign (table public\.remote_things|server dummy_srv)"):
        pgconverge.apply(db, "CREATE TABLE t (id int);", **ALL)
    assert one(conn, "SELECT to_regclass('public.t')") is None
    assert one(conn, "SELECT to_regclass('public.remote_things')") == "remote_things"


def test_unhandled_kind_in_the_source_fails_loudly(db, conn):
    with pytest.raises(UnsupportedError, match=r"unsupported: publication everything_pub"):
        pgconverge.plan(db, "CREATE TABLE t (id int); CREATE PUBLICATION everything_pub FOR TABLE t;", **ALL)
    assert one(conn, "SELECT to_regclass('public.t')") is None
