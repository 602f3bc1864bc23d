"""The gate inside the pipeline: broken frames stop the run before any write to the targets."""

from __future__ import annotations

import bson
import pyarrow as pa
import pytest
from bson import ObjectId

from leadnorm import cli
from leadnorm.devtools.seed import seed_leads
from leadnorm.mongo import CODEC_OPTIONS
from leadnorm.schema import COLLECTIONS, KINDS
from leadnorm.steps import layout, pipeline
from leadnorm.steps.runstore import RunFolder
from leadnorm.transform import columns

real_resolve_step = pipeline.resolve_step


def with_column(run: RunFolder, collection: str, column: str, change) -> None:
    """Rewrite one field of a staged collection, its column and its documents: `change(values)`."""
    name = layout.frame(collection)
    table = run.read_table(name)
    kind = KINDS[collection][column]
    changed = columns.array(kind, change(columns.values(table[column], kind)))
    documents = []
    for document, value in zip(table["document"].to_pylist(), changed.to_pylist()):
        fields = bson.decode(document, CODEC_OPTIONS)
        fields[column] = columns.values(pa.array([value], changed.type), kind)[0]
        if fields[column] is None:  # absent, as the contract stores a missing value
            del fields[column]
        documents.append(bson.encode(fields, codec_options=CODEC_OPTIONS))
    for field, values in ((column, changed), ("document", pa.array(documents, pa.binary()))):
        table = table.set_column(table.schema.get_field_index(field), table.schema.field(field), values)
    run.write_table(name, table, table.schema)


def duplicate_first_domain(domains: list) -> list:
    first, second = [index for index, domain in enumerate(domains) if domain is not None][:2]
    return [domains[first] if index == second else domain for index, domain in enumerate(domains)]


def broken_resolve(run: RunFolder, db=None):
    """The real result, then three defects the contract forbids."""
    counts = real_resolve_step(run, db)
    with_column(run, "companies", "domain", duplicate_first_domain)
    persona = ObjectId(run.read_table(layout.frame("personas"))["_id"][0].as_py())
    with_column(run, "leads", "company_id", lambda ids: [persona, *ids[1:]])  # a dangling company_id
    with_column(run, "icp_scores", "icp_score", lambda scores: [140.0, *scores[1:]])  # out of range
    return counts


@pytest.fixture
def broken(db, monkeypatch, tmp_path):
    seed_leads(db, 300, seed=9)
    monkeypatch.setattr(pipeline, "resolve_step", broken_resolve)
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
