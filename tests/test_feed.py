"""The change feed on the real server (SecantusDB is a single-node replica set): a refresh finds
what changed from the change stream alone, sees through the pipeline's own writes, and falls back
to the fingerprint scan wherever the stream cannot be trusted, saying which it used."""

from __future__ import annotations

import pytest

from leadnorm.contract import KEYS_COLLECTION, NESTED_LEAD, legacy_key
from leadnorm.devtools.seed import generate_leads
from leadnorm.steps.changes import CHANGE_STREAM, SCAN, detect_changes
from leadnorm.steps.feed import FeedUnavailable, current_position, is_own_mark, read_feed
from leadnorm.steps.pipeline import migrate, refresh
from leadnorm.steps.rollback import latest_backup, rollback
from leadnorm.steps.runstate import STATE_ID, set_key_store_complete, trusted_resume
from leadnorm.steps.runstore import RunFolder
from leadnorm.transform.ids import lead_id


def run(db, tmp_path, name, fn=migrate):
    return fn(db, backup_dir=tmp_path / "backups", skip_validation=True, run=RunFolder(tmp_path / name))


def test_stream_detection_can_be_turned_off(migrated, monkeypatch):
    db, _ = migrated
    monkeypatch.setenv("LEADNORM_CHANGE_STREAM", "0")
    changes = detect_changes(db)
    assert changes.detection.startswith(SCAN) and "LEADNORM_CHANGE_STREAM" in changes.detection
    assert changes.looked_at == 120


@pytest.fixture
def migrated(db, tmp_path):
    leads = list(generate_leads(160, seed=29))
    db.leads.insert_many(leads[:120])
    _, report = run(db, tmp_path, "first")
    assert report.ok, report.problems()
    return db, leads[120:]


def nested(db, n=3):
    return list(db.leads.find({**NESTED_LEAD, "_migrated": True}).sort("_id", 1).limit(n))


def test_a_migration_records_the_position_and_its_own_writes_are_no_change(migrated):
    db, _ = migrated
    assert trusted_resume(db) is not None
    changes = detect_changes(db)
    assert changes.by_stream and not changes.any
    assert changes.looked_at == 0  # 120 marks and 120 normalized leads written after the position: none named


def test_inserts_updates_replaces_and_deletes_are_found_from_the_stream(migrated):
    db, rest = migrated
    first, second, third = nested(db)
    db.leads.insert_many(rest[:2])
    db.leads.update_one({"_id": first["_id"]}, {"$set": {"research.DetectedSignals": []}})  # updated_at untouched
    replaced = {**third, "lead_input": {**third["lead_input"], "title": "Chief Replacer"}}  # read, modify, write
    db.leads.replace_one({"_id": third["_id"]}, replaced)
    db.leads.delete_one({"_id": second["_id"]})
    changes = detect_changes(db)
    assert changes.detection == CHANGE_STREAM
    assert changes.new == {legacy_key(lead["_id"]) for lead in rest[:2]}
    assert changes.changed == {legacy_key(first["_id"]), legacy_key(third["_id"])}
    assert changes.gone == {legacy_key(second["_id"])}
    assert changes.looked_at == 4  # two new, two changed: the stream named nothing else


def test_after_a_refresh_the_stream_finds_nothing_and_an_idle_refresh_moves_the_position(migrated, tmp_path):
    db, rest = migrated
    db.leads.insert_many(rest[:5])
    db.leads.update_one({"_id": nested(db, 1)[0]["_id"]}, {"$set": {"lead_input.title": "VP Refreshing"}})
    changes, _, report = run(db, tmp_path, "refresh", fn=refresh)
    assert changes.by_stream and len(changes.new) == 5 and len(changes.changed) == 1 and report.ok
    after = detect_changes(db)
    assert after.by_stream and not after.any
    before = trusted_resume(db)
    idle, folder, _ = run(db, tmp_path, "idle", fn=refresh)
    assert folder is None and not idle.any
    assert trusted_resume(db) != before and detect_changes(db).looked_at == 0


def test_the_migrations_own_marks_are_told_apart_by_their_shape():
    source_id = 42
    mark = {
        "operationType": "update",
        "documentKey": {"_id": source_id},
        "updateDescription": {"updatedFields": {"_migrated": True, "_migrated_lead_id": lead_id(source_id)}},
    }
    assert is_own_mark(mark)
    forged = {**mark, "updateDescription": {"updatedFields": {"_migrated": True, "_migrated_lead_id": lead_id(43)}}}
    assert not is_own_mark(forged)
    with_data = {**mark, "updateDescription": {"updatedFields": {**mark["updateDescription"]["updatedFields"], "x": 1}}}
    assert not is_own_mark(with_data)
    remark = {**mark, "updateDescription": {"updatedFields": {"_migrated_fingerprint": b"after a change"}}}
    assert is_own_mark(remark)  # a re-mark: the server names only the fields whose value changed
    unmarked = {**mark, "updateDescription": {"updatedFields": {}, "removedFields": ["_migrated"]}}
    assert not is_own_mark(unmarked)


