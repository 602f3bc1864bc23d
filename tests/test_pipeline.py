"""The migration against the real server: counts, ids, references, indexes, idempotency, rejects,
backup, dry run, and a run killed half way then rerun."""

from __future__ import annotations

import pytest
from bson.raw_bson import RawBSONDocument

from leadnorm.contract import NESTED_LEAD, NORMALIZED_LEAD, REJECTS_COLLECTION
from leadnorm.devtools.seed import seed_leads
from leadnorm.schema import COLLECTIONS
from leadnorm.steps import layout, pipeline
from leadnorm.steps.backup import iter_backup_documents, read_manifest, restore_collection
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder
from leadnorm.transform import columns
from leadnorm.transform.documents import document

LEADS = 600


def snapshot(db) -> dict:
    """Every document of every collection the migration touches, in _id order."""
    names = [*COLLECTIONS, REJECTS_COLLECTION]
    return {name: list(db[name].find({}, sort=[("_id", 1)])) for name in names}


def run(db, tmp_path, name="run", **options):
    options.setdefault("skip_validation", True)
    return migrate(db, backup_dir=tmp_path / "backups", run=RunFolder(tmp_path / name), **options)


@pytest.fixture
def seeded(db):
    seed_leads(db, LEADS, seed=7)
    return db


def test_counts_add_up_and_every_reference_resolves(seeded, tmp_path):
    db = seeded
    folder, report = run(db, tmp_path)
    assert report.ok, report.problems()

    nested = db.leads.count_documents(NESTED_LEAD)
    migrated = db.leads.count_documents({**NESTED_LEAD, "_migrated": True})
    rejected = db[REJECTS_COLLECTION].count_documents({})
    assert nested == LEADS and migrated + rejected == nested and rejected > 0
    assert db.leads.count_documents({"legacy_lead_id": {"$exists": True}}) == migrated
    for name in COLLECTIONS:
        stored = db[name].count_documents(NORMALIZED_LEAD if name == "leads" else {})
        assert stored == folder.table_rows(layout.frame(name)) > 0, name

    company_ids = {d["_id"] for d in db.companies.find({}, {"_id": 1})}
    persona_ids = {d["_id"] for d in db.personas.find({}, {"_id": 1})}
    leads = list(db.leads.find({"legacy_lead_id": {"$exists": True}}))
    assert {lead["company_id"] for lead in leads if "company_id" in lead} <= company_ids
    assert {lead["persona_id"] for lead in leads} <= persona_ids
    assert len(company_ids) < len(leads) / 3, "companies were not deduplicated"
    lead_ids = {lead["_id"] for lead in leads}
    assert {s["lead_id"] for s in db.icp_scores.find()} <= lead_ids
    score_ids = {s["_id"] for s in db.icp_scores.find()}
    assert {b["icp_score_id"] for b in db.icp_factor_breakdowns.find()} <= score_ids

    marked = db.leads.find_one({"_migrated": True})
    assert db.leads.find_one({"_id": marked["_migrated_lead_id"]})["legacy_lead_id"] == marked["_id"]
    for reject in db[REJECTS_COLLECTION].find():
        source = db.leads.find_one({"_id": reject["_id"]})
        assert "_migrated" not in source and reject["reason"].startswith("lead_input")


def test_contract_indexes_exist(seeded, tmp_path):
    run(seeded, tmp_path)
    companies = {i["name"]: i for i in seeded.companies.list_indexes()}
    assert companies["domain_1"]["unique"] and companies["domain_1"]["sparse"]
    personas = {i["name"]: i for i in seeded.personas.list_indexes()}
    assert personas["email_1"]["unique"] and personas["email_1"]["sparse"]
    assert personas["linkedin_url_1"]["unique"] and personas["linkedin_url_1"]["sparse"]
    leads = {i["name"] for i in seeded.leads.list_indexes()}
    assert {"company_id_1", "persona_id_1", "status_1", "legacy_lead_id_1"} <= leads
    techs = {i["name"]: i for i in seeded.technographics.list_indexes()}
    assert techs["company_id_1_name_1"]["unique"]


def test_second_run_writes_nothing_and_keeps_every_id(seeded, tmp_path):
    run(seeded, tmp_path, "first")
    before = snapshot(seeded)
    folder, report = run(seeded, tmp_path, "second")
    assert report.ok
    for name in COLLECTIONS:
        saved = folder.read_result(f"load-{name}")
        assert saved["inserted"] == saved["replaced"] == 0 and saved["unchanged"] > 0, name
    assert folder.read_result("mark")["marked"] == 0
    assert snapshot(seeded) == before


def test_dry_run_writes_nothing(seeded, tmp_path):
    before = snapshot(seeded)
    folder, report = run(seeded, tmp_path, dry_run=True)
    assert report is None
    assert snapshot(seeded) == before
    assert not (tmp_path / "backups").exists()
    assert folder.read_result("load-leads")["inserted"] > 0  # what it would write


