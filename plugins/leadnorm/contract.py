"""The data contract's names and value sets, defined once (docs/data-contract.md).

The schema (`leadnorm.schema`), the Great Expectations suites and the synthetic
generator all use these; `tests/test_contract.py` ties them together.
"""

from __future__ import annotations

import bson

DEFAULT_DB = "jazon_ai_sdr"
SOURCE_COLLECTION = "leads"
REJECTS_COLLECTION = "migration_rejects"
UPLOAD_REJECTS_COLLECTION = "upload_rejects"  # CSV rows not loaded: file sha256, line, reason

# A nested (source) lead is a document of the source collection with `lead_input`;
# normalized leads share the collection and carry `legacy_lead_id` instead.
NESTED_FIELD = "lead_input"
NESTED_LEAD = {NESTED_FIELD: {"$exists": True}}
NORMALIZED_LEAD = {"legacy_lead_id": {"$exists": True}, NESTED_FIELD: {"$exists": False}}


def is_normalized_lead(document) -> bool:
    """`NORMALIZED_LEAD` on the client, for a document of the source collection (decoded or raw) read
    with `lead_input` in its projection: a nested lead may carry a `legacy_lead_id` of its own."""
    return "legacy_lead_id" in document and NESTED_FIELD not in document


# Leads created from a CSV upload (`leadnorm.steps.ingest`): application data, kept by refresh and rollback.
# (A nested lead's own top-level `upload` lands at `extra.upload` of its normalized lead: that one has a legacy id.)
UPLOADED_LEAD = {
    "extra.upload": {"$exists": True},
    NESTED_FIELD: {"$exists": False},
    "legacy_lead_id": {"$exists": False},
}
# The application's own leads: uploaded, or written through the research write path (`leadnorm.steps.research`,
# `extra.application`), which takes a migrated lead over from the pipeline. Refresh and rollback keep them.
APPLICATION_LEAD = {NESTED_FIELD: {"$exists": False}, "legacy_lead_id": {"$exists": False}}
RELEASED_COLLECTION = "migration_released"  # source leads whose normalized lead the application took over
ROLLBACK_STASH_COLLECTION = "migration_rollback_stash"  # application data a rollback puts back, while it runs

# Set on a source lead once everything derived from it is written (`leadnorm.source`).
MIGRATED = "_migrated"
MIGRATED_LEAD_ID = "_migrated_lead_id"
MIGRATED_FINGERPRINT = "_migrated_fingerprint"  # of the content it was migrated from
MIGRATED_DISPLACED = "_migrated_displaced"  # the application's own fields of these names, while marked
MARKERS = (MIGRATED, MIGRATED_LEAD_ID, MIGRATED_FINGERPRINT, MIGRATED_DISPLACED)

# Bookkeeping beside the nine collections.
CLEANED_COLLECTION = "migration_cleaned"  # source leads deleted by cleanup: their normalized leads stay
LOCKS_COLLECTION = "migration_locks"  # one lease lock per database: one run at a time
KEYS_COLLECTION = "migration_lead_keys"  # each migrated lead's identity keys: a refresh's scope
STATE_ID = "state"  # the key store's one other document: what the last run leaves the next (steps/runstate.py)
FEED_COLLECTION = "migration_feed"  # where the AssetWatcher stopped reading the change stream; a read's mark

COLLECTION_NAMES = (  # load order: referenced collections first
    "companies",
    "personas",
    "leads",
    "technographics",
    "research_runs",
    "citations",
    "detected_signals",
    "icp_scores",
    "icp_factor_breakdowns",
)

STATUSES = ("uploaded", "researched", "icp_scored")
FIT_TIERS = ("A", "B", "C", "D")
LEVELS = ("High", "Medium", "Low")  # technographic confidence, signal strength, research confidence
DEFAULT_LEVEL = "Low"

REJECT_NOT_OBJECT = "lead_input is not an object"
REJECT_NO_IDENTITY = "lead_input has neither a name nor a readable email"
REJECT_TOO_LARGE = "too large"
REJECT_REASONS = (REJECT_NOT_OBJECT, REJECT_NO_IDENTITY, REJECT_TOO_LARGE)

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's BSON document limit


def legacy_key(value: object) -> bytes:
    """A hashable, type-exact key for any source `_id`: `"42"` and `42` differ, an embedded
    document works. Equal ids as the server returns them give equal keys."""
    return bson.encode({"_id": value})
