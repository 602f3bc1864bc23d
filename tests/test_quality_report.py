"""The quality report on stored collections: passes after a migration, fails on drift; its DAG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_datadocs import page_with_scripts

from leadnorm.contract import MIGRATED, NESTED_LEAD, NORMALIZED_LEAD, REJECT_NOT_OBJECT, REJECTS_COLLECTION
from leadnorm.devtools.seed import seed_leads
from leadnorm.quality.report import stored_frames, validate_stored
from leadnorm.schema import COLLECTIONS
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture
def migrated(db, tmp_path):
    seed_leads(db, 150, seed=11)
    db.leads.insert_one({"lead_input": "not an object"})  # one reject, whatever the seed gives
    migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    return db


def test_stored_frames_have_the_schema_columns(migrated):
    frames, source = stored_frames(migrated)
    for name, collection in COLLECTIONS.items():
        assert list(frames[name].columns) == collection.columns
        assert frames[name].dtypes.map(lambda dtype: dtype is np.dtype(object)).all()
    assert len(frames["leads"]) == migrated.leads.count_documents(NORMALIZED_LEAD)
    absent = migrated.personas.count_documents({"linkedin_url": {"$exists": False}})
    assert 0 < absent == frames["personas"]["linkedin_url"].map(lambda value: value is None).sum()
    assert list(source.columns) == ["_id", "outcome", "reject_reason"]
    assert len(source) == migrated.leads.count_documents(NESTED_LEAD)
    rejected = source[source["outcome"] == "rejected"]
    assert len(rejected) == migrated[REJECTS_COLLECTION].count_documents({}) > 0
    assert REJECT_NOT_OBJECT in set(rejected["reject_reason"])
    assert (source["outcome"] == "migrated").sum() == len(frames["leads"])


def test_passes_after_a_migration(migrated, tmp_path):
    result = validate_stored(migrated, reports_dir=tmp_path / "reports")
    assert result.passed, result.report()
    assert result.docs_index.exists()
    assert "quality-report-" in page_with_scripts(result.docs_index)


def test_a_deleted_company_fails_critically(migrated, tmp_path):
    lead = migrated.leads.find_one({**NORMALIZED_LEAD, "company_id": {"$exists": True}})
    migrated.companies.delete_one({"_id": lead["company_id"]})
    result = validate_stored(migrated, reports_dir=tmp_path / "reports")
    assert not result.passed
    assert ("leads", "company_id__resolves") in {(f.suite, f.column) for f in result.failures}
    assert "validation FAILED" in result.report()


def test_a_lost_mark_fails_critically(migrated, tmp_path):
    migrated.leads.update_one({MIGRATED: True}, {"$unset": {MIGRATED: ""}})
    result = validate_stored(migrated, reports_dir=tmp_path / "reports")
    assert ("nested_leads", "expect_table_row_count_to_equal") in {(f.suite, f.expectation) for f in result.failures}


def test_dag_is_scheduled_on_the_nine_collection_assets(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.asset import AssetAny

    from leadnorm.assets import CONN_ENV, collection_assets

    monkeypatch.setenv(CONN_ENV, "mongo://reader:pw@mongo.internal:27018/crm")
    dag = DagBag(dag_folder=str(DAGS / "leads_quality_report.py")).dags["leads_quality_report"]
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    assert set(condition.objects) == set(collection_assets("mongodb://mongo.internal:27018/crm").values())
    assert len(condition.objects) == len(COLLECTIONS)
    assert dag.max_active_runs == 1


@pytest.mark.airflow
def test_dag_reports_on_stored_collections(migrated, mongo_uri, tmp_path):
    host_port = mongo_uri.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    env = {
        **os.environ,
        "AIRFLOW_CONN_MONGO_DEFAULT": f"mongo://{host_port}/{migrated.name}",
        "LEADNORM_REPORTS_DIR": str(tmp_path / "reports"),
    }

    def dags_test():
        command = [AIRFLOW, "dags", "test", "leads_quality_report"]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)

    passing = dags_test()
    assert passing.returncode == 0, passing.stdout[-3000:] + passing.stderr[-3000:]
    assert "validation passed" in passing.stdout + passing.stderr
    assert (tmp_path / "reports" / "data_docs" / "index.html").exists()

    lead = migrated.leads.find_one({**NORMALIZED_LEAD, "company_id": {"$exists": True}})
    migrated.companies.delete_one({"_id": lead["company_id"]})
    failing = dags_test()
    assert failing.returncode != 0
    assert "company_id__resolves" in failing.stdout + failing.stderr
    assert "up_for_retry" not in failing.stdout + failing.stderr, "a failed expectation is not retried"
