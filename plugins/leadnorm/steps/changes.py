"""What changed in the source since the last run, found by content, not by `updated_at`.

Each migrated source lead carries the fingerprint of the content it was migrated from
(`_migrated_fingerprint`), each reject its own (`migration_rejects.fingerprint`). A
refresh fingerprints the source as it is now (its raw BSON, the migration's markers left
out, never decoded) and compares: a lead is new, changed, or gone. Applications forget to
bump `updated_at`; they cannot change a byte without changing the fingerprint.
"""

from __future__ import annotations

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
from leadnorm.source import fingerprint
from leadnorm.steps.extract import nested_source_leads


@dataclass(frozen=True)
class Changes:
    """Source leads by `legacy_key`."""

    new: frozenset[bytes]  # nested leads never migrated nor rejected
    changed: frozenset[bytes]  # content differs from what was migrated or rejected
    gone: frozenset[bytes]  # normalized leads or rejects whose source was deleted (not by cleanup)
    unchanged: int

    @property
    def any(self) -> bool:
        return bool(self.new or self.changed or self.gone)

    def render(self) -> str:
        return (
            f"source changes: {len(self.new)} new, {len(self.changed)} changed, {len(self.gone)} gone, "
            f"{self.unchanged} unchanged"
        )


def current_fingerprints(db: Database, batch_size: int = 2000) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """legacy_key -> fingerprint of every nested lead's content as it is now (raw bytes, nothing
    decoded but `_id` and the markers), and legacy_key -> the fingerprint its marks record."""
    now, recorded = {}, {}
    for lead in nested_source_leads(db, batch_size):
        key = legacy_key(lead.source_id)
        now[key] = fingerprint(lead.content)
        if lead.migrated:
            recorded[key] = lead.marks[MIGRATED_FINGERPRINT]
    return now, recorded


def detect_changes(db: Database) -> Changes:
    """Compare the source's fingerprints with those recorded by the last migration or refresh."""
    now, recorded = current_fingerprints(db)
    for doc in db[REJECTS_COLLECTION].find({}, {"fingerprint": 1}):
        recorded.setdefault(legacy_key(doc["_id"]), doc.get("fingerprint"))
    cleaned = {legacy_key(doc["_id"]) for doc in db[CLEANED_COLLECTION].find({}, {"_id": 1})}
    normalized = {
        legacy_key(doc["legacy_lead_id"]) for doc in db[SOURCE_COLLECTION].find(NORMALIZED_LEAD, {"legacy_lead_id": 1})
    }
    rejected = {legacy_key(doc["_id"]) for doc in db[REJECTS_COLLECTION].find({}, {"_id": 1})}
    new = now.keys() - recorded.keys()
    changed = {key for key in now.keys() & recorded.keys() if now[key] != recorded[key]}
    gone = (normalized | rejected) - now.keys() - cleaned
    return Changes(frozenset(new), frozenset(changed), frozenset(gone), len(now) - len(new) - len(changed))
