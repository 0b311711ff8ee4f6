"""Steps and plans, and the dependency graph that orders a plan's steps.

Each step carries its SQL, its hazards, how it must run (inside a transaction or
not), its timeouts, and what it creates, changes or removes, so that the graph can
order the steps: an object is created after what it needs and dropped before what
it needs.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass, field
from typing import Any

from pgconverge.errors import PlanError
from pgconverge.planning.hazards import Hazard

# How a step runs. "group" steps share a transaction with their neighbours;
# "own" steps get a transaction of their own (long scans, enum values that must
# commit before use); "none" steps run outside any transaction (CONCURRENTLY).
GROUP, OWN, NONE = "group", "own", "none"

# Coarse order of step kinds; the dependency graph refines it. Drops come first (below 20, the
# dependants before what they use), then creations and changes (20 and up, in the order of
# planning/registry.py). A new object kind adds its step kinds here: its drop next to the
# drops of the kinds it uses, its create and alter next to theirs.
RANK = {
    "rename": 0,
    "drop_policy": 4,
    "drop_trigger": 5,
    "drop_view": 6,
    "detach": 9,
    "drop_fk": 10,
    "drop_index": 11,
    "drop_constraint": 12,
    "drop_column": 13,
    "drop_table": 14,
    "drop_sequence": 15,
    "drop_function": 16,
    "drop_type": 17,
    "drop_collation": 17,
    "drop_extension": 18,
    "drop_schema": 19,
    "create_schema": 20,
    "create_extension": 21,
    "create_collation": 22,
    "alter_extension": 22,
    "create_type": 23,
    "alter_type": 24,
    "create_function": 25,
    "replace_function": 25,
    "create_sequence": 26,
    "alter_sequence": 27,
    "create_table": 30,
    "alter_table": 31,
    "add_column": 32,
    "alter_column": 33,
    "add_constraint": 34,
    "validate": 35,
    "attach": 35,
    "create_index": 36,
    "alter_index": 36,
    "add_fk": 37,
    "validate_fk": 38,
    "owned_by": 39,
    "create_view": 40,
    "replace_view": 40,
    "create_trigger": 41,
    "enable_trigger": 42,
    "create_policy": 43,
    "alter_policy": 43,
    "revoke": 44,
    "grant": 45,
    "comment": 50,
}


@dataclass(frozen=True)
class Step:
    sql: str
    kind: str  # a key of RANK
    object: str  # object id
    hazards: tuple[Hazard, ...] = ()
    mode: str = GROUP
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    provides: frozenset[str] = frozenset()  # ids this step creates or changes
    requires: frozenset[str] = frozenset()  # ids that must exist first
    removes: frozenset[str] = frozenset()  # ids this step drops
    drop_before: frozenset[str] = frozenset()  # ids that may only be dropped after this step
    after: frozenset[str] = frozenset()  # ids whose removal (by another step of the plan) must come first
    table: str | None = None  # table id this step locks, for VACUUM ANALYZE and lock reporting
    # what the proof's rehearsal runs instead of `sql`, when `sql` would run code of sql/ there (a
    # materialized view's query, a column default evaluated once): same catalog, no code run
    scratch: tuple[str, ...] = ()

    @property
    def transactional(self) -> bool:
        return self.mode != NONE

    def to_json(self) -> dict:
        return {
            "sql": self.sql,
            "hazards": [{"name": h.name, "reason": h.reason, "object": h.object} for h in self.hazards],
            "transactional": self.transactional,
            "lock_timeout": self.lock_timeout,
            "statement_timeout": self.statement_timeout,
            "object": self.object,
        }


@dataclass
class Plan:
    steps: list[Step]
    desired_hash: str = ""
    actual_hash: str = ""
    source_hash: str = ""
    warnings: list[str] = field(default_factory=list)
    data_blocks: list = field(default_factory=list)  # source.DataBlock pending on this database
    # pgconverge.proof.Proof: what the rehearsal on a copy of the target found (None: not proved)
    proof: Any = None
    # planning.unmanaged.Unmanaged: objects sql/ does not declare (left alone under report, dropped
    # otherwise), and under report the steps the proof runs on its rehearsal to forget them
    unmanaged: list = field(default_factory=list)
    forget: list = field(default_factory=list)
    unmanaged_policy: str = "refuse"
    # what the plan was made from, so that apply() can plan again and see that nothing moved:
    # the source.Source and the api.Options (no connection, so no secret)
    source: Any = field(default=None, compare=False, repr=False)
    options: Any = field(default=None, compare=False, repr=False)

    @property
    def is_empty(self) -> bool:
        return not self.steps and not self.data_blocks

    @property
    def hazards(self) -> list[Hazard]:
        return [h for s in self.steps for h in s.hazards]

    @property
    def plan_hash(self) -> str:
        body = json.dumps([s.to_json() for s in self.steps] + [b.sha256 for b in self.data_blocks], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    @property
    def changed_tables(self) -> list[str]:
        return sorted({s.table for s in self.steps if s.table and s.kind not in ("drop_table",)}
                      - {s.table for s in self.steps if s.kind == "drop_table"})

    def hashes(self) -> dict[str, str]:
        return {"desired": self.desired_hash, "actual": self.actual_hash, "plan": self.plan_hash,
                "source": self.source_hash}

    def to_sql(self) -> str:
        out = []
        for s in self.steps:
            for h in s.hazards:
                out.append(f"-- hazard {h.name}: {h.reason}")
            if not s.transactional:
                out.append("-- runs outside a transaction")
            out.append(s.sql.rstrip(";") + ";")
        return "\n".join(out) + ("\n" if out else "")

    def to_json(self) -> dict:
        return {"steps": [s.to_json() for s in self.steps], "hashes": self.hashes(), "warnings": list(self.warnings),
                "data_blocks": [{"name": b.name, "when": b.when, "sha256": b.sha256} for b in self.data_blocks],
                "proof": self.proof.to_json() if self.proof is not None else None,
                "unmanaged": [u.to_json() for u in self.unmanaged], "unmanaged_policy": self.unmanaged_policy}

    def unmanaged_lines(self) -> list[str]:
        """The objects sql/ does not declare and what this plan does with them, one line each."""
        fate = {"report": "left alone (pgconverge_unmanaged = report)",
                "drop": "dropped (pgconverge_unmanaged = drop)",
                "refuse": "planned as a drop (pgconverge_unmanaged = refuse: allowed only where a drop is named)"}
        return [f"{u.kind} {u.name}: not in sql/, {fate.get(self.unmanaged_policy, self.unmanaged_policy)}"
                for u in self.unmanaged]



# --------------------------------------------------------------------------- ordering


def order_steps(steps: list[Step]) -> list[Step]:
    """Topological order: providers before requirers, dependants dropped before
    their dependencies; ties broken by kind rank, then by the order of discovery."""
    providers: dict[str, list[int]] = {}
    removers: dict[str, list[int]] = {}
    for i, s in enumerate(steps):
        for p in s.provides:
            providers.setdefault(p, []).append(i)
        for r in s.removes:
            removers.setdefault(r, []).append(i)
    edges: dict[int, set[int]] = {i: set() for i in range(len(steps))}
    for i, s in enumerate(steps):
        for r in s.requires:
            for p in providers.get(r, ()):
                if p != i:
                    edges[p].add(i)
        for d in s.drop_before:
            for p in removers.get(d, ()):
                if p != i:
                    edges[i].add(p)
        # an id that is dropped and made again (a recreated table, type or index) is dropped first
        for r in s.after | s.provides:
            for p in removers.get(r, ()):
                if p != i:
                    edges[p].add(i)
    indegree = {i: 0 for i in edges}
    for targets in edges.values():
        for t in targets:
            indegree[t] += 1
    heap = [(RANK[steps[i].kind], i) for i, d in indegree.items() if d == 0]
    heapq.heapify(heap)
    out: list[Step] = []
    while heap:
        _, i = heapq.heappop(heap)
        out.append(steps[i])
        for t in edges[i]:
            indegree[t] -= 1
            if indegree[t] == 0:
                heapq.heappush(heap, (RANK[steps[t].kind], t))
    if len(out) != len(steps):
        stuck = [steps[i].object for i, d in indegree.items() if d > 0]
        raise PlanError(f"dependency cycle between: {', '.join(sorted(set(stuck))[:10])}")
    return out



def hazards_of(steps) -> list[Hazard]:
    return [h for s in steps for h in s.hazards]
