"""The trigger of the nested leads' AssetWatcher: `leads_refresh` runs within a minute of a change.

It runs in the triggerer (async: pymongo's async client on the `mongo_default` connection) and
reads the database's change stream through the pipeline a refresh reads (`leadnorm.steps.feed`:
the source collection's changes and the refreshes' read marks, which it passes over). It fires
once nested leads changed and the stream has then been quiet for `quiet_s` seconds, or
`max_wait_s` after the first change: a burst of writes gives one event, and Airflow queues at
most one run of the DAG for it. The pipeline's own writes do not fire it:
its marks touch marker fields only, its normalized leads have no `lead_input`, and a delete fires
only when a normalized lead or a reject came from the deleted `_id` (not when cleanup deleted it).

Where it reads from: where it stopped when it last fired (kept in `migration_feed`), so a
triggerer restart misses nothing; the first time, where the last finished run started reading;
else from now. A position the oplog no longer holds fires at once (something may have changed
unseen). Without change streams (a standalone server) it says so in the triggerer's log and looks
again an hour later: the DAG's time schedule carries on alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from pymongo.errors import OperationFailure

from leadnorm.contract import (
    CLEANED_COLLECTION,
    DEFAULT_DB,
    FEED_COLLECTION,
    KEYS_COLLECTION,
    NESTED_FIELD,
    REJECTS_COLLECTION,
    SOURCE_COLLECTION,
)
from leadnorm.steps.feed import ENDS, MARKER_NAMES, PIPELINE, is_read_mark
from leadnorm.steps.runstate import STATE_ID

WATCHER_ID = "watcher"  # the trigger's document in FEED_COLLECTION: {_id, position}
NO_STREAM_RETRY_S = 3600.0
AWAIT_MS = 1000


class NestedLeadsChanged(BaseEventTrigger):
    """Fires when nested leads of the `mongo_default` database were inserted, changed or deleted."""

    def __init__(self, conn_id: str = "mongo_default", quiet_s: float = 5.0, max_wait_s: float = 20.0):
        super().__init__()
        self.conn_id, self.quiet_s, self.max_wait_s = conn_id, quiet_s, max_wait_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{__name__}.{type(self).__name__}",
            {"conn_id": self.conn_id, "quiet_s": self.quiet_s, "max_wait_s": self.max_wait_s},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.mongo.hooks.mongo import MongoHook
        from asgiref.sync import sync_to_async
        from pymongo import AsyncMongoClient

        hook = await sync_to_async(MongoHook)(mongo_conn_id=self.conn_id)  # the connection, read off the loop
        client = AsyncMongoClient(hook.uri, **hook.extras)
        try:
            db = client[hook.connection.schema or DEFAULT_DB]
            while True:
                fired = await watch_nested_leads(db, self.quiet_s, self.max_wait_s, self.log)
                if fired is not None:
                    yield TriggerEvent(fired)
                    return
                await asyncio.sleep(NO_STREAM_RETRY_S)
        finally:
            await client.close()


async def watch_nested_leads(db, quiet_s: float, max_wait_s: float, log) -> dict | None:
    """Read the stream until nested leads changed and it went quiet; what fired (JSON), after the
    position it stopped at is stored. None when the server has no change streams."""
    loop = asyncio.get_running_loop()
    position = await _start_position(db)
    try:
        stream = await db.watch(PIPELINE, resume_after=position, max_await_time_ms=AWAIT_MS)
    except OperationFailure as exc:
        if position is None:
            log.warning("no change stream on this server (%s): leads_refresh runs on its time schedule alone", exc.code)
            return None
        log.warning("the stored change stream position is gone (%s): firing once, then reading from now", exc.code)
        await _store_position(db, None)
        return {"changes": None, "reason": "position lost"}
    first = last = None
    changes = 0
    async with stream:
        while True:
            event = await stream.try_next()
            now = loop.time()
            if event is not None:
                if event["operationType"] in ENDS:
                    await _store_position(db, None)
                    return {"changes": changes + 1, "reason": f"source collection {event['operationType']}"}
                if first is not None or await _is_a_change(db, event):
                    changes += 1
                    first = first if first is not None else now
                    last = now
            if first is not None and (now - last >= quiet_s or now - first >= max_wait_s):
                await _store_position(db, stream.resume_token)
                log.info("%d changes of nested leads: firing", changes)
                return {"changes": changes, "reason": "nested leads changed"}


async def _is_a_change(db, event) -> bool:
    """Whether an event the pipeline lets through is the application's change of a nested lead."""
    if is_read_mark(event):
        return False  # a refresh making sure it read the stream to the end
    kind, source_id = event["operationType"], event["documentKey"]["_id"]
    if kind == "update":
        description = event.get("updateDescription") or {}
        touched = set(description.get("updatedFields") or {}) | set(description.get("removedFields") or [])
        if touched <= MARKER_NAMES:
            return False  # a mark or an unmark
        nested = {"_id": source_id, NESTED_FIELD: {"$exists": True}}
        return await db[SOURCE_COLLECTION].find_one(nested, {"_id": 1}) is not None
    if kind == "delete":
        if await db[CLEANED_COLLECTION].find_one({"_id": source_id}, {"_id": 1}):
            return False  # cleanup deleted it; its normalized lead stays
        normalized = {"legacy_lead_id": source_id, NESTED_FIELD: {"$exists": False}}
        return bool(
            await db[SOURCE_COLLECTION].find_one(normalized, {"_id": 1})
            or await db[REJECTS_COLLECTION].find_one({"_id": source_id}, {"_id": 1})
        )
    return True  # an insert or replace of a nested lead (`PIPELINE`)


async def _start_position(db) -> dict | None:
    mine = await db[FEED_COLLECTION].find_one({"_id": WATCHER_ID})
    if mine and mine.get("position"):
        return mine["position"]
    state = await db[KEYS_COLLECTION].find_one({"_id": STATE_ID})
    return state.get("position") if state and state.get("complete") else None


async def _store_position(db, position: dict | None) -> None:
    await db[FEED_COLLECTION].update_one({"_id": WATCHER_ID}, {"$set": {"position": position}}, upsert=True)
