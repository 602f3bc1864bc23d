"""Close the loop on the source: mark migrated leads, record rejected ones.

Runs only after every collection is loaded, so a source lead marked `_migrated` always
has all its derived documents written. A rejected lead is never marked: one migrated by
an earlier run and invalid since loses its mark. Every write touches only what differs:
a rerun writes nothing. Source ids are matched by `legacy_key`, so any `_id` type works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.database import Database

from leadnorm.contract import MARKERS, NESTED_LEAD, REJECTS_COLLECTION, SOURCE_COLLECTION, legacy_key
from leadnorm.mongo import RAW_CODEC_OPTIONS, in_chunks
from leadnorm.source import SourceLead
from leadnorm.steps.extract import nested_source_leads
from leadnorm.steps.progress import Progress
from leadnorm.steps.scope import Scope, find_exactly


@dataclass
class MarkResult:
    marked: int = 0
    already_marked: int = 0
    rejects_written: int = 0
    rejects_removed: int = 0
    unmarked: int = 0  # rejected source leads that lost the mark of an earlier run

    def as_dict(self) -> dict:
        return asdict(self)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fingerprints_by_source(fingerprints: pd.DataFrame) -> dict[bytes, bytes]:
    """legacy_key -> fingerprint of the content this run migrated or rejected."""
    return dict(zip(fingerprints["_id"].map(legacy_key), fingerprints["fingerprint"]))


def mark_migrated(
    db: Database,
    leads: pd.DataFrame,
    fingerprints: dict[bytes, bytes],
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    scope: Scope | None = None,
) -> MarkResult:
    """Set `_migrated: true`, `_migrated_lead_id` and the content's fingerprint on each migrated
    source lead (of the scope, when given), the application's own fields of those names kept aside."""
    new_id = dict(zip(leads["legacy_lead_id"].map(legacy_key), leads["_id"]))
    result = MarkResult()
    updates = []
    if scope is None:
        source = nested_source_leads(db)  # one raw scan, cut on the client: a server's projection costs as much again
    else:
        raw = db[SOURCE_COLLECTION].with_options(codec_options=RAW_CODEC_OPTIONS)
        found = find_exactly(raw, "_id", scope.leads, dict.fromkeys(MARKERS, 1), **NESTED_LEAD)
        source = (SourceLead(doc.raw) for doc in found)
    for lead in source:
        key = legacy_key(lead.source_id)
        target = new_id.get(key)
        if target is None:
            continue
        update = lead.mark(target, fingerprints.get(key))
        if update is None:
            result.already_marked += 1
        else:
            updates.append(UpdateOne({"_id": lead.source_id}, update))
    result.marked = len(updates)
    if not dry_run:
        progress = Progress("mark", len(updates))
        for chunk in _chunks(updates, batch_size):
            db[SOURCE_COLLECTION].bulk_write(chunk, ordered=False)
            progress.advance(len(chunk))
    return result


def write_rejects(
    db: Database,
    rejects: pd.DataFrame,
    result: MarkResult,
    fingerprints: dict[bytes, bytes],
    *,
    dry_run: bool = False,
    scope: Scope | None = None,
) -> MarkResult:
    """Make `migration_rejects` hold exactly this run's rejects (`_id`, `reason`, the content's
    `fingerprint`), none of them marked; with a scope, only the rejects of its leads change."""
    wanted = {}
    for source_id, reason in rejects[["_id", "reject_reason"]].itertuples(index=False, name=None):  # types kept
        key = legacy_key(source_id)
        wanted[key] = {"_id": source_id, "reason": reason, "fingerprint": fingerprints.get(key)}
    result.unmarked += _unmark(db, [want["_id"] for want in wanted.values()], dry_run=dry_run)
    writes = []
    stored = (
        db[REJECTS_COLLECTION].find({}) if scope is None else find_exactly(db[REJECTS_COLLECTION], "_id", scope.all)
    )
    for doc in stored:
        want = wanted.pop(legacy_key(doc["_id"]), None)
        if want is None:
            writes.append(DeleteOne({"_id": doc["_id"]}))
            result.rejects_removed += 1
        elif doc.keys() != want.keys() or any(doc[f] != want[f] for f in ("reason", "fingerprint")):  # ids: NaN
            writes.append(ReplaceOne({"_id": doc["_id"]}, want))
            result.rejects_written += 1
    writes += [InsertOne(want) for want in wanted.values()]  # none stored: an upsert would only cost more
    result.rejects_written += len(wanted)
    if writes and not dry_run:
        db[REJECTS_COLLECTION].bulk_write(writes, ordered=False)
    return result


def _unmark(db: Database, ids: list, *, dry_run: bool) -> int:
    """Take the migration's marks off the source leads `ids` that carry them, putting back the
    application's own fields of those names. Selected by `_id` alone: a `$or` beside the `$in`
    makes a server (SecantusDB) scan the whole collection."""
    raw = db[SOURCE_COLLECTION].with_options(codec_options=RAW_CODEC_OPTIONS)
    unmarked = 0
    for chunk in in_chunks(ids):
        leads = (SourceLead(doc.raw) for doc in raw.find({"_id": {"$in": chunk}}, dict.fromkeys(MARKERS, 1)))
        updates = [UpdateOne({"_id": lead.source_id}, update) for lead in leads if (update := lead.unmark())]
        unmarked += len(updates)
        if updates and not dry_run:
            db[SOURCE_COLLECTION].bulk_write(updates, ordered=False)
    return unmarked
