"""Close the loop on the source: mark migrated leads, record rejected ones.

Runs only after every collection is loaded, so a source lead marked `_migrated` always
has all its derived documents written. A rejected lead is never marked: one migrated by
an earlier run and invalid since loses its mark. Every write touches only what differs:
a rerun writes nothing. It works from the marks extract found on each lead, a batch at a
time, so it reads the source no second time; a lead the application rewrote meanwhile is
marked with the fingerprint of what was migrated, and the next refresh sees the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pyarrow as pa
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.database import Database

from leadnorm.contract import REJECTS_COLLECTION, SOURCE_COLLECTION, legacy_key
from leadnorm.errors import StagingError
from leadnorm.mongo import find_exactly
from leadnorm.source import MARK_KINDS, mark_update, unmark_update
from leadnorm.steps.progress import Progress
from leadnorm.steps.scope import Scope
from leadnorm.transform import columns
from leadnorm.transform.ids import lead_id
from leadnorm.transform.split import TABLE_KINDS


@dataclass
class MarkResult:
    marked: int = 0
    already_marked: int = 0
    rejects_written: int = 0
    rejects_removed: int = 0
    unmarked: int = 0  # rejected source leads that lost the mark of an earlier run

    def as_dict(self) -> dict:
        return asdict(self)


def mark_migrated(
    db: Database,
    staged: Iterable[tuple[pa.RecordBatch, pa.RecordBatch]],
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
) -> tuple[MarkResult, list[dict]]:
    """Mark each migrated source lead (`_migrated: true`, `_migrated_lead_id`, the fingerprint of its
    content, the application's own fields of those names kept aside) and unmark each rejected one
    that carries marks, from `staged`: pairs of batches of the same source leads, their outcomes
    (split) and their marks as extract found them. Returns the rejects, for `write_rejects`."""
    result, rejects, updates = MarkResult(), [], []
    progress = Progress("mark", None)

    def flush(force: bool = False) -> None:
        if updates and (force or len(updates) >= batch_size):
            if not dry_run:
                db[SOURCE_COLLECTION].bulk_write(updates, ordered=False)
            progress.advance(len(updates))
            updates.clear()

    for outcomes, marks in staged:
        outcome_rows = columns.rows_of(pa.Table.from_batches([outcomes]), TABLE_KINDS["outcomes"])
        for outcome, row in zip(outcome_rows, columns.rows_of(pa.Table.from_batches([marks]), MARK_KINDS)):
            if legacy_key(outcome["_id"]) != legacy_key(row["_id"]):
                raise StagingError("the staged outcomes and marks of a partition do not line up; rerun the run")
            if outcome["outcome"] == "migrated":
                update = mark_update(row, lead_id(row["_id"]), row["fingerprint"])
                result.marked += update is not None
                result.already_marked += update is None
            else:
                rejects.append(
                    {"_id": row["_id"], "reason": outcome["reject_reason"], "fingerprint": row["fingerprint"]}
                )
                update = unmark_update(row)
                result.unmarked += update is not None
            if update is not None:
                updates.append(UpdateOne({"_id": row["_id"]}, update))
            flush()
    flush(force=True)
    return result, rejects


def write_rejects(
    db: Database, rejects: list[dict], result: MarkResult, *, dry_run: bool = False, scope: Scope | None = None
) -> MarkResult:
    """Make `migration_rejects` hold exactly this run's rejects (`_id`, `reason`, the content's
    `fingerprint`); with a scope, only the rejects of the leads it split or lost change."""
    wanted = {legacy_key(reject["_id"]): reject for reject in rejects}
    writes = []
    stored = (
        db[REJECTS_COLLECTION].find({}) if scope is None else find_exactly(db[REJECTS_COLLECTION], "_id", scope.changed)
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
        for start in range(0, len(writes), 1000):
            db[REJECTS_COLLECTION].bulk_write(writes[start : start + 1000], ordered=False)
    return result
