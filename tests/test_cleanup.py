"""Cleanup against the real server: refused without the database's name, a passing verification
or a good backup; otherwise exactly the migrated nested leads go, each recorded first; the DAG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bson
import pytest
from bson import ObjectId

from leadnorm.contract import CLEANED_COLLECTION, NESTED_LEAD, NORMALIZED_LEAD, REJECTS_COLLECTION
from leadnorm.devtools.seed import seed_leads
from leadnorm.errors import BackupError, LeadnormError
from leadnorm.source import fingerprint
from leadnorm.steps import pipeline
from leadnorm.steps.cleanup import cleanup, run_cleanup
from leadnorm.steps.rollback import latest_backup, rollback
from leadnorm.steps.runstore import RunFolder
from leadnorm.steps.verify import VerifyReport
from leadnorm.transform.ids import lead_id

LEADS = 200
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture
def migrated(db, tmp_path):
    seed_leads(db, LEADS, seed=5)
    _, report = pipeline.migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    assert report.ok, report.problems()
    return db


def everything(db) -> dict:
    return {name: list(db[name].find({}, sort=[("_id", 1)])) for name in sorted(db.list_collection_names())}


def test_cleanup_deletes_exactly_the_migrated_nested_leads_and_records_them(migrated, tmp_path):
    db = migrated
    migrated_ids = {d["_id"]: d["_migrated_lead_id"] for d in db.leads.find({"_migrated": True})}
    rejected_ids = {d["_id"] for d in db[REJECTS_COLLECTION].find()}
    normalized = db.leads.count_documents(NORMALIZED_LEAD)
    assert migrated_ids and rejected_ids

    result = run_cleanup(db, db.name, backup_dir=tmp_path / "b")

    assert result.deleted == len(migrated_ids) and result.not_in_backup == 0
    assert {d["_id"] for d in db.leads.find(NESTED_LEAD)} == rejected_ids
    assert db.leads.count_documents(NORMALIZED_LEAD) == normalized
    assert {d["_id"]: d["lead_id"] for d in db[CLEANED_COLLECTION].find()} == migrated_ids

    rollback(db, result.backup_folder)  # the cleanup's own backup undoes it
    assert {d["_id"] for d in db.leads.find({"_migrated": True})} == set(migrated_ids)
    assert CLEANED_COLLECTION not in db.list_collection_names()


def test_a_second_cleanup_verifies_and_deletes_nothing(migrated, tmp_path):
    db = migrated
    run_cleanup(db, db.name, backup_dir=tmp_path / "b")
    assert run_cleanup(db, db.name, backup_dir=tmp_path / "b").deleted == 0


def test_cleanup_is_refused_without_the_database_name(migrated, tmp_path):
    db = migrated
    before = everything(db)
    for wrong in ("", db.name.upper(), "jazon_ai_sdr"):
        with pytest.raises(LeadnormError, match="confirm with that name"):
            run_cleanup(db, wrong, backup_dir=tmp_path / "refused")
    assert everything(db) == before
    assert not (tmp_path / "refused").exists(), "a refused cleanup takes no backup either"


def test_cleanup_is_refused_when_verification_fails(migrated, tmp_path):
    db = migrated
    db.companies.delete_one({"_id": db.leads.find_one({"company_id": {"$exists": True}})["company_id"]})
    before = everything(db)
    with pytest.raises(LeadnormError, match="verification did not pass") as refused:
        run_cleanup(db, db.name, backup_dir=tmp_path / "b")
    assert "\n" not in str(refused.value) and "companies" in str(refused.value)
    assert everything(db) == before


def test_cleanup_is_refused_without_a_good_backup(migrated, tmp_path):
    db = migrated
    ok = VerifyReport()
    assert ok.ok
    folder = latest_backup(tmp_path / "b", db.name)
    before = everything(db)
    with pytest.raises(LeadnormError, match="no backup"):
        cleanup(db, db.name, backup_folder=None, verify_report=ok)
    with pytest.raises(LeadnormError, match="verification did not pass"):
        cleanup(db, db.name, backup_folder=folder, verify_report=None)
    dump = folder / db.name / "leads.bson"
    dump.write_bytes(dump.read_bytes()[:-1])
    with pytest.raises(BackupError, match="leads.bson"):
        cleanup(db, db.name, backup_folder=folder, verify_report=ok)
    assert everything(db) == before


def test_leads_migrated_after_the_backup_are_kept(migrated, tmp_path):
    db = migrated
    folder = latest_backup(tmp_path / "b", db.name)  # taken before the migration: holds every nested lead
    late = {"_id": ObjectId(), "lead_input": {"name": "Late"}}
    marks = {
        "_migrated": True,
        "_migrated_lead_id": lead_id(late["_id"]),
        "_migrated_fingerprint": fingerprint(bson.encode(late)),
    }
    db.leads.insert_one({**late, **marks})
    result = cleanup(db, db.name, backup_folder=folder, verify_report=VerifyReport())
    assert result.not_in_backup == 1
    assert db.leads.find_one({"_id": late["_id"]}) is not None
    assert db[CLEANED_COLLECTION].find_one({"_id": late["_id"]}) is None


def test_only_leads_the_migration_marked_and_unchanged_since_are_deleted(migrated, tmp_path):
    """An application's own `_migrated: true` marks nothing, and a lead re-researched after it was
    migrated (its content no longer what the marks record) waits for the next refresh."""
    db = migrated
    folder = latest_backup(tmp_path / "b", db.name)
    changed = db.leads.find_one({**NESTED_LEAD, "_migrated": True, "research": {"$type": "object"}})
    db.leads.update_one({"_id": changed["_id"]}, {"$set": {"research.note": "re-researched"}})
    foreign = db.leads.find_one({**NESTED_LEAD, "_migrated": True, "_id": {"$ne": changed["_id"]}})
    db.leads.update_one({"_id": foreign["_id"]}, {"$set": {"_migrated_lead_id": "the application's"}})
    result = cleanup(db, db.name, backup_folder=folder, verify_report=VerifyReport())
    assert result.deleted == db[CLEANED_COLLECTION].count_documents({}) > 0
    rejected = {doc["_id"] for doc in db[REJECTS_COLLECTION].find()}
    assert {doc["_id"] for doc in db.leads.find(NESTED_LEAD)} == {changed["_id"], foreign["_id"], *rejected}


def dags_test(mongo_uri: str, db_name: str, tmp_path: Path, conf: str):
    host_port = mongo_uri.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    env = {
        **os.environ,
        "AIRFLOW_CONN_MONGO_DEFAULT": f"mongo://{host_port}/{db_name}",
        "LEADNORM_STAGING_DIR": str(tmp_path / "staging"),
        "LEADNORM_BACKUP_DIR": str(tmp_path / "dag-backups"),
        "LEADNORM_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return subprocess.run(
        [AIRFLOW, "dags", "test", "leads_cleanup", "--conf", conf],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.airflow
def test_dag_refuses_a_wrong_confirm_then_cleans_up(migrated, mongo_uri, tmp_path):
    db = migrated
    nested = db.leads.count_documents(NESTED_LEAD)
    refused = dags_test(mongo_uri, db.name, tmp_path, '{"confirm": "production"}')
    assert refused.returncode != 0
    assert "confirm with that name" in refused.stdout + refused.stderr
    assert db.leads.count_documents(NESTED_LEAD) == nested

    done = dags_test(mongo_uri, db.name, tmp_path, f'{{"confirm": "{db.name}"}}')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert db.leads.count_documents(NESTED_LEAD) == db[REJECTS_COLLECTION].count_documents({})
    assert db[CLEANED_COLLECTION].count_documents({}) == nested - db.leads.count_documents(NESTED_LEAD)
    assert latest_backup(tmp_path / "dag-backups", db.name)


class Killed(BaseException):
    """What a kill does to a step: it stops where it is, and nothing after it runs."""


def kill(*_args, **_kwargs):
    raise Killed


@pytest.mark.parametrize(
    "where",
    ["leadnorm.steps.cleanup.DeleteOne", "leadnorm.steps.cleanup.forget_lead_keys"],
    ids=["recorded", "deleted"],
)
def test_a_cleanup_killed_and_rerun_loses_nothing(migrated, tmp_path, monkeypatch, where):
    """Killed after recording a batch in migration_cleaned (before deleting it), or after deleting
    it (before forgetting its keys): the rerun finishes, every migrated lead is accounted for."""
    db = migrated
    migrated_ids = {d["_id"]: d["_migrated_lead_id"] for d in db.leads.find({"_migrated": True})}
    normalized = {d["_id"] for d in db.leads.find(NORMALIZED_LEAD, {"_id": 1})}
    monkeypatch.setattr(where, kill)
    with pytest.raises(Killed):
        run_cleanup(db, db.name, backup_dir=tmp_path / "b")
    monkeypatch.undo()

    run_cleanup(db, db.name, backup_dir=tmp_path / "b")
    assert {d["_id"]: d["lead_id"] for d in db[CLEANED_COLLECTION].find()} == migrated_ids
    assert not db.leads.find_one({**NESTED_LEAD, "_migrated": True})
    assert {d["_id"] for d in db.leads.find(NORMALIZED_LEAD, {"_id": 1})} == normalized
    changes, _, report = pipeline.refresh(
        db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "r"), skip_validation=True
    )
    assert not changes.any and report is None
