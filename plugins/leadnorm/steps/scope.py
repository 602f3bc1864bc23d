"""A refresh's scope: the source leads whose normalized documents can change, and their documents.

A new, changed or gone lead can move its company or persona, merge two or split one, but
only among leads tied to it by identity keys (`leadnorm.transform.keys`). The scope is the
closure of the changed leads over those keys, before and after the change, kept in
`migration_lead_keys` (`{_id: legacy_key, keys: [...]}`). Resolving the
scope alone gives its documents what resolving the whole source would; nothing outside it
can change. Of the scope's leads, only the changed ones, and those whose company or persona id
moves, get their lead-level documents staged, loaded and verified (`Scope.seeds`); the others
are there for their companies' and personas' values. So a refresh reads and writes in
proportion to what changed.

The key store is trusted only when the run that last wrote normalized documents finished
and recorded it complete; otherwise (the first run, a run that died, a rollback since) the
refresh resolves the whole source and rebuilds it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from bson import Binary
from pymongo import DeleteOne, InsertOne, ReplaceOne
from pymongo.database import Database

from leadnorm.contract import (
    KEYS_COLLECTION,
    NESTED_FIELD,
    NESTED_LEAD,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.mongo import find_exactly, in_chunks, normalized_leads_of
from leadnorm.steps.changes import Changes
from leadnorm.steps.extract import WITHOUT_MARKERS, source_frame
from leadnorm.steps.runstate import STATE_ID
from leadnorm.transform.keys import lead_keys
from leadnorm.transform.split import split_batch


def leads_referencing(db: Database, column: str, ids: Iterable, projection: dict | None = None) -> Iterator[dict]:
    """The application's leads (normalized and uploaded) whose `column` (`company_id`,
    `persona_id`) is one of `ids`: a nested lead's own field of that name is its data, no reference."""
    for part in in_chunks(ids):
        for lead in db[SOURCE_COLLECTION].find(
            {column: {"$in": part}}, {**(projection or {}), column: 1, NESTED_FIELD: 1}
        ):
            if NESTED_FIELD not in lead:
                yield lead


