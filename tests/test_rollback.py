"""Rollback against the real server: the source back byte for byte, nothing the migrations wrote
left; altered or truncated backups refused with nothing changed; backup pruning; the DAG."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bson
import pytest
from bson import ObjectId
from bson.raw_bson import RawBSONDocument

from leadnorm.contract import (
    CLEANED_COLLECTION,
    COLLECTION_NAMES,
    FEED_COLLECTION,
    KEYS_COLLECTION,
    NORMALIZED_LEAD,
    REJECTS_COLLECTION,
    ROLLBACK_STASH_COLLECTION,
)
from leadnorm.devtools.seed import seed_leads
from leadnorm.errors import BackupError
from leadnorm.schema import with_defaults
from leadnorm.steps import pipeline
from leadnorm.steps.backup import MANIFEST, backup, iter_backup_documents
from leadnorm.steps.housekeeping import prune_backups
from leadnorm.steps.rollback import check_backup, check_chain, latest_backup, rollback
from leadnorm.steps.runstore import RunFolder

LEADS = 300
TARGETS = [name for name in COLLECTION_NAMES if name != "leads"]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def raw_documents(collection) -> list[bytes]:
    raw = collection.with_options(codec_options=collection.codec_options.with_options(document_class=RawBSONDocument))
    return [doc.raw for doc in raw.find({}, sort=[("_id", 1)])]


def snapshot(db) -> dict:
    """Every document of every collection, raw, plus the indexes of each."""
    return {
        name: (raw_documents(db[name]), sorted(str(i) for i in db[name].list_indexes()))
        for name in sorted(db.list_collection_names())
    }


def migrate(db, tmp_path, name="run"):
    return pipeline.migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / name))


@pytest.fixture
def migrated(db, tmp_path):
    """A migrated database and the backup its migration took first."""
    seed_leads(db, LEADS, seed=11)
    migrate(db, tmp_path)
    return db, latest_backup(tmp_path / "b", db.name)


def test_rollback_restores_the_source_byte_for_byte_and_removes_what_the_migration_wrote(migrated):
    db, folder = migrated
    db["migration_locks"].insert_one({"_id": "leads", "holder": "gone"})
    db[CLEANED_COLLECTION].insert_one({"_id": "x", "lead_id": "y"})
    assert db.leads.count_documents(NORMALIZED_LEAD) > 0 and db[REJECTS_COLLECTION].count_documents({}) > 0

    result = rollback(db, folder)

    assert raw_documents(db.leads) == [doc.raw for doc in iter_backup_documents(folder, "leads")]
    assert db.leads.count_documents(NORMALIZED_LEAD) == 0 == result.normalized_leads_after
    assert db.leads.count_documents({"_migrated": {"$exists": True}}) == 0
    assert set(db.list_collection_names()) == {"leads"}
    assert result.restored == {"leads": LEADS}
    bookkeeping = {REJECTS_COLLECTION, "migration_locks", CLEANED_COLLECTION, KEYS_COLLECTION, FEED_COLLECTION}
    assert set(result.dropped) == {*TARGETS, *bookkeeping}
    assert rollback(db, folder).dropped == {}, "a rerun finds nothing more to do"


def test_rollback_of_a_refresh_brings_the_previous_run_back(migrated, tmp_path):
    """A backup taken before a second run holds the first run's normalized state: it comes back."""
    db, _ = migrated
    first_run, normalized = snapshot(db), db.leads.count_documents(NORMALIZED_LEAD)
    db.leads.insert_many([{"lead_input": {"name": f"New {i}", "email": f"new{i}@example.com"}} for i in range(5)])
    migrate(db, tmp_path, name="refresh")
    before_refresh = latest_backup(tmp_path / "b", db.name)
    assert db.leads.count_documents(NORMALIZED_LEAD) == normalized + 5

    rollback(db, before_refresh)

    after = snapshot(db)
    assert KEYS_COLLECTION not in after, "the key store goes: the next refresh resolves everything and rebuilds it"
    assert FEED_COLLECTION not in after, "and the stream's read marks with it: the next refresh scans"
    del first_run[KEYS_COLLECTION], first_run[FEED_COLLECTION]
    assert after.keys() == first_run.keys()
    for name, (documents, indexes) in first_run.items():
        if name == "leads":  # the 5 new nested leads were in the source when the backup was taken
            continue
        assert after[name] == (documents, indexes), name
    assert after["leads"][1] == first_run["leads"][1], "indexes of leads"
    assert raw_documents(db.leads) == [doc.raw for doc in iter_backup_documents(before_refresh, "leads")]


