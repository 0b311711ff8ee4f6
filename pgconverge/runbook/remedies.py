"""What would allow a refused hazard, or how to make the change without it.

A refusal that only says "no" sends the reader to the documentation. Each refused hazard is
followed by its remedy: the group-data key (``pgconverge_allow_hazards``, ``pgconverge_drops``)
or the directive in sql/ (``-- @drop``, ``-- @allow``) that would allow it, and where an online
form of the same change exists, that form.
"""

from __future__ import annotations

from pgconverge.planning import hazards as hz
from pgconverge.planning.hazards import Hazard

_ALLOW = "add {name} to pgconverge_allow_hazards in this environment's group data (--allow-hazards {name} on the CLI)"

# The online alternative of each hazard, where one exists, by what its reason says.
_BACKFILL = ("add the column nullable, backfill it with a `-- @data <name> after` block, then set NOT NULL "
             "in a later deploy (pgconverge validates it through a CHECK, without a long lock)")


def _drop_directive(obj: str) -> str:
    kind, _, name = obj.partition(":")
    if kind == "column":
        table = name.rsplit(".", 1)[0]
        return f"'-- @allow deletes_data' next to the definition of table {table} (it covers its columns)"
    return f"'-- @drop {kind} {name}' anywhere in sql/" if name else "'-- @drop <kind> <schema.name>' in sql/"


def online_alternative(h: Hazard) -> str | None:
    """How to get the same result without the hazard, when there is such a way."""
    reason = h.reason
    if h.name == hz.MAY_FAIL_ON_EXISTING_DATA and "NOT NULL column" in reason and "without a default" in reason:
        return _BACKFILL
    if h.name == hz.MAY_FAIL_ON_EXISTING_DATA and "SET NOT NULL" in reason:
        return "backfill the NULLs first with a `-- @data <name> before` block, then NOT NULL is validated online"
    if h.name == hz.MAY_FAIL_ON_EXISTING_DATA:
        return "clean the existing rows first with a `-- @data <name> before` block"
    if h.name == hz.REWRITES_TABLE and "computed value" in reason:
        return ("add the column without the default (or with a constant one), backfill it with a "
                "`-- @data <name> after` block, then declare the default")
    if h.name == hz.REWRITES_TABLE and "changes type" in reason:
        return ("add a new column of the new type, backfill it with a `-- @data <name> after` block, switch "
                "the application over, then drop the old column (`-- @drop column ...`) in a later deploy")
    if h.name == hz.BLOCKS_READS_WRITES and "SET NOT NULL" in reason:
        return "on a partitioned table, set NOT NULL on each partition first (online), then on the parent"
    if h.name == hz.BLOCKS_READS_WRITES and ("changes type" in reason or "rewrite" in reason):
        return ("add a new column of the new type, backfill it with a `-- @data <name> after` block, then drop "
                "the old one in a later deploy")
    if h.name == hz.RENAMES:
        return ("add the new name alongside the old one (a new column or a view), move the clients over, "
                "then remove the old name in a later deploy")
    if h.name == hz.DROPS_OBJECT:
        return "keep its definition in sql/ until nothing calls it any more"
    if h.name == hz.INDEX_DROPPED:
        return "keep its definition in sql/ until no query needs it"
    return None


def remedy(h: Hazard) -> str:
    """One sentence: what would allow `h`, then the online alternative if there is one."""
    if h.name == hz.DELETES_DATA:
        obj = h.object or "the object"
        allow = (f"name {obj} for deletion ({_drop_directive(h.object)}, or pgconverge_drops = ['{obj}'] in "
                 f"group data, --drop {obj} on the CLI) and add deletes_data to "
                 "pgconverge_allow_hazards")
        if "not named for deletion" in h.reason:
            allow = (f"name {obj} for deletion: {_drop_directive(h.object)}, or pgconverge_drops = ['{obj}'] "
                     "in group data")
    else:
        allow = _ALLOW.format(name=h.name)
    online = online_alternative(h)
    return f"to allow it, {allow}" + (f"; or, online: {online}" if online else "")


def refusal_lines(refused: list[Hazard]) -> list[str]:
    """The refused hazards, each with its object, its reason and its remedy."""
    return [f"{h.name}: {h.reason}\n      remedy: {remedy(h)}" for h in refused]