@dataclass
class Scope:
    """Source leads by `legacy_key`: those to re-resolve, those whose source went, and the changed
    ones among them (new or changed: the others are there for their companies and personas)."""

    leads: frozenset[bytes]
    gone: frozenset[bytes]
    seeds: frozenset[bytes] = frozenset()

    @property
    def all(self) -> frozenset[bytes]:
        return self.leads | self.gone

    def to_table(self) -> pa.Table:
        keys = sorted(self.leads) + sorted(self.gone)
        return pa.table(
            {
                "key": pa.array(keys, pa.binary()),
                "gone": pa.array([k in self.gone for k in keys], pa.bool_()),
                "seed": pa.array([k in self.seeds for k in keys], pa.bool_()),
            }
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> Scope:
        keys, gone, seed = (table[name].to_pylist() for name in ("key", "gone", "seed"))
        went = {key for key, flag in zip(keys, gone) if flag}
        seeds = {key for key, flag in zip(keys, seed) if flag}
        return cls(frozenset(set(keys) - went), frozenset(went), frozenset(seeds))


# --- the key store ------------------------------------------------------------------------


def save_lead_keys(db: Database, keys: Iterable[pa.RecordBatch], scope: Scope | None, *, dry_run: bool = False) -> int:
    """Make the store hold `keys` (batches of `_id`, the legacy key, and `keys`, in the store's
    `_id` order: binary ids by length, then bytes) for the leads of `scope` (all leads when None);
    returns the writes. The two are compared as a merge of sorted streams: neither is held whole."""
    store = db[KEYS_COLLECTION]
    writes: list = []
    written = 0

    def flush(force: bool = False) -> None:
        nonlocal written
        if writes and (force or len(writes) >= 1000):
            if not dry_run:
                store.bulk_write(writes, ordered=False)
            written += len(writes)
            writes.clear()

    wanted = (
        (key, list(found)) for batch in keys for key, found in zip(batch["_id"].to_pylist(), batch["keys"].to_pylist())
    )  # staged in the store's order (`leadnorm.transform.dedupe.lead_keys`)
    if scope is None:
        stored = store.find({"_id": {"$ne": STATE_ID}}, sort=[("_id", 1)], batch_size=5000)
    else:  # a scope's leads only
        stored = iter(
            sorted(
                (
                    doc
                    for part in in_chunks(scope.all)
                    for doc in store.find({"_id": {"$in": [Binary(k) for k in part]}})
                ),
                key=lambda doc: _store_order(bytes(doc["_id"])),
            )
        )
    want = next(wanted, None)
    doc = next(stored, None)
    while want is not None or doc is not None:
        have = bytes(doc["_id"]) if doc is not None else None
        if doc is None or (want is not None and _store_order(want[0]) < _store_order(have)):
            writes.append(InsertOne({"_id": Binary(want[0]), "keys": want[1]}))  # none stored
            want = next(wanted, None)
        elif want is None or _store_order(have) < _store_order(want[0]):
            writes.append(DeleteOne({"_id": doc["_id"]}))
            doc = next(stored, None)
        else:
            if doc.get("keys") != want[1]:
                writes.append(ReplaceOne({"_id": doc["_id"]}, {"keys": want[1]}))
            want, doc = next(wanted, None), next(stored, None)
        flush()
    flush(force=True)
    return written


def _store_order(key: bytes) -> tuple[int, bytes]:
    """How MongoDB orders binary `_id`s: by length, then by bytes."""
    return len(key), key


def forget_lead_keys(db: Database, source_ids: Iterable) -> None:
    """Cleanup deleted these source leads: they no longer take part in any resolve."""
    for part in in_chunks(source_ids):
        db[KEYS_COLLECTION].delete_many({"_id": {"$in": [Binary(legacy_key(i)) for i in part]}})


# --- the closure --------------------------------------------------------------------------


def current_keys(db: Database, leads: Iterable[bytes]) -> set[str]:
    """The identity keys the given source leads have now."""
    found: set[str] = set()
    for part in in_chunks(leads):
        documents = list(find_exactly(db[SOURCE_COLLECTION], "_id", part, WITHOUT_MARKERS, **NESTED_LEAD))
        if documents:
            for keys in lead_keys(split_batch(source_frame(documents)))["keys"]:
                found.update(keys)
    return found


def find_scope(db: Database, changes: Changes) -> Scope:
    """The changed leads and every lead tied to them by a key, then or now, transitively.

    The key store is read whole (one cursor over small documents, as cheap as reading the
    fingerprints) and the closure taken in memory: a walk of `$in` queries over the keys index
    would touch fewer documents, but costs more round trips than that scan at any size here."""
    members_by_key: dict[str, list[bytes]] = {}
    keys_of: dict[bytes, list[str]] = {}
    for doc in db[KEYS_COLLECTION].find({"_id": {"$ne": STATE_ID}}, {"keys": 1}, batch_size=5000):
        member = bytes(doc["_id"])
        keys_of[member] = doc.get("keys", [])
        for key in keys_of[member]:
            members_by_key.setdefault(key, []).append(member)
    seeds = changes.new | changes.changed | changes.gone
    members = set(seeds)
    frontier = current_keys(db, changes.new | changes.changed)
    for seed in seeds:
        frontier.update(keys_of.get(seed, ()))
    seen = set(frontier)
    while frontier:
        reached: set[str] = set()
        for key in frontier:
            for member in members_by_key.get(key, ()):
                if member not in members:
                    members.add(member)
                    reached.update(keys_of[member])
        frontier = reached - seen
        seen |= frontier
    return Scope(frozenset(members - changes.gone), frozenset(changes.gone), frozenset(changes.new | changes.changed))


# --- what the scope's leads hold now ---------------------------------------------------------


@dataclass
class Stored:
    """The stored documents of a scope, before the run writes: what it may replace or make stale."""

    related: dict[str, list]  # collection -> ids
    refs: pd.DataFrame  # the scope's normalized leads: _id, company_id, persona_id
    lead_counts: dict[str, Counter]  # company_id / persona_id -> leads (all of them) per stored id


def _ids_by(db: Database, collection: str, field: str, values: Iterable) -> list:
    return [doc["_id"] for part in in_chunks(values) for doc in db[collection].find({field: {"$in": part}}, {"_id": 1})]


def stored_for(db: Database, scope: Scope, leads: Iterable | None = None) -> Stored:
    """What the scope's leads hold: their references, the companies and personas (and those
    companies' technographics) they point at, and the lead-level documents of the normalized
    leads `leads` (None: of all of them; a refresh rewrites only those whose documents change)."""
    rows = [
        {"_id": lead["_id"], "company_id": lead.get("company_id"), "persona_id": lead.get("persona_id")}
        for lead in normalized_leads_of(db, scope.all, {"company_id": 1, "persona_id": 1, "legacy_lead_id": 1})
    ]
    refs = pd.DataFrame(rows, columns=["_id", "company_id", "persona_id"], dtype=object)
    related = {}
    counts = {}
    for collection, column in (("companies", "company_id"), ("personas", "persona_id")):
        ids = sorted({i for i in refs[column] if i is not None}, key=str)
        related[collection] = ids
        counts[column] = Counter(lead[column] for lead in leads_referencing(db, column, ids))
    related["technographics"] = _ids_by(db, "technographics", "company_id", related["companies"])
    wanted = None if leads is None else set(leads)
    related.update(lead_level_held(db, [i for i in refs["_id"] if wanted is None or i in wanted]))
    return Stored(related, refs, counts)


def lead_level_held(db: Database, leads: Iterable) -> dict[str, list]:
    """The stored documents that hang off these normalized leads, by collection."""
    related = {"leads": sorted(set(leads), key=str)}
    for collection in ("research_runs", "detected_signals", "icp_scores"):
        related[collection] = _ids_by(db, collection, "lead_id", related["leads"])
    related["citations"] = _ids_by(db, "citations", "research_run_id", related["research_runs"])
    related["icp_factor_breakdowns"] = _ids_by(db, "icp_factor_breakdowns", "icp_score_id", related["icp_scores"])
    return related


def occupied_outside(db: Database, scope: Scope, column: str, candidates: Iterable) -> set:
    """Of the `candidates` ids, those a migrated source lead outside the scope references: another
    entity's. (One referenced only by cleaned-up leads is free: a full resolve would reuse it too.)"""
    holders: dict[bytes, set] = {}
    for lead in leads_referencing(db, column, candidates, {"legacy_lead_id": 1}):
        if "legacy_lead_id" in lead and legacy_key(lead["legacy_lead_id"]) not in scope.all:
            holders.setdefault(legacy_key(lead["legacy_lead_id"]), set()).add(lead[column])
    taken = set()
    for part in in_chunks(holders):
        for doc in db[KEYS_COLLECTION].find({"_id": {"$in": [Binary(k) for k in part]}}, {"_id": 1}):
            taken |= holders[bytes(doc["_id"])]
    return taken
