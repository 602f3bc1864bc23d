"""The AssetWatcher's trigger against the real server, with pymongo's async client: it fires on the
application's inserts, updates and deletes of nested leads, once for a burst, never for the
pipeline's own writes, and resumes where it fired last after a restart."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pymongo import AsyncMongoClient

from leadnorm.contract import FEED_COLLECTION, NESTED_LEAD
from leadnorm.devtools.seed import generate_leads
from leadnorm.steps.changes import detect_changes
from leadnorm.steps.pipeline import migrate, refresh
from leadnorm.steps.runstore import RunFolder
from leadnorm.triggers import WATCHER_ID, NestedLeadsChanged, watch_nested_leads

log = logging.getLogger("test.triggers")
QUIET_S, MAX_WAIT_S = 1.0, 5.0


def watch(mongo_uri, name, write=None, timeout=8.0):
    """What the trigger fires within `timeout` seconds (None: nothing) while `write()` runs in a
    thread once the stream is open."""

    async def main():
        client = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            watching = asyncio.create_task(watch_nested_leads(client[name], QUIET_S, MAX_WAIT_S, log))
            await asyncio.sleep(1.5)  # the stream is open
            if write is not None:
                await asyncio.to_thread(write)
            try:
                return await asyncio.wait_for(watching, timeout)
            except TimeoutError:
                return None
        finally:
            await client.close()

    return asyncio.run(main())


@pytest.fixture
def migrated(db, tmp_path):
    leads = list(generate_leads(1100, seed=31))
    db.leads.insert_many(leads[:60])
    migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "first"))
    return db, leads[60:]


def a_migrated_lead(db):
    return db.leads.find_one({**NESTED_LEAD, "_migrated": True})


def test_the_pipelines_own_writes_do_not_fire_it(migrated, mongo_uri, tmp_path):
    db, rest = migrated
    assert watch(mongo_uri, db.name) is None  # the migration's marks and normalized leads: no change
    db.leads.insert_many(rest[:3])
    refresh(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "r"))
    db[FEED_COLLECTION].delete_many({})  # read from where the refresh started: after the inserts, its writes only
    assert watch(mongo_uri, db.name) is None
    assert watch(mongo_uri, db.name, write=lambda: detect_changes(db)) is None  # a refresh's read mark


@pytest.mark.parametrize("change", ["insert", "update", "delete"])
def test_a_change_of_a_nested_lead_fires_it(migrated, mongo_uri, change):
    db, rest = migrated
    lead = a_migrated_lead(db)
    write = {
        "insert": lambda: db.leads.insert_one(rest[0]),
        "update": lambda: db.leads.update_one({"_id": lead["_id"]}, {"$set": {"lead_input.email": "NEW@x.io"}}),
        "delete": lambda: db.leads.delete_one({"_id": lead["_id"]}),
    }[change]
    fired = watch(mongo_uri, db.name, write)
    assert fired == {"changes": 1, "reason": "nested leads changed"}


def test_a_burst_of_a_thousand_writes_fires_once(migrated, mongo_uri):
    db, rest = migrated

    def burst():
        for start in range(0, 1000, 100):
            db.leads.insert_many(rest[start : start + 100])

    fired = watch(mongo_uri, db.name, burst, timeout=30.0)
    assert fired is not None and fired["changes"] == 1000
    assert watch(mongo_uri, db.name) is None  # the position it fired at is stored: nothing left


def test_after_a_restart_it_resumes_where_it_fired(migrated, mongo_uri):
    db, rest = migrated
    assert watch(mongo_uri, db.name, lambda: db.leads.insert_one(rest[0])) is not None
    stored = db[FEED_COLLECTION].find_one({"_id": WATCHER_ID})["position"]
    db.leads.insert_one(rest[1])  # while no trigger runs
    fired = watch(mongo_uri, db.name)
    assert fired is not None and fired["changes"] == 1
    assert db[FEED_COLLECTION].find_one({"_id": WATCHER_ID})["position"] != stored


def test_the_trigger_serializes_to_its_settings_only():
    classpath, kwargs = NestedLeadsChanged(quiet_s=3.0).serialize()
    assert classpath == "leadnorm.triggers.NestedLeadsChanged"
    assert kwargs == {"conn_id": "mongo_default", "quiet_s": 3.0, "max_wait_s": 20.0}  # no URI, no secret
