"""Fast unit tests of the DDL text edits (PostgreSQL's lexer through pglast)."""

from __future__ import annotations

from pgconverge.catalog.model import Constraint, Index, Table
from pgconverge.planning.ddl import (concurrently, rename_table_record, swap_ident, swap_references, swap_regclass,
                                     with_index_name)


def test_concurrently():
    assert concurrently("CREATE INDEX i ON public.t USING btree (a)") == (
        "CREATE INDEX CONCURRENTLY i ON public.t USING btree (a)")
    assert concurrently("CREATE UNIQUE INDEX i ON public.t USING btree (a)") == (
        "CREATE UNIQUE INDEX CONCURRENTLY i ON public.t USING btree (a)")
    done = "CREATE INDEX CONCURRENTLY i ON public.t USING btree (a)"
    assert concurrently(done) == done
    # the word INDEX in a predicate's literal is no keyword
    assert concurrently("CREATE INDEX \"index\" ON public.t USING btree (a) WHERE (b = 'INDEX'::text)") == (
        "CREATE INDEX CONCURRENTLY \"index\" ON public.t USING btree (a) WHERE (b = 'INDEX'::text)")


def test_with_index_name():
    d = "CREATE UNIQUE INDEX t_a_key ON public.t USING btree (a)"
    assert with_index_name(d, "t_a_key", "New") == 'CREATE UNIQUE INDEX "New" ON public.t USING btree (a)'
    assert with_index_name(d, "other", "x") == d  # not its name: unchanged
    assert with_index_name(d, "t_a_key", "t_a_key") == d


def test_swap_ident_leaves_literals_and_qualified_names():
    text = "CREATE INDEX i ON public.t USING btree (a) WHERE (a <> 'a'::text AND x.a > 0)"
    assert swap_ident(text, "a", "b") == "CREATE INDEX i ON public.t USING btree (b) WHERE (b <> 'a'::text AND x.a > 0)"
    assert swap_ident('CHECK (("Mixed" > 0))', "Mixed", "plain") == "CHECK ((plain > 0))"
    assert swap_ident("CHECK ((x > 0)) -- x", "y", "z") == "CHECK ((x > 0)) -- x"
    assert swap_ident("CHECK ((\"select\" > 0))", "select", "s") == "CHECK ((s > 0))"


def test_swap_references():
    fk = "FOREIGN KEY (u) REFERENCES public.users(id) ON DELETE CASCADE"
    assert swap_references(fk, "public", "users", "people") == (
        "FOREIGN KEY (u) REFERENCES public.people(id) ON DELETE CASCADE")
    assert swap_references(fk, "public", "users", "users", "id", "uid") == (
        "FOREIGN KEY (u) REFERENCES public.users(uid) ON DELETE CASCADE")
    assert swap_references(fk, "public", "other", "x") == fk
    assert swap_references("CHECK ((a > 0))", "public", "users", "x") == "CHECK ((a > 0))"


def test_swap_regclass():
    assert swap_regclass("nextval('public.t_id_seq'::regclass)", "public", "t_id_seq", "u_id_seq") == (
        "nextval('public.u_id_seq'::regclass)")


def test_rename_table_record_edits_its_index_definitions():
    t = Table("public", "t", indexes={"i": Index("public", "i", "t", "CREATE INDEX i ON ONLY public.t USING btree (t)")},
              constraints={"t_pkey": Constraint("t_pkey", "p", "PRIMARY KEY (id)",
                                                index_definition="CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)")})
    r = rename_table_record(t, "u")
    assert r.name == "u" and r.indexes["i"].table == "u"
    assert r.indexes["i"].definition == "CREATE INDEX i ON ONLY public.u USING btree (t)"  # the column t stays
    assert r.constraints["t_pkey"].index_definition == "CREATE UNIQUE INDEX t_pkey ON public.u USING btree (id)"
