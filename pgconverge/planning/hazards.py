"""Hazard names, and the policy that decides which of them a run may carry.

Each step carries its hazards; each hazard has a one-line reason naming the object.

| hazard | carried by |
|---|---|
| deletes_data | DROP TABLE / COLUMN / SEQUENCE / SCHEMA / TYPE / EXTENSION; a narrowing type change |
| rewrites_table | a type change that rewrites; ADD COLUMN with a volatile default, identity or STORED generated column on an existing table; SET LOGGED / UNLOGGED |
| blocks_reads_writes | a long ACCESS EXCLUSIVE: every rewrite above, a scan under it (narrowing or collation change, SET NOT NULL where the online form is impossible: partitioned tables, PostgreSQL < 12), an exclusion constraint (or a key on a partitioned table) added to an existing table |
| blocks_writes | a SHARE lock for a whole build: CREATE INDEX on an existing partitioned table (no CONCURRENTLY there) |
| index_build | an index built on an existing table (CONCURRENTLY where possible, the reason says so) |
| index_dropped | DROP INDEX of a valid index; dropping a PRIMARY KEY, UNIQUE or EXCLUDE constraint (its index goes with it). Dropping an INVALID index (left by a failed concurrent build) carries none: no query uses it |
| may_fail_on_existing_data | a new UNIQUE, PRIMARY KEY, unique index, NOT NULL, CHECK or FK on an existing table; ADD COLUMN NOT NULL without a default; a type change whose values may not convert |
| renames | a declared rename of a table, column, index or constraint |
| extension_change | CREATE / ALTER / DROP EXTENSION |
| authz_change | grants, privileges and policies |
| drops_object | a view, materialized view, function, procedure or trigger in the database but not in sql/ is dropped: code that calls it breaks (objects dropped only to be created again carry none) |

Brief ACCESS EXCLUSIVE changes that only touch the catalog (ADD CONSTRAINT ... NOT VALID,
USING INDEX, SET NOT NULL over a validated check, a default, a comment, a rename, DROP
CONSTRAINT of a CHECK or FK) carry no hazard of their own: every transactional step waits at
most lock_timeout for its lock and is then rolled back and retried, so it never holds other
sessions in the lock queue for longer than that (see executor.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DELETES_DATA = "deletes_data"
REWRITES_TABLE = "rewrites_table"
BLOCKS_READS_WRITES = "blocks_reads_writes"
BLOCKS_WRITES = "blocks_writes"
INDEX_BUILD = "index_build"
INDEX_DROPPED = "index_dropped"
MAY_FAIL_ON_EXISTING_DATA = "may_fail_on_existing_data"
RENAMES = "renames"
EXTENSION_CHANGE = "extension_change"
AUTHZ_CHANGE = "authz_change"
DROPS_OBJECT = "drops_object"

# what dropping an object carries: allowed for undeclared objects under pgconverge_unmanaged = drop
DROP_HAZARDS = frozenset({DELETES_DATA, DROPS_OBJECT, INDEX_DROPPED, AUTHZ_CHANGE})

ALL_HAZARDS = (
    DELETES_DATA,
    REWRITES_TABLE,
    BLOCKS_READS_WRITES,
    BLOCKS_WRITES,
    INDEX_BUILD,
    INDEX_DROPPED,
    MAY_FAIL_ON_EXISTING_DATA,
    RENAMES,
    EXTENSION_CHANGE,
    AUTHZ_CHANGE,
    DROPS_OBJECT,
)


@dataclass(frozen=True)
class Hazard:
    name: str
    reason: str  # one line that names the object
    object: str = ""  # object id, e.g. "table:public.users"

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


# --------------------------------------------------------------------------- constructors
#
# One constructor per hazard: the kinds call these and never build Hazard(...) themselves.
# A reason is `what` (the object and the change) followed by `how`; each default `how` is the
# standard phrase of that hazard, written here once. The reasons are part of the plan (and of
# its hash), so their wording is kept exactly.

REWRITTEN = "; the table is rewritten under ACCESS EXCLUSIVE"
WAIT_REWRITE = ": reads and writes wait for the rewrite"
WHOLE_SCAN = ": the whole table is scanned under ACCESS EXCLUSIVE"
SCANNED = " is scanned under ACCESS EXCLUSIVE"
CONCURRENT = " (CONCURRENTLY: reads and writes go on)"
DUPLICATES = " fails if existing rows hold duplicates"
SLOWER = "; queries using it slow down"
CLIENTS_BREAK = "; clients using the old name break"


def deletes_data(obj: str, what: str, how: str = " is dropped") -> Hazard:
    return Hazard(DELETES_DATA, what + how, obj)


def rewrites_table(obj: str, what: str, how: str = REWRITTEN) -> Hazard:
    return Hazard(REWRITES_TABLE, what + how, obj)


def blocks_reads_writes(obj: str, what: str, how: str = WAIT_REWRITE) -> Hazard:
    return Hazard(BLOCKS_READS_WRITES, what + how, obj)


def blocks_writes(obj: str, what: str, how: str) -> Hazard:
    return Hazard(BLOCKS_WRITES, what + how, obj)


def index_build(obj: str, what: str, how: str = CONCURRENT) -> Hazard:
    return Hazard(INDEX_BUILD, what + how, obj)


def index_dropped(obj: str, what: str, how: str = SLOWER) -> Hazard:
    return Hazard(INDEX_DROPPED, what + how, obj)


def may_fail(obj: str, what: str, how: str = " fails if existing rows violate it") -> Hazard:
    return Hazard(MAY_FAIL_ON_EXISTING_DATA, what + how, obj)


def renames(obj: str, what: str, new: str, how: str = CLIENTS_BREAK) -> Hazard:
    return Hazard(RENAMES, f"{what} is renamed to {new}{how}", obj)


def extension_change(obj: str, name: str, how: str) -> Hazard:
    return Hazard(EXTENSION_CHANGE, f"extension {name} {how}", obj)


def authz_change(obj: str, what: str, how: str = "") -> Hazard:
    return Hazard(AUTHZ_CHANGE, what + how, obj)


def drops_object(obj: str, what: str) -> Hazard:
    """An object sql/ no longer declares (one dropped only to be created again carries none)."""
    return Hazard(DROPS_OBJECT, f"{what} is not in sql/ and is dropped; code that uses it breaks", obj)


class HazardRefused(Exception):
    """A plan carries hazards the policy does not allow. Nothing was run."""

    def __init__(self, refused: list[Hazard], remedy: str = ""):
        self.refused = refused
        self.remedy = remedy
        lines = "\n".join(f"  - {h.name}: {h.reason}" for h in refused)
        super().__init__(f"refused: {len(refused)} hazard(s) not allowed by the policy; nothing was changed:\n{lines}"
                         + (f"\n{remedy}" if remedy else ""))


def parse_hazard_list(value: str | list[str] | tuple[str, ...] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {i.strip() for i in items if i and i.strip()}
    if "all" in names:
        return frozenset(ALL_HAZARDS)
    unknown = names - set(ALL_HAZARDS)
    if unknown:
        raise ValueError(f"unknown hazard(s): {', '.join(sorted(unknown))}; known: {', '.join(ALL_HAZARDS)}")
    return frozenset(names)


@dataclass(frozen=True)
class Policy:
    """What one environment allows.

    ``deletes_data`` needs more than the hazard name: the object itself must be
    named, by ``-- @drop``/``-- @allow`` directives in sql/ or in ``drops`` here
    (``"*"`` names every object; meant for throwaway databases only).
    """

    allow: frozenset[str] = frozenset()
    drops: frozenset[str] = frozenset()
    allowed_objects: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    # ids of objects sql/ does not declare, whose drops pgconverge_unmanaged = drop allows
    undeclared: frozenset[str] = frozenset()

    def refused(self, hazards: list[Hazard]) -> list[Hazard]:
        out = []
        for h in hazards:
            if h.name in DROP_HAZARDS and h.object in self.undeclared:
                continue
            if h.name not in self.allow:
                out.append(h)
            elif h.name == DELETES_DATA and not self._named(h):
                out.append(
                    Hazard(h.name, f"{h.reason} (allowed by policy, but the object is not named for deletion: "
                           f"add '-- @drop {h.object.replace(':', ' ', 1)}' to sql/ or list it in drops)", h.object)
                )
        return out

    def _named(self, h: Hazard) -> bool:
        if "*" in self.drops or h.object in self.drops or (h.object, h.name) in self.allowed_objects:
            return True
        # naming a table covers its columns (in drops, or by '-- @allow deletes_data' next to it)
        parts = h.object.split(":", 1)
        if len(parts) == 2 and parts[0] == "column":
            table = "table:" + parts[1].rsplit(".", 1)[0]
            return table in self.drops or (table, h.name) in self.allowed_objects
        return False