def test_rollback_keeps_cleanup_records_still_true_of_the_restored_source(migrated, tmp_path):
    db, _ = migrated
    source = db.leads.find_one({"_migrated": True})
    db[CLEANED_COLLECTION].insert_one({"_id": source["_id"], "lead_id": source["_migrated_lead_id"]})
    db.leads.delete_one({"_id": source["_id"]})
    after_cleanup = backup(db, tmp_path / "b", [*pipeline.BACKED_UP, CLEANED_COLLECTION])
    db.leads.insert_one({"_id": source["_id"], "lead_input": {"name": "back"}})  # undone since

    result = rollback(db, after_cleanup)
    assert result.cleaned_kept == 1
    assert db[CLEANED_COLLECTION].find_one({})["_id"] == source["_id"]
    assert db.leads.find_one({"_id": source["_id"]}) is None


def test_locks_can_be_kept_for_a_caller_holding_one(migrated):
    db, folder = migrated
    db["migration_locks"].insert_one({"_id": "leads", "holder": "me"})
    rollback(db, folder, keep_locks=True)
    assert db["migration_locks"].count_documents({}) == 1


def flip_a_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: flip_a_byte(data / "leads.bson", 200), "leads.bson: sha256 differs"),
        (lambda data: truncate(data / "leads.bson"), "leads.bson: "),
        (lambda data: (data / "companies.bson").unlink(), "companies.bson: missing"),
        (lambda data: (data / "leads.metadata.json").unlink(), "leads.metadata.json: missing"),
        (lambda data: (data.parent / MANIFEST).unlink(), "not a complete backup"),
    ],
    ids=["flipped-byte", "truncated", "missing-dump", "missing-metadata", "no-manifest"],
)
def test_a_damaged_backup_is_refused_and_nothing_changes(migrated, tmp_path, damage, message):
    db, _ = migrated
    migrate(db, tmp_path, name="second")  # its backup holds every target collection too
    folder = latest_backup(tmp_path / "b", db.name)
    damage(folder / db.name)
    before = snapshot(db)
    with pytest.raises(BackupError, match=message) as refused:
        rollback(db, folder)
    assert "\n" not in str(refused.value)
    assert snapshot(db) == before


def test_check_backup_counts_documents_and_refuses_partial_and_foreign_backups(migrated, tmp_path):
    db, folder = migrated
    assert check_backup(folder)["collections"]["leads"]["documents"] == LEADS

    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["collections"]["leads"]["documents"] += 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match=f"holds {LEADS} documents, the manifest records {LEADS + 1}"):
        check_backup(folder)

    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir()
    with pytest.raises(BackupError, match="not a complete backup"):
        check_backup(partial)

    other = tmp_path / "other"
    shutil.copytree(folder, other / folder.name)
    manifest["collections"]["leads"]["documents"] -= 1
    manifest["database"] = "elsewhere"
    (other / folder.name / db.name).rename(other / folder.name / "elsewhere")
    (other / folder.name / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="a backup of database 'elsewhere'"):
        rollback(db, other / folder.name)


def fake_backup(backup_dir: Path, db_name: str, stamp: str, collections: list[str]) -> Path:
    folder = backup_dir / f"{db_name}-{stamp}"
    (folder / db_name).mkdir(parents=True)
    stats = {"documents": 0, "bytes": 0, "sha256": ""}
    (folder / MANIFEST).write_text(json.dumps({"database": db_name, "collections": dict.fromkeys(collections, stats)}))
    return folder


def test_latest_backup_ignores_partial_and_other_databases(tmp_path):
    with pytest.raises(BackupError, match="no complete backup of database 'crm'"):
        latest_backup(tmp_path, "crm")
    fake_backup(tmp_path, "crm", "20260101T000000Z", ["leads"])
    newest = fake_backup(tmp_path, "crm", "20260102T000000Z-2", ["leads"])
    fake_backup(tmp_path, "crm", "20260102T000000Z", ["leads"])
    fake_backup(tmp_path, "crm-eu", "20260301T000000Z", ["leads"])
    (tmp_path / "crm-20260301T000000Z.partial").mkdir()
    assert latest_backup(tmp_path, "crm") == newest