def test_a_died_run_a_lost_position_and_a_rollback_fall_back_to_the_scan(migrated, tmp_path):
    db, rest = migrated
    db.leads.insert_many(rest[:1])

    set_key_store_complete(db, False)  # what a run killed between its first and its last write leaves
    died = detect_changes(db)
    assert died.detection.startswith(SCAN) and "no trusted position" in died.detection
    assert died.looked_at == 121 and len(died.new) == 1

    db[KEYS_COLLECTION].update_one({"_id": STATE_ID}, {"$set": {"complete": True, "position": {"_data": "00"}}})
    lost = detect_changes(db)
    assert lost.detection.startswith(SCAN) and "refused the recorded position" in lost.detection
    assert lost.looked_at == 121 and len(lost.new) == 1 and lost.position is not None

    run(db, tmp_path, "refresh", fn=refresh)
    rollback(db, latest_backup(tmp_path / "backups", db.name))
    undone = detect_changes(db)
    assert undone.detection.startswith(SCAN) and len(undone.new) == 1  # the store went with the rollback


def test_a_read_goes_on_past_empty_batches_to_its_own_mark(migrated):
    """The server examines a bounded part of the oplog per read: writes its pipeline filters out
    give empty batches long before the end, and an empty batch is no proof of having caught up."""
    db, rest = migrated
    position = current_position(db)
    db.leads.insert_many(  # no lead of either kind: only a test writes such, past the validator
        [{"_id": f"unrelated-{n}", "note": "no nested lead"} for n in range(1500)], bypass_document_validation=True
    )
    db.leads.insert_many(rest[:1])
    read = read_feed(db, position)
    assert read.keys == {legacy_key(rest[0]["_id"])} and read.events == 1
    assert read_feed(db, read.position).keys == frozenset()  # caught up: the next read starts after it


def test_a_read_that_cannot_catch_up_in_time_gives_up_the_stream(migrated):
    db, _ = migrated
    position = current_position(db)
    db.leads.insert_many(  # no lead of either kind: only a test writes such, past the validator
        [{"_id": f"unrelated-{n}", "note": "no nested lead"} for n in range(1500)], bypass_document_validation=True
    )
    with pytest.raises(FeedUnavailable, match="did not catch up within 0 s"):
        read_feed(db, position, catch_up_s=0)


def test_more_changes_than_a_lookup_is_worth_give_up_the_stream(migrated):
    db, rest = migrated
    position = current_position(db)
    db.leads.insert_many(rest[:30])
    assert len(read_feed(db, position).keys) == 30
    with pytest.raises(Exception, match="more than 10 leads changed"):
        read_feed(db, position, max_named=10)


def test_a_refresh_killed_half_way_then_a_rerun_ends_as_from_scratch(migrated, tmp_path, monkeypatch, mongo_uri):
    """A refresh read the stream and died in its load: what changed before it, and while the
    store was not to be trusted, all reaches the normalized collections on the next refresh."""
    from test_refresh import canonical, from_scratch

    from leadnorm.steps import pipeline

    db, rest = migrated
    db.leads.insert_many(rest[:3])
    db.leads.update_one({"_id": nested(db, 1)[0]["_id"]}, {"$set": {"lead_input.title": "VP Interrupted"}})
    real_load = pipeline.load_collection

    def load_then_die(db, name, rows, total, **kw):
        if name == "research_runs":
            raise KeyboardInterrupt("killed")
        return real_load(db, name, rows, total, **kw)

    monkeypatch.setattr(pipeline, "load_collection", load_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(db, tmp_path, "killed", fn=refresh)
    monkeypatch.setattr(pipeline, "load_collection", real_load)
    db.leads.insert_many(rest[3:5])  # the application wrote on meanwhile
    changes, _, report = run(db, tmp_path, "rerun", fn=refresh)
    assert changes.detection.startswith(SCAN) and "no trusted position" in changes.detection
    assert len(changes.new) == 5 and report.ok
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)
    after = detect_changes(db)
    assert after.by_stream and not after.any  # the rerun left a position to trust again


def test_a_change_while_a_run_reads_is_left_pending_for_the_next_refresh(migrated, tmp_path, monkeypatch, mongo_uri):
    """A run reads its own stretch of the stream after its last write, so the next refresh starts
    after it; a lead the application changed after the run had read it is kept pending, and found."""
    from test_refresh import canonical, from_scratch

    from leadnorm.steps import pipeline

    db, rest = migrated
    first = nested(db, 1)[0]
    db.leads.insert_many(rest[:1])
    real_resolve = pipeline.resolve_step

    def change_then_resolve(*args, **kwargs):  # after extract read the source
        db.leads.update_one({"_id": first["_id"]}, {"$set": {"lead_input.title": "VP Changed Mid-Run"}})
        return real_resolve(*args, **kwargs)

    monkeypatch.setattr(pipeline, "resolve_step", change_then_resolve)
    changes, _, report = run(db, tmp_path, "refresh", fn=refresh)
    monkeypatch.setattr(pipeline, "resolve_step", real_resolve)
    assert changes.new == {legacy_key(rest[0]["_id"])} and not changes.changed and report.ok
    assert trusted_resume(db).pending == {legacy_key(first["_id"])}
    after = detect_changes(db)
    assert after.by_stream and after.changed == {legacy_key(first["_id"])} and after.looked_at == 1
    run(db, tmp_path, "next", fn=refresh)
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)
    assert not detect_changes(db).any and legacy_key(first["_id"]) not in trusted_resume(db).pending