def test_batch_size_does_not_change_the_result(mongo_uri, tmp_path):
    from leadnorm.mongo import connect

    results = []
    for batch_size in (7, 1000):
        db = connect(mongo_uri, f"batches_{batch_size}_{tmp_path.name[-8:]}")
        try:
            seed_leads(db, 200, seed=3, drop=True)
            run(db, tmp_path, f"b{batch_size}", batch_size=batch_size)
            results.append(snapshot(db))
        finally:
            db.client.drop_database(db.name)
    assert results[0] == results[1]


def raw_documents(collection) -> list[bytes]:
    raw = collection.with_options(codec_options=collection.codec_options.with_options(document_class=RawBSONDocument))
    return [doc.raw for doc in raw.find({}, sort=[("_id", 1)])]


def test_backup_holds_the_source_byte_for_byte_and_restores(seeded, tmp_path):
    original = raw_documents(seeded.leads)
    run(seeded, tmp_path)
    folder = next((tmp_path / "backups").iterdir())
    manifest = read_manifest(folder)
    assert manifest["collections"]["leads"]["documents"] == LEADS
    assert (folder / seeded.name / "leads.metadata.json").exists()
    assert [doc.raw for doc in iter_backup_documents(folder, "leads")] == original

    assert raw_documents(seeded.leads) != original  # marked _migrated since
    restore_collection(seeded, folder, "leads")
    assert raw_documents(seeded.leads) == original


def test_a_rerun_of_the_same_run_keeps_its_first_backup(seeded, tmp_path):
    folder = RunFolder(tmp_path / "run")
    first = pipeline.backup_step(seeded, folder, tmp_path / "backups")
    seeded.leads.update_many({}, {"$set": {"touched": True}})
    assert pipeline.backup_step(seeded, folder, tmp_path / "backups") == first
    assert len(list((tmp_path / "backups").iterdir())) == 1


def test_killed_run_rerun_ends_like_an_uninterrupted_one(mongo_uri, tmp_path, monkeypatch):
    from leadnorm.mongo import connect

    clean = connect(mongo_uri, f"clean_{tmp_path.name[-8:]}")
    crashed = connect(mongo_uri, f"crash_{tmp_path.name[-8:]}")
    try:
        for db in (clean, crashed):
            seed_leads(db, 300, seed=11, drop=True)
        run(clean, tmp_path, "clean")

        real_load = pipeline.load_collection

        def load_then_die(db, name, rows, total, **kw):
            if name == "research_runs":  # dies after a partial write of this collection
                first = next(iter(rows))
                real_load(db, name, [first.slice(0, first.num_rows // 2)], total, **kw)
                raise KeyboardInterrupt("killed")
            return real_load(db, name, rows, total, **kw)

        monkeypatch.setattr(pipeline, "load_collection", load_then_die)
        with pytest.raises(KeyboardInterrupt):
            run(crashed, tmp_path, "crash")
        assert crashed.leads.count_documents({"_migrated": True}) == 0  # nothing marked yet
        monkeypatch.setattr(pipeline, "load_collection", real_load)
        _, report = run(crashed, tmp_path, "rerun")
        assert report.ok
        assert snapshot(crashed) == snapshot(clean)
        for name in COLLECTIONS:  # research_runs died before its indexes: the rerun built them first
            assert index_names(crashed[name]) == index_names(clean[name]), name
    finally:
        clean.client.drop_database(clean.name)
        crashed.client.drop_database(crashed.name)


def index_names(collection) -> set[str]:
    return {index["name"] for index in collection.list_indexes()}


def test_a_bulk_load_that_duplicates_a_unique_key_fails_its_index_build_in_one_line(db, tmp_path):
    """Into an empty collection the indexes come after the load: a duplicate the gate missed
    still cannot stay unnoticed."""
    from bson import ObjectId

    from leadnorm.errors import LoadError

    folder = RunFolder(tmp_path / "run").create()
    folder.write_result("plan", {"partitions": 1, "whole_source": True, "documents": 2})
    persona = {field: "" for field in COLLECTIONS["personas"].fields if field != "extra"}  # valid but for the twin
    rows = [{**persona, "_id": ObjectId(), "full_name": name, "email": "a@x.io"} for name in "AB"]
    for row in rows:
        row["document"] = document(row, COLLECTIONS["personas"].columns)
    twins = columns.table(rows, {"_id": "oid", "full_name": "text", "email": "text", "document": "bytes"})
    folder.write_table(layout.frame("personas"), twins, twins.schema)
    with pytest.raises(LoadError, match="personas: index email_1 could not be built after the bulk load") as failed:
        pipeline.load_step(db, folder, "personas")
    assert "\n" not in str(failed.value) and "a@x.io" not in str(failed.value)
    assert "email_1" not in index_names(db.personas)