def test_prune_keeps_the_newest_and_the_one_before_the_first_migration(tmp_path):
    migrated_state = ["leads", "companies", REJECTS_COLLECTION]
    older = fake_backup(tmp_path, "crm", "20251231T000000Z", ["leads", "companies"])  # restored from elsewhere
    first = fake_backup(tmp_path, "crm", "20260101T000000Z", ["leads"])
    middle = [fake_backup(tmp_path, "crm", f"202601{day:02d}T000000Z", migrated_state) for day in range(2, 8)]
    later_pre_migration = fake_backup(tmp_path, "crm", "20260108T000000Z", ["leads"])  # after a rollback
    newest = fake_backup(tmp_path, "crm", "20260109T000000Z", migrated_state)
    other_db = fake_backup(tmp_path, "crm-eu", "20250101T000000Z", ["leads"])
    stale_partial = tmp_path / "crm-20250101T000000Z.partial"
    fresh_partial = tmp_path / "crm-20260110T000000Z.partial"
    for partial in (stale_partial, fresh_partial):
        partial.mkdir()
    day_and_more = time.time() - 25 * 3600
    os.utime(stale_partial, (day_and_more, day_and_more))

    removed = prune_backups(tmp_path, "crm", keep=2)

    assert removed == [older, *middle, stale_partial]
    assert sorted(tmp_path.iterdir()) == sorted([first, later_pre_migration, newest, other_db, fresh_partial])
    assert prune_backups(tmp_path, "crm", keep=0) == [later_pre_migration, newest]
    assert prune_backups(tmp_path, "crm", keep=0) == []
    assert first.exists()


@pytest.mark.airflow
def test_dag_rolls_back_to_the_latest_backup(migrated, mongo_uri, tmp_path):
    db, folder = migrated
    host_port = mongo_uri.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    env = {
        **os.environ,
        "AIRFLOW_CONN_MONGO_DEFAULT": f"mongo://{host_port}/{db.name}",
        "LEADNORM_STAGING_DIR": str(tmp_path / "staging"),
        "LEADNORM_BACKUP_DIR": str(tmp_path / "b"),
        "LEADNORM_REPORTS_DIR": str(tmp_path / "reports"),
    }
    out = subprocess.run(
        [AIRFLOW, "dags", "test", "leads_rollback"], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert raw_documents(db.leads) == [doc.raw for doc in iter_backup_documents(folder, "leads")]
    assert set(db.list_collection_names()) - {"migration_locks"} == {"leads"}
    assert db.migration_locks.count_documents({}) == 0, "the DAG's lock outlived the rollback"


class Killed(BaseException):
    """What a kill does to a step: it stops where it is, and nothing after it runs."""


def kill(*_args, **_kwargs):
    raise Killed


def dropped_then_killed(db, folder, name, *_args, **_kwargs):
    """A restore killed at its worst moment: the collection dropped, nothing inserted yet."""
    db.drop_collection(name)
    raise Killed


def application_data(db) -> dict[str, list]:
    """An uploaded lead with a company and a persona of its own: written after the backup."""
    company = {"_id": ObjectId(), "name": "Uploaded Co", "domain": "uploaded.example"}
    persona = {"_id": ObjectId(), "full_name": "Una Upload", "email": "una@uploaded.example"}
    lead = {
        "_id": ObjectId(),
        "name": "Una Upload",
        "company_id": company["_id"],
        "persona_id": persona["_id"],
        "status": "uploaded",
        "extra": {"upload": {"file": "u.csv", "line": 2}},
    }
    for collection, document in (("companies", company), ("personas", persona), ("leads", lead)):
        db[collection].insert_one(with_defaults(collection, document))
    return {"companies": [company], "personas": [persona], "leads": [lead]}


@pytest.mark.parametrize(
    "where, patched",
    [
        ("after stashing, before the restore", ("restore_collection", kill)),
        ("in the middle of the restore", ("restore_collection", dropped_then_killed)),
        ("before putting the stash back", ("put_back", kill)),
        ("while putting the stash back", ("insert_missing", kill)),
    ],
)
def test_a_rollback_killed_anywhere_and_rerun_loses_no_application_data(migrated, monkeypatch, where, patched):
    db, folder = migrated
    uploaded = application_data(db)
    source = [doc for doc in iter_backup_documents(folder, "leads")]
    monkeypatch.setattr(f"leadnorm.steps.rollback.{patched[0]}", patched[1])
    with pytest.raises(Killed):
        rollback(db, folder)
    monkeypatch.undo()

    result = rollback(db, folder)
    assert result.application_leads_kept == 1, where
    for collection, documents in uploaded.items():
        for document in documents:
            assert db[collection].find_one({"_id": document["_id"]}) == document, (where, collection)
    assert sorted(raw_documents(db.leads)) == sorted([doc.raw for doc in source] + [bson.encode(uploaded["leads"][0])])
    assert db.leads.count_documents(NORMALIZED_LEAD) == 0
    assert ROLLBACK_STASH_COLLECTION not in db.list_collection_names()


# --- increments: a refresh of a scope backs up what it may change; a rollback replays the chain ---


def data_state(db) -> dict:
    """What a rollback restores byte for byte: the nine collections and the rejects, with indexes."""
    return {name: value for name, value in snapshot(db).items() if name in {*COLLECTION_NAMES, REJECTS_COLLECTION}}


def change_one_lead(db, n: int) -> dict[str, object]:
    """What the application does between two refreshes: re-research one lead, add one, delete one;
    returns their ids."""
    researched = db.leads.find({"lead_input": {"$exists": True}, "research": {"$type": "object"}}).sort("_id", 1)
    changed = researched[n]["_id"]
    gone = db.leads.find({"lead_input": {"$exists": True}, "_migrated": True}).sort("_id", -1)[n]["_id"]
    assert gone != changed
    db.leads.update_one({"_id": changed}, {"$set": {"research.DetectedSignals": [{"type": f"t{n}"}]}})
    added = db.leads.insert_one(
        {"lead_input": {"name": f"Added {n}", "email": f"added{n}@example.com", "company": "Acme"}}
    ).inserted_id
    db.leads.delete_one({"_id": gone})
    return {"changed": changed, "added": added, "gone": gone}


@pytest.fixture
def three_refreshes(migrated, tmp_path):
    """A migrated database refreshed three times, each after a round of the application's writes:
    the state before each refresh, the increment each took, and the ids each round wrote."""
    db, _ = migrated
    before, increments, rounds = [], [], []
    for n in range(3):
        rounds.append(change_one_lead(db, n))
        before.append(data_state(db))
        _, folder, report = pipeline.refresh(
            db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / f"refresh-{n}")
        )
        assert report.ok, report.problems()
        increments.append(latest_backup(tmp_path / "b", db.name))
    return db, before, increments, rounds


