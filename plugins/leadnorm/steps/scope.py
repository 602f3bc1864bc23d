"""A refresh's scope: the source leads whose normalized documents can change, and their documents.

A new, changed or gone lead can move its company or persona, merge two or split one, but only
among leads tied to it by identity keys (`leadnorm.transform.keys`), and a company's keys never
tie personas nor a persona's companies. The scope is the changed leads (`seeds`, extracted and
split again), and two closures over the keys kept in `migration_lead_keys`, before and after the
change: the leads tied to them by company keys (`companies`) and by persona keys (`personas`).
Those are not read from the source again: the key store also keeps each migrated lead's mentions
as split made them (`{_id: legacy_key, keys: [...], company: {...}, persona: {...}, techs: [...]}`),
and a closure's leads bring the mentions of their kind from there. Resolving that gives the
scope's companies and personas what resolving the whole source would; nothing outside can change.
Of the other leads, only those whose company or persona id moves get their lead-level documents
staged, loaded and verified again. So a refresh reads and writes in proportion to what changed.

The key store is trusted only when the run that last wrote normalized documents finished
and recorded it complete; otherwise (the first run, a run that died, a rollback since) the
refresh resolves the whole source and rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import bson
import pandas as pd
import pyarrow as pa
from bson import Binary
from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, IndexModel, InsertOne, ReplaceOne
from pymongo.database import Database

from leadnorm.contract import (
    KEYS_COLLECTION,
    NESTED_FIELD,
    NESTED_LEAD,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.mongo import CODEC_OPTIONS, RAW_CODEC_OPTIONS, find_exactly, in_chunks, normalized_leads_of
from leadnorm.steps.changes import Changes
from leadnorm.steps.extract import WITHOUT_MARKERS, source_frame
from leadnorm.steps.runstate import STATE_ID
from leadnorm.transform.keys import COMPANY_KEY_COLUMNS, PERSONA_KEY_COLUMNS, lead_keys
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
    """Source leads by `legacy_key`: the new and changed ones, those whose source went, and the other
    leads tied to them by a company key or by a persona key."""

    seeds: frozenset[bytes]
    gone: frozenset[bytes]
    companies: frozenset[bytes] = frozenset()
    personas: frozenset[bytes] = frozenset()

    @property
    def leads(self) -> frozenset[bytes]:
        """Every source lead of the scope that is still there."""
        return self.seeds | self.companies | self.personas

    @property
    def changed(self) -> frozenset[bytes]:
        return self.seeds | self.gone

    @property
    def all(self) -> frozenset[bytes]:
        return self.leads | self.gone

    def of(self, column: str) -> frozenset[bytes]:
        """The leads whose `company_id` or `persona_id` the run resolves again."""
        return self.changed | (self.companies if column == "company_id" else self.personas)

    def to_table(self) -> pa.Table:
        keys = sorted(self.all)
        roles = {"seed": self.seeds, "gone": self.gone, "company": self.companies, "persona": self.personas}
        return pa.table(
            {
                "key": pa.array(keys, pa.binary()),
                **{role: pa.array([k in members for k in keys], pa.bool_()) for role, members in roles.items()},
            }
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> Scope:
        keys = table["key"].to_pylist()

        def having(role: str) -> frozenset[bytes]:
            return frozenset(key for key, flag in zip(keys, table[role].to_pylist()) if flag)

        return cls(having("seed"), having("gone"), having("company"), having("persona"))

    def summary(self) -> dict[str, int]:
        return {
            "leads": len(self.leads),
            "changed": len(self.seeds),
            "gone": len(self.gone),
            "by_company": len(self.companies),
            "by_persona": len(self.personas),
        }


# --- the key store ------------------------------------------------------------------------


# A stored lead's mentions, by the field of its key store document: (split's table, one row or a list).
MENTION_FIELDS = {
    "company": ("company_mentions", False),
    "persona": ("persona_mentions", False),
    "techs": ("tech_mentions", True),
}


def save_lead_keys(db: Database, keys: Iterable[pa.RecordBatch], scope: Scope | None, *, dry_run: bool = False) -> int:
    """Make the store hold `keys` (batches of `_id`, the legacy key, `keys` and the lead's mentions,
    in the store's `_id` order: binary ids by length, then bytes) for the leads of `scope` that
    changed (all leads when None); returns the writes. The two are compared as a merge of sorted
    streams, document bytes against document bytes: neither is held whole."""
    store = db[KEYS_COLLECTION].with_options(codec_options=RAW_CODEC_OPTIONS)
    writes: list = []
    written = 0

    def flush(force: bool = False) -> None:
        nonlocal written
        if writes and (force or len(writes) >= 1000):
            if not dry_run:
                store.bulk_write(writes, ordered=False)
            written += len(writes)
            writes.clear()

    wanted = (_store_document(row) for batch in keys for row in batch.to_pylist())
    if not dry_run:
        store.create_indexes([IndexModel("keys")])  # the closures' walk (`find_scope`)
    if scope is None:
        stored = store.find({"_id": {"$ne": STATE_ID}}, sort=[("_id", 1)], batch_size=5000)
    else:  # a scope's changed leads only: the others' keys and mentions are as they were
        stored = iter(
            sorted(
                (
                    doc
                    for part in in_chunks(scope.changed)
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
            writes.append(InsertOne(RawBSONDocument(want[1])))  # none stored
            want = next(wanted, None)
        elif want is None or _store_order(have) < _store_order(want[0]):
            writes.append(DeleteOne({"_id": doc["_id"]}))
            doc = next(stored, None)
        else:
            if bytes(doc.raw) != want[1]:
                writes.append(ReplaceOne({"_id": doc["_id"]}, RawBSONDocument(want[1])))
            want, doc = next(wanted, None), next(stored, None)
        flush()
    flush(force=True)
    return written


def _store_document(row: dict) -> tuple[bytes, bytes]:
    """A key store document (its legacy key, its BSON) of a row of `leadnorm.transform.dedupe.lead_keys`:
    the mentions as Arrow holds them (bytes, UTC datetimes, numbers, text), absent where none."""
    document = {"_id": Binary(row["_id"]), "keys": list(row["keys"])}
    document.update((name, row[name]) for name in MENTION_FIELDS if row.get(name) is not None)
    return row["_id"], bson.encode(document, codec_options=CODEC_OPTIONS)


def stored_mentions(documents: Iterable[dict], fields: Iterable[str]) -> dict[str, list[dict]]:
    """The mention rows of key store documents (decoded), by split's table name, for `fields`."""
    rows: dict[str, list[dict]] = {MENTION_FIELDS[field][0]: [] for field in fields}
    for document in documents:
        key = bytes(document["_id"])
        for field in fields:
            table, many = MENTION_FIELDS[field]
            found = document.get(field)
            for mention in (found or []) if many else ([found] if found is not None else []):
                rows[table].append({**mention, "legacy_lead_id": key})
    return rows


def _store_order(key: bytes) -> tuple[int, bytes]:
    """How MongoDB orders binary `_id`s: by length, then by bytes."""
    return len(key), key


def forget_lead_keys(db: Database, source_ids: Iterable, session=None) -> None:
    """Cleanup deleted these source leads, or the application took their leads over: they no longer
    take part in any resolve."""
    for part in in_chunks(source_ids):
        db[KEYS_COLLECTION].delete_many({"_id": {"$in": [Binary(legacy_key(i)) for i in part]}}, session=session)


# --- the closures ----------------------------------------------------------------------------

CLOSURE_KEYS = {"company_id": tuple(COMPANY_KEY_COLUMNS.values()), "persona_id": tuple(PERSONA_KEY_COLUMNS.values())}
CLOSURE_MENTIONS = {"company_id": ("company", "techs"), "persona_id": ("persona",)}


def current_keys(db: Database, leads: Iterable[bytes]) -> list[list[str]]:
    """The identity keys the given source leads have now, lead by lead."""
    found: list[list[str]] = []
    for part in in_chunks(leads):
        documents = list(find_exactly(db[SOURCE_COLLECTION], "_id", part, WITHOUT_MARKERS, **NESTED_LEAD))
        if documents:
            found += [list(keys) for keys in lead_keys(split_batch(source_frame(documents)))["keys"]]
    return found


def find_scope(db: Database, changes: Changes) -> tuple[Scope, dict[str, list[dict]]]:
    """The changed leads, and the leads tied to them by a company key, then by a persona key, then
    or now, transitively; with the mention rows the closures' leads bring from the key store.

    Each closure is walked through the store's `keys` index, a level of `$in` lookups at a time,
    so it reads the leads it reaches and no others."""
    store = db[KEYS_COLLECTION]
    changed = changes.new | changes.changed | changes.gone
    start = current_keys(db, changes.new | changes.changed)
    for part in in_chunks(changed):
        start += [doc.get("keys", []) for doc in store.find({"_id": {"$in": [Binary(k) for k in part]}}, {"keys": 1})]
    members, mentions = {}, {}
    for column, prefixes in CLOSURE_KEYS.items():
        reached = _closure(store, start, prefixes, changed, CLOSURE_MENTIONS[column])
        members[column] = frozenset(reached)
        mentions.update(stored_mentions(reached.values(), CLOSURE_MENTIONS[column]))
    scope = Scope(
        frozenset(changes.new | changes.changed), frozenset(changes.gone), members["company_id"], members["persona_id"]
    )
    return scope, mentions


def _closure(store, start: list[list[str]], prefixes: tuple[str, ...], changed: frozenset[bytes], fields) -> dict:
    """The key store documents (with `fields`) of the leads other than `changed` that keys of `prefixes`
    tie to the leads of `start` (their keys, lead by lead), directly or through each other."""
    found: dict[bytes, dict] = {}
    seen: set[str] = set()
    frontier = _in_lookup_order(start, prefixes, seen)
    while frontier:
        reached: list[list[str]] = []
        for part in in_chunks(frontier):
            for doc in store.find({"keys": {"$in": part}}, {"keys": 1, **dict.fromkeys(fields, 1)}):
                member = bytes(doc["_id"])
                if member not in changed and member not in found:
                    found[member] = doc
                    reached.append(doc.get("keys", []))
        frontier = _in_lookup_order(reached, prefixes, seen)
    return found


def _in_lookup_order(groups: list[list[str]], prefixes: tuple[str, ...], seen: set[str]) -> list[str]:
    """The keys of `prefixes` the leads of `groups` have that no lookup had yet, each lead's together and
    the leads in order of their first key, so the leads of one company (its domain and its name) come
    in one lookup, not in two that each return them all; marked seen."""
    keys = []
    for group in sorted(sorted(k for k in group if k.startswith(prefixes)) for group in groups):
        for key in group:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    return keys


# --- what the scope's leads hold now ---------------------------------------------------------


@dataclass
class Stored:
    """The stored documents of a scope, before the run writes: what it may replace or make stale."""

    related: dict[str, list]  # collection -> ids
    refs: pd.DataFrame  # the scope's normalized leads: _id, key (of the source lead), company_id, persona_id


def _ids_by(db: Database, collection: str, field: str, values: Iterable) -> list:
    return [doc["_id"] for part in in_chunks(values) for doc in db[collection].find({field: {"$in": part}}, {"_id": 1})]


def stored_for(db: Database, scope: Scope) -> Stored:
    """What the scope's leads hold: their references, and the companies and personas (and those
    companies' technographics) that the leads whose companies or personas it resolves point at.
    (The lead-level documents: `lead_level_held`, once the leads a run rewrites are known.)"""
    rows = [
        {
            "_id": lead["_id"],
            "key": legacy_key(lead["legacy_lead_id"]),
            "company_id": lead.get("company_id"),
            "persona_id": lead.get("persona_id"),
        }
        for lead in normalized_leads_of(db, scope.all, {"company_id": 1, "persona_id": 1, "legacy_lead_id": 1})
    ]
    refs = pd.DataFrame(rows, columns=["_id", "key", "company_id", "persona_id"], dtype=object)
    related = {}
    for collection, column in (("companies", "company_id"), ("personas", "persona_id")):
        resolved = scope.of(column)  # the others keep what they point at: it is none of this run's
        ids = {i for key, i in zip(refs["key"], refs[column]) if i is not None and key in resolved}
        related[collection] = sorted(ids, key=str)
    related["technographics"] = _ids_by(db, "technographics", "company_id", related["companies"])
    return Stored(related, refs)


def lead_level_held(db: Database, leads: Iterable) -> dict[str, list]:
    """The stored documents that hang off these normalized leads, by collection."""
    related = {"leads": sorted(set(leads), key=str)}
    for collection in ("research_runs", "detected_signals", "icp_scores"):
        related[collection] = _ids_by(db, collection, "lead_id", related["leads"])
    related["citations"] = _ids_by(db, "citations", "research_run_id", related["research_runs"])
    related["icp_factor_breakdowns"] = _ids_by(db, "icp_factor_breakdowns", "icp_score_id", related["icp_scores"])
    return related


def occupied_outside(db: Database, scope: Scope, column: str, candidates: Iterable) -> set:
    """Of the `candidates` ids, those a migrated source lead whose `column` the scope does not resolve
    references: another entity's. (One referenced only by cleaned-up leads is free: a full resolve
    would reuse it too.)"""
    holders: dict[bytes, set] = {}
    resolved = scope.of(column)
    for lead in leads_referencing(db, column, candidates, {"legacy_lead_id": 1}):
        if "legacy_lead_id" in lead and legacy_key(lead["legacy_lead_id"]) not in resolved:
            holders.setdefault(legacy_key(lead["legacy_lead_id"]), set()).add(lead[column])
    taken = set()
    for part in in_chunks(holders):
        for doc in db[KEYS_COLLECTION].find({"_id": {"$in": [Binary(k) for k in part]}}, {"_id": 1}):
            taken |= holders[bytes(doc["_id"])]
    return taken
