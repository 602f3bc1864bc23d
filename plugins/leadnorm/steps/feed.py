"""The source's change stream: how a refresh finds what changed without reading every nested lead.

A run records the stream's position (its resume token) as it starts, before it reads the
source: everything the run did not see comes after that position. Once its last write is done
it reads its own stretch of the stream (`resume_after_run`), and the key store keeps the end of
that stretch and the leads named in it (`leadnorm.steps.runstate`). The next refresh reads the
stream from there and fingerprints only the leads it names and those (`leadnorm.steps.changes`),
so the cost follows the changes, not the source: a migration's hundreds of thousands of writes
are read once, by the migration, not by the first refresh after it. The run's own writes are in
the stream too: its marks are told apart by their shape here (`is_own_mark`), its normalized
documents by having no `lead_input`; whatever else is named is compared by content, so nothing
it wrote passes for a change.

A read is caught up only when it has seen its own mark: it first writes a fresh token to
`migration_feed` and reads the database's stream (the source collection and that one document)
until the token's event arrives. An empty batch proves nothing: a server may answer a read with
no events after examining only part of the oplog (SecantusDB examines 200 entries per read, and
after a 5,000-lead migration the first two dozen reads come back empty), and stopping there
would report a change as none.

The stream can be missing (a standalone server), its position gone from the oplog, the collection
dropped or renamed, or the mark not reached in time: `FeedUnavailable` says which, and the refresh
scans instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import OperationFailure

from leadnorm.contract import (
    FEED_COLLECTION,
    MARKERS,
    MIGRATED,
    MIGRATED_LEAD_ID,
    NESTED_FIELD,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.mongo import CODEC_OPTIONS, describe_error
from leadnorm.steps.runstate import Resume
from leadnorm.transform.ids import lead_id

log = logging.getLogger("leadnorm")

# What names the end of a collection's stream: a refresh then cannot know what it missed.
ENDS = ("drop", "rename", "dropDatabase", "invalidate")
MARK_ID = "read_mark"  # the document of FEED_COLLECTION a read of the stream writes to know it is caught up
# Server side, on the database's stream: inserts and replaces of nested leads (and a replace that
# leaves a nested lead's `_id` holding something that is no normalized lead), every update and
# delete of `leads`, its end (dropped, renamed, replaced by a rename), and the read mark's writes.
# The documents themselves stay on the server.
PIPELINE = [
    {
        "$match": {
            "$or": [
                {
                    "ns.coll": SOURCE_COLLECTION,
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
                    ],
                },
                {"operationType": "rename", "to.coll": SOURCE_COLLECTION},
                {"operationType": {"$in": ["dropDatabase", "invalidate"]}},
                {"ns.coll": FEED_COLLECTION, "documentKey._id": MARK_ID},
            ]
        }
    },
    {
        "$project": {
            "operationType": 1,
            "ns": 1,
            "documentKey": 1,
            "updateDescription": 1,
            "fullDocument.token": 1,
        }
    },
]
MARKER_NAMES = frozenset(MARKERS)
# Past this many leads named, fingerprinting the whole source costs less than looking each one up.
MAX_NAMED = 100_000
AWAIT_MS = 200  # how long the server may wait for more events before it answers a read
CATCH_UP_S = 120.0  # past this, reading to the mark costs more than a scan


class FeedUnavailable(Exception):
    """The change stream cannot say what changed since a position; the reason, in a few words."""


@dataclass(frozen=True)
class FeedRead:
    keys: frozenset[bytes]  # legacy keys of the source documents named, the run's own marks left out
    events: int
    position: dict  # where the next read starts


def is_own_mark(event: Mapping) -> bool:
    """An update that only sets a migration's marks on a nested lead: nothing but marker fields, and
    of those `_migrated` only as true and the lead id only as the one the migration derives from
    this `_id`. (A re-mark after a change sets the fingerprint alone: the server reports only the
    fields whose value changed.)"""
    if event.get("operationType") != "update":
        return False
    description = event.get("updateDescription") or {}
    updated, removed = description.get("updatedFields") or {}, description.get("removedFields") or []
    if removed or not updated or not updated.keys() <= MARKER_NAMES:
        return False
    own_id = lead_id(event["documentKey"]["_id"])
    return updated.get(MIGRATED, True) is True and updated.get(MIGRATED_LEAD_ID, own_id) == own_id


def is_read_mark(event: Mapping) -> bool:
    return (event.get("ns") or {}).get("coll") == FEED_COLLECTION


def _stream(db: Database, **options):
    try:
        return db.with_options(codec_options=CODEC_OPTIONS).watch(PIPELINE, max_await_time_ms=AWAIT_MS, **options)
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


def read_feed(db: Database, position: dict, max_named: int = MAX_NAMED, catch_up_s: float = CATCH_UP_S) -> FeedRead:
    """Every source `_id` the stream names after `position`, up to this read's own mark."""
    token = ObjectId()
    db[FEED_COLLECTION].update_one({"_id": MARK_ID}, {"$set": {"token": token}}, upsert=True)
    keys: set[bytes] = set()
    events = 0
    deadline = time.monotonic() + catch_up_s
    with _stream(db, resume_after=position) as stream:
        try:
            while True:
                event = stream.try_next()
                if event is None:
                    if time.monotonic() > deadline:
                        raise FeedUnavailable(f"the change stream did not catch up within {catch_up_s:.0f} s")
                    continue
                kind = event["operationType"]
                if kind in ENDS:
                    raise FeedUnavailable(f"the source collection's stream ended ({kind})")
                if is_read_mark(event):
                    if _token_of(event) == token:
                        return FeedRead(frozenset(keys), events, stream.resume_token)
                    continue
                events += 1
                if not is_own_mark(event):
                    keys.add(legacy_key(event["documentKey"]["_id"]))
                    if len(keys) > max_named:
                        raise FeedUnavailable(f"more than {max_named:,} leads changed: a scan costs less")
        except OperationFailure as exc:
            raise FeedUnavailable(_reason(exc)) from None


def resume_after_run(db: Database, start: dict | None) -> Resume | None:
    """Where the next refresh resumes, read after a run's last write: the end of the run's own
    stretch of the stream, with the leads named in it still to compare (an application's writes
    while the run read the source). Where that read fails, the run's start, all of it to read again."""
    if start is None:
        return None
    try:
        read = read_feed(db, start)
    except FeedUnavailable as why:
        log.info("change stream: the next refresh reads from this run's start (%s)", why)
        return Resume(start)
    return Resume(read.position, read.keys)


def _token_of(event: Mapping):
    """The token a write of the read mark set: an update names it, the first upsert's insert holds it."""
    updated = (event.get("updateDescription") or {}).get("updatedFields") or {}
    return updated.get("token", (event.get("fullDocument") or {}).get("token"))