def but_the_leads(state: dict, ids: set) -> dict:
    """`state` without the documents of `leads` with those ids."""
    documents, indexes = state["leads"]
    kept = [raw for raw in documents if RawBSONDocument(raw)["_id"] not in ids]
    return {**state, "leads": (kept, indexes)}


def test_a_refresh_of_a_scope_backs_up_only_what_it_may_change(three_refreshes, tmp_path):
    db, _, increments, _ = three_refreshes
    backups = sorted((tmp_path / "b").iterdir())
    assert backups[1:] == increments
    manifests = [check_backup(folder) for folder in backups]
    assert [m["kind"] for m in manifests] == ["full", "increment", "increment", "increment"]
    assert [m["parent"] for m in manifests] == [None, *(folder.name for folder in backups[:-1])]
    for manifest in manifests[1:]:
        assert set(manifest["collections"]) == {*COLLECTION_NAMES, REJECTS_COLLECTION} == set(manifest["touched"])
        backed_up = manifest["collections"]["leads"]["documents"]
        assert 2 <= backed_up < LEADS / 4, "the scope's leads and theirs, not the whole source"
        assert manifest["touched"]["leads"]["documents"] >= backed_up  # a new lead's ids: touched, nothing before


def test_rollback_of_the_last_refresh_is_byte_identical(three_refreshes):
    db, before, increments, _ = three_refreshes
    result = rollback(db, increments[-1])
    assert data_state(db) == before[-1]
    assert result.replayed == [f"{increments[-1].name} (increment)"] and result.set_aside == []
    assert KEYS_COLLECTION in result.dropped, "the next refresh resolves everything and rebuilds the key store"


