"""What changed in the source since the last run, found by content, not by `updated_at`.

Each migrated source lead carries the fingerprint of the content it was migrated from
(`_migrated_fingerprint`), each reject its own (`migration_rejects.fingerprint`). A
refresh fingerprints the source as it is now (its raw BSON, the migration's markers left
out, never decoded) and compares: a lead is new, changed, or gone. Applications forget to
bump `updated_at`; they cannot change a byte without changing the fingerprint.

Which leads it fingerprints: where the last run recorded the change stream's position and
the key store trusts it (`leadnorm.steps.feed`), only those the stream names since; else every
nested lead (the first run, a run that died, a rollback, a server without change streams).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from pymongo.database import Database

from leadnorm.contract import (
    CLEANED_COLLECTION,
    MIGRATED_FINGERPRINT,
    NORMALIZED_LEAD,
    REJECTS_COLLECTION,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.mongo import find_exactly, normalized_leads_of, released_leads
from leadnorm.source import SourceLead, fingerprint
from leadnorm.steps.extract import nested_source_leads, source_batches_of
from leadnorm.steps.feed import FeedUnavailable, current_position, read_feed
from leadnorm.steps.runstate import advance_position, trusted_resume

STREAM_ENV = "LEADNORM_CHANGE_STREAM"  # 0: always scan (the stream is read unless this says 0)
CHANGE_STREAM = "change stream"
SCAN = "fingerprint scan"


@dataclass(frozen=True)
class Changes:
    """Source leads by `legacy_key`, and how they were found."""

    new: frozenset[bytes]  # nested leads never migrated nor rejected
    changed: frozenset[bytes]  # content differs from what was migrated or rejected
    gone: frozenset[bytes]  # normalized leads or rejects whose source was deleted (not by cleanup)
    looked_at: int  # nested leads fingerprinted: every one for a scan, those the stream named
    detection: str = SCAN  # CHANGE_STREAM, or SCAN with its reason
    position: dict | None = None  # the change stream's position before the source was read

    @property
    def any(self) -> bool:
        return bool(self.new or self.changed or self.gone)

    @property
    def by_stream(self) -> bool:
        return self.detection == CHANGE_STREAM

    def render(self) -> str:
        counts = f"source changes: {len(self.new)} new, {len(self.changed)} changed, {len(self.gone)} gone"
        if self.by_stream:
            return f"{counts} (change stream: {self.looked_at} nested leads named since the last run)"
        return f"{counts}, {self.looked_at - len(self.new) - len(self.changed)} unchanged ({self.detection})"


def stream_detection_on() -> bool:
    return os.environ.get(STREAM_ENV, "1") != "0"


def detect_changes(db: Database) -> Changes:
    """What changed since the last run: from the change stream after the position the last run
    recorded (`leadnorm.steps.runstate`) when it can say, else by a scan."""
    if not stream_detection_on():
        reason = f"change stream detection is off ({STREAM_ENV}=0)"
    elif (resume := trusted_resume(db)) is None:
        reason = "no trusted position of the change stream recorded"
    else:
        try:
            read = read_feed(db, resume.position)
        except FeedUnavailable as why:
            reason = str(why)
        else:
            named = read.keys | resume.pending
            return _compare(db, _looked_at(db, named), named, detection=CHANGE_STREAM, position=read.position)
    start = current_position(db)  # before the scan reads: a change while it reads comes after
    looked_at = _looked_at(db, None)
    return _compare(db, looked_at, None, detection=f"{SCAN}: {reason}", position=start)


def nothing_changed(db: Database, changes: Changes, *, dry_run: bool = False) -> bool:
    """Whether the refresh has nothing to write; then (but in a dry run) the stream's position
    moves on, so the next refresh reads only what comes after."""
    if changes.any:
        return False
    if not dry_run:
        advance_position(db, changes.position)
    return True


def _looked_at(db: Database, keys: Iterable[bytes] | None) -> dict[bytes, SourceLead]:
    """The nested leads as they are now: those of `keys`, or all of them."""
    if keys is None:
        return {legacy_key(lead.source_id): lead for lead in nested_source_leads(db)}
    return {legacy_key(lead.source_id): lead for batch in source_batches_of(db, sorted(keys), 2000) for lead in batch}


def _compare(
    db: Database, leads: dict[bytes, SourceLead], named: frozenset[bytes] | None, *, detection: str, position
) -> Changes:
    """New, changed and gone among the leads `named` (None: all), from what each one's marks and
    `migration_rejects` recorded."""
    rejects, cleaned, normalized, released = _recorded(db, named)
    leads = {key: lead for key, lead in leads.items() if key not in released}  # the application's now
    now = {key: fingerprint(lead.content) for key, lead in leads.items()}
    recorded = {key: lead.marks[MIGRATED_FINGERPRINT] for key, lead in leads.items() if lead.migrated}
    for key, reject_fingerprint in rejects.items():
        recorded.setdefault(key, reject_fingerprint)
    new = now.keys() - recorded.keys()
    changed = {key for key in now.keys() & recorded.keys() if now[key] != recorded[key]}
    gone = (normalized | rejects.keys()) - now.keys() - cleaned
    return Changes(
        frozenset(new),
        frozenset(changed),
        frozenset(gone),
        len(now),
        detection,
        position,
    )


def _recorded(
    db: Database, named: frozenset[bytes] | None
) -> tuple[dict[bytes, bytes], set[bytes], set[bytes], set[bytes]]:
    """What the last runs recorded of the leads `named` (None: all): the rejects' fingerprints, the
    leads cleanup deleted, the source ids of the normalized leads, the leads the application took over."""
    if named is None:
        rejects = db[REJECTS_COLLECTION].find({}, {"fingerprint": 1})
        cleaned = db[CLEANED_COLLECTION].find({}, {"_id": 1})
        normalized = db[SOURCE_COLLECTION].find(NORMALIZED_LEAD, {"legacy_lead_id": 1})
    else:
        rejects = find_exactly(db[REJECTS_COLLECTION], "_id", named, {"fingerprint": 1})
        cleaned = find_exactly(db[CLEANED_COLLECTION], "_id", named, {"_id": 1})
        normalized = normalized_leads_of(db, named, {"legacy_lead_id": 1})
    return (
        {legacy_key(doc["_id"]): doc.get("fingerprint") for doc in rejects},
        {legacy_key(doc["_id"]) for doc in cleaned},
        {legacy_key(doc["legacy_lead_id"]) for doc in normalized},
        released_leads(db, named),
    )
