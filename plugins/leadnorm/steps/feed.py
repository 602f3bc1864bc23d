"""The source's change stream: how a refresh finds what changed without reading every nested lead.

A run records the stream's position (its resume token) as it starts, before it reads the
source, and the key store keeps it once the run's last write is done (`leadnorm.steps.scope`):
everything the run did not see comes after that position. The next refresh reads the stream
from there and fingerprints only the leads it names (`leadnorm.steps.changes`), so the cost
follows the changes, not the source. The run's own writes are in the stream too: its marks
are told apart by their shape here (`is_own_mark`), its normalized documents by having no
`lead_input`; whatever else is named is compared by content, so nothing it wrote passes for
a change.

The stream can be missing (a standalone server), its position gone from the oplog, or the
collection dropped or renamed: `FeedUnavailable` says which, and the refresh scans instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pymongo.database import Database
from pymongo.errors import OperationFailure

from leadnorm.contract import MARKERS, MIGRATED, MIGRATED_LEAD_ID, NESTED_FIELD, SOURCE_COLLECTION, legacy_key
from leadnorm.mongo import CODEC_OPTIONS, describe_error
from leadnorm.transform.ids import lead_id

# What names the end of a collection's stream: a refresh then cannot know what it missed.
ENDS = ("drop", "rename", "dropDatabase", "invalidate")
# Server side: inserts and replaces of nested leads (and a replace that leaves a nested lead's `_id`
# holding something that is no normalized lead), every update and delete, the stream's end. The
# documents themselves stay on the server.
PIPELINE = [
    {
        "$match": {
            "$or": [
                {"operationType": "insert", f"fullDocument.{NESTED_FIELD}": {"$exists": True}},
                {
                    "operationType": "replace",
                    "$or": [
                        {f"fullDocument.{NESTED_FIELD}": {"$exists": True}},
                        {"fullDocument.legacy_lead_id": {"$exists": False}},
                    ],
                },
                {"operationType": {"$in": ["update", "delete", *ENDS]}},
            ]
        }
    },
    {"$project": {"operationType": 1, "documentKey": 1, "updateDescription": 1}},
]
MARKER_NAMES = frozenset(MARKERS)
# Past this many leads named, fingerprinting the whole source costs less than looking each one up.
MAX_NAMED = 100_000
AWAIT_MS = 200  # how long the server waits for more events before a read counts as caught up


class FeedUnavailable(Exception):
    """The change stream cannot say what changed since a position; the reason, in a few words."""


@dataclass(frozen=True)
class FeedRead:
    keys: frozenset[bytes]  # legacy keys of the source documents named, the run's own marks left out
    events: int
    position: dict  # where the next read starts


def is_own_mark(event: Mapping) -> bool:
    """An update that only sets a migration's marks on a nested lead: `_migrated: true` and the
    lead id that only the migration derives from this `_id`, nothing but marker fields."""
    if event.get("operationType") != "update":
        return False
    description = event.get("updateDescription") or {}
    updated, removed = description.get("updatedFields") or {}, description.get("removedFields") or []
    if not (updated.keys() | set(removed)) <= MARKER_NAMES:
        return False
    return updated.get(MIGRATED) is True and updated.get(MIGRATED_LEAD_ID) == lead_id(event["documentKey"]["_id"])


def _stream(db: Database, **options):
    source = db[SOURCE_COLLECTION].with_options(codec_options=CODEC_OPTIONS)
    try:
        return source.watch(PIPELINE, max_await_time_ms=AWAIT_MS, **options)
    except OperationFailure as exc:
        raise FeedUnavailable(_reason(exc)) from None


def _reason(exc: OperationFailure) -> str:
    if exc.code == 40573 or "replica set" in str(exc):
        return "the server has no change streams (not a replica set)"
    if exc.code in (280, 286):
        return "the recorded position is no longer in the oplog"
    return f"the change stream refused the recorded position ({describe_error(exc)})"


def current_position(db: Database) -> dict | None:
    """The stream's position now, or None on a server without change streams."""
    try:
        with _stream(db) as stream:
            stream.try_next()  # the first batch's position (nothing before it is read)
            return stream.resume_token
    except FeedUnavailable:
        return None


def read_feed(db: Database, position: dict, max_named: int = MAX_NAMED) -> FeedRead:
    """Every source `_id` the stream names after `position`, up to now."""
    keys: set[bytes] = set()
    events = 0
    with _stream(db, resume_after=position) as stream:
        try:
            while (event := stream.try_next()) is not None:
                kind = event["operationType"]
                if kind in ENDS:
                    raise FeedUnavailable(f"the source collection's stream ended ({kind})")
                events += 1
                if not is_own_mark(event):
                    keys.add(legacy_key(event["documentKey"]["_id"]))
                    if len(keys) > max_named:
                        raise FeedUnavailable(f"more than {max_named:,} leads changed: a scan costs less")
        except OperationFailure as exc:
            raise FeedUnavailable(_reason(exc)) from None
        return FeedRead(frozenset(keys), events, stream.resume_token)