def test_rollback_over_a_chain_of_three_refreshes_replays_them_in_reverse(three_refreshes):
    """Every document the runs wrote since the backup is back byte for byte; the nested leads the
    application wrote since stay as it wrote them (a rollback undoes the runs, not the application),
    with the marks they had then: the next refresh migrates them again."""
    db, before, increments, rounds = three_refreshes
    result = rollback(db, increments[0])
    later = {lead_id for written in rounds[1:] for lead_id in written.values()}
    assert but_the_leads(data_state(db), later) == but_the_leads(before[0], later)
    for n, written in enumerate(rounds[1:], start=1):
        assert db.leads.find_one({"_id": written["changed"]})["research"]["DetectedSignals"] == [{"type": f"t{n}"}]
        assert db.leads.find_one({"_id": written["added"]}, {"_migrated": 1}) == {"_id": written["added"]}
        assert db.leads.find_one({"_id": written["gone"]}) is None
    assert result.replayed == [f"{folder.name} (increment)" for folder in reversed(increments)]
    assert result.set_aside == [str(folder) + ".undone" for folder in increments[1:]]
    assert latest_backup(increments[0].parent, db.name) == increments[0], "the undone runs' backups: in no chain"
    again = data_state(db)
    assert rollback(db, increments[0]).replayed == [f"{increments[0].name} (increment)"]
    assert data_state(db) == again, "a rerun changes nothing"


def test_a_refresh_after_a_rollback_resolves_the_whole_source(three_refreshes, tmp_path):
    db, _, increments, _ = three_refreshes
    rollback(db, increments[1])
    _, folder, report = pipeline.refresh(
        db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "after")
    )
    assert report.ok and folder.read_result("scope") is None, "no trusted key store after a rollback: the whole source"
    manifest = check_backup(latest_backup(tmp_path / "b", db.name))
    assert manifest["kind"] == "full" and manifest["parent"] == increments[1].name, "its own run undone, not it"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda increments: shutil.rmtree(increments[1]), "a broken chain: its parent is"),
        (lambda increments: flip_a_byte(increments[2] / "touched" / "leads.bson", 10), "touched/leads.bson: sha256"),
        (lambda increments: truncate(next((increments[1]).glob("*/personas.bson"))), "personas.bson: "),
    ],
    ids=["missing-link", "altered-ids", "truncated-documents"],
)
def test_a_broken_chain_is_refused_before_anything_changes(three_refreshes, damage, message):
    db, _, increments, _ = three_refreshes
    damage(increments)
    now = snapshot(db)
    with pytest.raises(BackupError, match=message) as refused:
        rollback(db, increments[0])
    assert "\n" not in str(refused.value)
    assert snapshot(db) == now


def test_retention_keeps_every_chain_restorable(three_refreshes, tmp_path):
    db, before, increments, _ = three_refreshes
    pre_migration = sorted((tmp_path / "b").iterdir())[0]
    removed = prune_backups(tmp_path / "b", db.name, keep=2)
    assert removed == [increments[0]]
    assert sorted((tmp_path / "b").iterdir()) == [pre_migration, *increments[1:]]
    for folder in [pre_migration, *increments[1:]]:
        check_chain(folder)
    rollback(db, increments[2])
    assert data_state(db) == before[2]


def test_a_rollback_killed_in_the_middle_of_a_chain_and_rerun_ends_where_it_should(three_refreshes, monkeypatch):
    """Killed at its worst moment: the second increment's first collection deleted, nothing put back."""
    db, _, increments, _ = three_refreshes
    from leadnorm.steps import rollback as module

    read = module.iter_backup_documents

    def killed_in_the_second(folder, name):
        if folder == increments[1]:
            raise Killed
        return read(folder, name)

    monkeypatch.setattr(module, "iter_backup_documents", killed_in_the_second)
    with pytest.raises(Killed):
        rollback(db, increments[0])
    killed = data_state(db)
    monkeypatch.undo()
    rollback(db, increments[0])
    done = data_state(db)
    assert done != killed
    for folder in increments[1:]:  # as one rollback that was never killed would have left it
        folder.with_name(folder.name + ".undone").rename(folder)
    rollback(db, increments[0])
    assert data_state(db) == done


def test_a_refresh_killed_in_its_load_is_undone_by_its_increment(migrated, tmp_path, monkeypatch):
    """The backup comes before the first write: a refresh that died half way through its load is
    rolled back by the increment it took, byte for byte."""
    db, _ = migrated
    change_one_lead(db, 0)
    before = data_state(db)
    real_load = pipeline.load_collection

    def load_then_die(db_, name, rows, total, **kw):
        if name == "research_runs":
            raise Killed
        return real_load(db_, name, rows, total, **kw)

    monkeypatch.setattr(pipeline, "load_collection", load_then_die)
    with pytest.raises(Killed):
        pipeline.refresh(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "killed"))
    monkeypatch.undo()
    assert data_state(db) != before
    increment = latest_backup(tmp_path / "b", db.name)
    assert check_backup(increment)["kind"] == "increment"
    rollback(db, increment)
    assert data_state(db) == before
