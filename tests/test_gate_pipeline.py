"""The gate inside the pipeline: broken frames stop the run before any write to the targets."""

from __future__ import annotations

import pytest

from leadnorm import cli
from leadnorm.devtools.seed import seed_leads
from leadnorm.schema import COLLECTIONS
from leadnorm.steps import pipeline
from leadnorm.steps.runstore import RunFolder
from leadnorm.transform import normalize
from leadnorm.transform.resolve import resolve as real_resolve


def broken_resolve(mentions):
    """The real result, then three defects the contract forbids."""
    normalized = real_resolve(mentions)
    frames = normalized.frames
    companies = frames["companies"]
    with_domain = companies.index[companies["domain"].notna()]
    companies.loc[with_domain[1], "domain"] = companies.loc[with_domain[0], "domain"]  # duplicate domain
    frames["leads"].loc[0, "company_id"] = frames["personas"].loc[0, "_id"]  # dangling company_id
    frames["icp_scores"].loc[0, "icp_score"] = 140.0  # out of range
    return normalized


@pytest.fixture
def broken(db, monkeypatch, tmp_path):
    seed_leads(db, 300, seed=9)
    monkeypatch.setattr(normalize, "resolve", broken_resolve)
    monkeypatch.setenv("LEADNORM_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("LEADNORM_STAGING_DIR", str(tmp_path / "staging"))
    return db


def assert_nothing_written(db):
    assert set(db.list_collection_names()) - {"migration_locks"} == {"leads"}
    assert db.migration_locks.count_documents({}) == 0, "the lock outlived the run"
    assert db.leads.count_documents({"_migrated": {"$exists": True}}) == 0
    assert db.leads.count_documents({"legacy_lead_id": {"$exists": True}}) == 0


def test_broken_frames_stop_the_run_before_any_write(broken, tmp_path):
    from leadnorm.errors import GateFailed

    with pytest.raises(GateFailed) as failed:
        pipeline.migrate(broken, backup_dir=tmp_path / "backups", run=RunFolder(tmp_path / "run"))
    message = str(failed.value)
    assert "companies.domain expect_column_values_to_be_unique (2 unexpected)" in message
    assert "leads.company_id__resolves" in message
    assert "icp_scores.icp_score expect_column_values_to_be_between (1 unexpected)" in message
    assert_nothing_written(broken)
    assert (tmp_path / "reports" / "data_docs" / "index.html").exists()


def test_cli_exits_non_zero_naming_the_failures(broken, tmp_path, capsys, mongo_uri):
    code = cli.main(["migrate", "--uri", mongo_uri, "--db", broken.name, "--backup-dir", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("leadnorm: error: Quality gate FAILED: 3 critical")
    assert_nothing_written(broken)


def test_skip_validation_loads_what_the_gate_would_stop(broken, tmp_path):
    """The escape hatch exists, is explicit, and the unique index still refuses the duplicate
    domain: built after the bulk load into the empty collection, it fails, naming no value."""
    from leadnorm.errors import LoadError

    with pytest.raises(LoadError, match="companies: index domain_1 could not be built after the bulk load") as failed:
        pipeline.migrate(broken, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    assert "duplicate key" in str(failed.value) and "\n" not in str(failed.value)
    domains = [company["domain"] for company in broken.companies.find({"domain": {"$exists": True}})]
    assert domains and not any(domain in str(failed.value) for domain in domains)
    assert broken.leads.count_documents({"_migrated": True}) == 0
    assert set(COLLECTIONS) - set(broken.list_collection_names())  # stopped at the first collection
