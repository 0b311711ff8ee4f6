"""The ledger: what pgconverge did to a database, kept in that database.

It lives in the schema ``pgconverge``, which introspection never manages. One row
per run in ``pgconverge.runs``; one row per one-time data block that ran in
``pgconverge.data_blocks`` (its hash makes an edited block detectable). No secret
is ever written here: connection details are recorded by their printable name only.
"""

from __future__ import annotations

from .introspect import LEDGER_SCHEMA
from .planner import q

RUNS = q(LEDGER_SCHEMA, "runs")
DATA_BLOCKS = q(LEDGER_SCHEMA, "data_blocks")

# Idempotent; safe to run at the start of every apply script.
ENSURE_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {q(LEDGER_SCHEMA)};
CREATE TABLE IF NOT EXISTS {RUNS} (
    id bigserial PRIMARY KEY,
    environment text NOT NULL,
    actor text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    source_hash text,
    desired_hash text,
    before_hash text,
    after_hash text,
    plan_hash text,
    plan jsonb,
    backup jsonb,
    smoke jsonb,
    outcome text NOT NULL,
    message text
);
CREATE TABLE IF NOT EXISTS {DATA_BLOCKS} (
    name text PRIMARY KEY,
    sha256 text NOT NULL,
    ran_at timestamptz NOT NULL DEFAULT now(),
    actor text
);
"""
