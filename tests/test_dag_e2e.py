"""`airflow dags test leads_migration` end to end, twice, against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from leadnorm.contract import NESTED_LEAD, REJECTS_COLLECTION
from leadnorm.devtools.seed import seed_leads
from leadnorm.schema import COLLECTIONS

pytestmark = pytest.mark.airflow
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def dags_test(mongo_uri: str, db_name: str, tmp_path: Path, conf: str = "{}", dag_id: str = "leads_migration"):
    host_port = mongo_uri.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    env = {
        **os.environ,
        "AIRFLOW_CONN_MONGO_DEFAULT": f"mongo://{host_port}/{db_name}",
        "LEADNORM_STAGING_DIR": str(tmp_path / "staging"),
        "LEADNORM_BACKUP_DIR": str(tmp_path / "backups"),
        "LEADNORM_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, "--conf", conf],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_dag_migrates_then_changes_nothing(db, mongo_uri, tmp_path):
    """In three partitions first, then in one: the second run finds nothing to write."""
    seed_leads(db, 400, seed=21)
    first = dags_test(mongo_uri, db.name, tmp_path, conf='{"partitions": 3}')
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    nested = db.leads.count_documents(NESTED_LEAD)
    migrated = db.leads.count_documents({**NESTED_LEAD, "_migrated": True})
    assert migrated + db[REJECTS_COLLECTION].count_documents({}) == nested == 400
    assert db.leads.count_documents({"legacy_lead_id": {"$exists": True}}) == migrated
    assert list((tmp_path / "backups").iterdir())
    summaries = list((tmp_path / "reports" / "summaries").rglob("*.txt"))
    assert len(summaries) == 1 and "verify: OK" in summaries[0].read_text()
    assert not list((tmp_path / "staging").rglob("*.*")), "a successful run leaves its run folder behind"

    before = {name: list(db[name].find({}, sort=[("_id", 1)])) for name in COLLECTIONS}
    second = dags_test(mongo_uri, db.name, tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert {name: list(db[name].find({}, sort=[("_id", 1)])) for name in COLLECTIONS} == before
    latest = max((tmp_path / "reports" / "summaries").rglob("*.txt"), key=lambda p: p.stat().st_mtime)
    assert "marked _migrated: 0 now" in latest.read_text()


def test_dag_dry_run_writes_nothing(db, mongo_uri, tmp_path):
    seed_leads(db, 50, seed=2)
    out = dags_test(mongo_uri, db.name, tmp_path, conf='{"dry_run": true}')
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert db.leads.count_documents({"_migrated": True}) == 0
    assert set(db.list_collection_names()) - {"migration_locks"} == {"leads"}
    assert db.migration_locks.count_documents({}) == 0, "the lock outlived the run"


def test_refresh_dag_skips_when_nothing_changed_and_catches_up_when_something_did(db, mongo_uri, tmp_path):
    seed_leads(db, 200, seed=8)
    first = dags_test(mongo_uri, db.name, tmp_path, dag_id="leads_refresh")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    migrated = db.leads.count_documents({**NESTED_LEAD, "_migrated": True})
    assert migrated + db[REJECTS_COLLECTION].count_documents({}) == 200

    before = {name: list(db[name].find({}, sort=[("_id", 1)])) for name in COLLECTIONS}
    idle = dags_test(mongo_uri, db.name, tmp_path, dag_id="leads_refresh")
    assert idle.returncode == 0, idle.stdout[-3000:] + idle.stderr[-3000:]
    assert "nothing to write" in idle.stdout + idle.stderr
    assert {name: list(db[name].find({}, sort=[("_id", 1)])) for name in COLLECTIONS} == before
    # the run's Outcome tab says why it wrote nothing: the summary the skipping lock task kept
    summaries = sorted(
        (tmp_path / "reports" / "summaries" / "leads_refresh").glob("*.txt"), key=lambda p: p.stat().st_mtime
    )
    assert (
        len(summaries) == 2
        and "skipped" in summaries[-1].read_text()
        and "nothing to write" in summaries[-1].read_text()
    )

    lead = db.leads.find_one({**NESTED_LEAD, "_migrated": True, "research.DetectedSignals.0": {"$exists": True}})
    db.leads.update_one({"_id": lead["_id"]}, {"$unset": {"research.DetectedSignals": ""}})
    changed = dags_test(mongo_uri, db.name, tmp_path, conf='{"partitions": 2}', dag_id="leads_refresh")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert db.detected_signals.count_documents({"lead_id": lead["_migrated_lead_id"]}) == 0
    assert db.migration_locks.count_documents({}) == 0
