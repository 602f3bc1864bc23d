"""The hostile corpus (tests/data/hostile) beside seeded contract leads, through the whole
migration against the server: no document blocks the others, every nested lead ends
migrated xor rejected with a reason, and a second run writes nothing at all."""

from __future__ import annotations

import pytest
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from data.hostile.cases import CASES, UNICODE_COMPANY_DOMAINS, lead
from pymongo.errors import OperationFailure

from leadnorm.contract import (
    NESTED_LEAD,
    NORMALIZED_LEAD,
    REJECT_NOT_OBJECT,
    REJECT_TOO_LARGE,
    REJECTS_COLLECTION,
    legacy_key,
)
from leadnorm.devtools.seed import seed_leads
from leadnorm.mongo import RAW_CODEC_OPTIONS
from leadnorm.schema import COLLECTIONS
from leadnorm.source import content
from leadnorm.steps.pipeline import migrate, refresh
from leadnorm.steps.runstore import RunFolder
from leadnorm.transform.ids import lead_id

SEEDED = 200
# SecantusDB cannot store a date outside Python's range (a real mongod can): that class is
# covered without a server in tests/normalize/test_hostile.py.
UNSTORABLE_HERE = {"dates_outside_python_range"}


def insert_corpus(db) -> list[dict]:
    """Every hostile document the server accepts; fails if it refuses one of another class."""
    stored, refused = [], set()
    for hostile in CASES.values():
        for doc in hostile.build():
            try:
                db.leads.insert_one(doc)
                stored.append(doc)
            except OperationFailure:
                refused.add(hostile.name)
    assert refused <= UNSTORABLE_HERE, refused
    return stored


def raw_snapshot(db) -> dict[str, list[bytes]]:
    """Every document the migration touches, byte for byte, in `_id` order."""
    raw = db.codec_options.with_options(document_class=RawBSONDocument)
    return {
        name: [doc.raw for doc in db.get_collection(name, codec_options=raw).find({}, sort=[("_id", 1)])]
        for name in [*COLLECTIONS, REJECTS_COLLECTION]
    }


def accounted(db) -> tuple[set, dict]:
    """Source keys marked `_migrated: true`, and rejected source keys with their reasons."""
    migrated = {legacy_key(d["_id"]) for d in db.leads.find({**NESTED_LEAD, "_migrated": True}, {"_id": 1})}
    rejected = {legacy_key(d["_id"]): d.get("reason") for d in db[REJECTS_COLLECTION].find()}
    return migrated, rejected


def run(db, tmp_path, name: str, **options):
    return migrate(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / name), **options)


@pytest.fixture
def hostile_db(db):
    seed_leads(db, SEEDED, seed=1)
    return db, insert_corpus(db)


def source_bytes(db) -> dict[bytes, bytes]:
    """Every nested lead as the application wrote it (`leadnorm.source.content`), by legacy key."""
    raw = db.leads.with_options(codec_options=RAW_CODEC_OPTIONS)
    return {legacy_key(doc["_id"]): content(doc.raw) for doc in raw.find(NESTED_LEAD)}


def test_no_source_document_is_lost_or_altered_and_colliding_fields_are_data(hostile_db, tmp_path):
    """A nested lead's own `legacy_lead_id`, `_migrated…`, `company_id`, `upload` fields are kept
    under `extra` and steer nothing: the source comes out of a migration, a refresh and an unmark
    as the application wrote it, byte for byte, and a refresh with nothing changed finds nothing."""
    db, _ = hostile_db
    before = source_bytes(db)
    _, report = run(db, tmp_path, "first", skip_validation=True)
    assert report.ok, report.problems()
    assert source_bytes(db) == before

    def normalized_of(source_id) -> dict:
        return db.leads.find_one({**NORMALIZED_LEAD, "_id": lead_id(source_id)})

    assert normalized_of("legacy-other")["extra"]["legacy_lead_id"] == "42"
    assert normalized_of("legacy-int")["extra"]["legacy_lead_id"] == 42
    assert normalized_of(42)["legacy_lead_id"] == 42 and normalized_of("42")["legacy_lead_id"] == "42"
    extra = normalized_of("marks-app")["extra"]
    assert (extra["_migrated"], extra["_migrated_lead_id"], extra["_migrated_displaced"]) == (True, "crm-9", {"x": 1})
    assert db.leads.find_one({"_id": "marks-app"})["_migrated_lead_id"] == lead_id("marks-app")  # the real mark
    targets = normalized_of("targets")
    assert targets["extra"]["company_id"] == "not-an-id" and targets["extra"]["upload"] == {
        "file": "leads.csv",
        "line": 2,
    }
    assert targets["company_id"] != "not-an-id" and targets["name"] == "Hostile targets"
    assert type(normalized_of(Int64(7))["legacy_lead_id"]) is Int64

    changes, folder, _ = refresh(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "quiet"), skip_validation=True)
    assert not changes.any, changes.render()

    invalid = ("marks-app", "marks-oid", "legacy-other")
    for source_id in invalid:
        db.leads.update_one({"_id": source_id}, {"$set": {"lead_input": "no longer an object"}})
    expected = {**source_bytes(db)}
    changes, folder, report = refresh(
        db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "unmark"), skip_validation=True
    )
    assert report.ok, report.problems()
    assert folder.read_result("mark")["unmarked"] == len(invalid)
    assert source_bytes(db) == expected
    app_fields = db.leads.find_one({"_id": "marks-app"})
    assert (app_fields["_migrated"], app_fields["_migrated_lead_id"], app_fields["_migrated_displaced"]) == (
        True,
        "crm-9",
        {"x": 1},
    )
    assert db.leads.count_documents(NESTED_LEAD) == len(before)


def test_the_unicode_forms_of_one_person_and_one_company_are_one(hostile_db, tmp_path):
    db, _ = hostile_db
    run(db, tmp_path, "first", skip_validation=True)
    leads = list(db.leads.find({**NORMALIZED_LEAD, "legacy_lead_id": {"$regex": "^unicode-"}}))
    assert len(leads) == len(UNICODE_COMPANY_DOMAINS)
    assert len({lead["company_id"] for lead in leads}) == 1 and len({lead["persona_id"] for lead in leads}) == 1
    company = db.companies.find_one({"_id": leads[0]["company_id"]})
    persona = db.personas.find_one({"_id": leads[0]["persona_id"]})
    assert company["domain"] == "bücher.example" and persona["email"] == "josé@bücher.example"
    assert persona["full_name"] in {lead["name"] for lead in leads}  # stored as the source wrote it


def test_a_refresh_of_more_than_a_hundred_leads_with_small_int64_ids(db, tmp_path, mongo_uri):
    """Int64 ids beside int ones of the same value, edited together with over a hundred others."""
    from test_refresh import canonical, from_scratch

    seed_leads(db, 150, seed=4)
    db.leads.insert_many(
        [lead(Int64(n), f"int64-{n}") for n in range(1, 6)] + [lead(n + 100, f"int-{n}") for n in range(5)]
    )
    run(db, tmp_path, "first", skip_validation=True)
    touched = db.leads.update_many(NESTED_LEAD, {"$set": {"touched": True}}).modified_count
    changes, _, report = refresh(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "r"), skip_validation=True)
    assert len(changes.changed) == touched > 100 and not changes.gone and report.ok, report.problems()
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)


def test_hostile_corpus_migrates_beside_contract_leads_and_reruns_write_nothing(hostile_db, tmp_path):
    db, corpus = hostile_db
    folder, report = run(db, tmp_path, "first", skip_validation=True)
    assert report.ok, report.problems()

    nested = {legacy_key(d["_id"]) for d in db.leads.find(NESTED_LEAD, {"_id": 1})}
    migrated, rejected = accounted(db)
    assert len(nested) == SEEDED + len(corpus)
    assert migrated | rejected.keys() == nested and not migrated & rejected.keys()
    assert all(rejected.values()), "a reject without a reason"
    normalized = folder.read_result("normalize")
    assert normalized["nested"] == len(nested) == normalized["migrated"] + normalized["rejected"]
    assert db.leads.count_documents(NORMALIZED_LEAD) == len(migrated)
    legacy = [legacy_key(lead["legacy_lead_id"]) for lead in db.leads.find(NORMALIZED_LEAD, {"legacy_lead_id": 1})]
    assert sorted(legacy) == sorted(migrated), "a legacy id that is not its source's _id, type and all"

    for hostile in CASES.values():
        for doc in hostile.build():
            key = legacy_key(doc["_id"])
            if hostile.name in UNSTORABLE_HERE:
                continue
            if hostile.outcome == "migrated":
                assert key in migrated, (hostile.name, doc["_id"])
            else:
                assert rejected.get(key) == hostile.outcome, (hostile.name, doc["_id"])
    assert rejected[legacy_key("near-16mb")] == rejected[legacy_key("expanding")] == REJECT_TOO_LARGE

    leads_42 = list(db.leads.find({**NORMALIZED_LEAD, "legacy_lead_id": {"$in": ["42", 42]}}))
    assert len(leads_42) == 2 and len({lead["_id"] for lead in leads_42}) == 2
    assert {type(lead["legacy_lead_id"]) for lead in leads_42} == {str, int}
    nan_lead = db.leads.find_one({"legacy_lead_id": "nan-top-level"})
    assert nan_lead["extra"]["legacy_score"] != nan_lead["extra"]["legacy_score"]  # NaN, kept

    before = raw_snapshot(db)
    folder, report = run(db, tmp_path, "second", skip_validation=True)
    assert report.ok, report.problems()
    for name in COLLECTIONS:
        loaded = folder.read_result(f"load-{name}")
        assert loaded["inserted"] == loaded["replaced"] == 0, (name, loaded)
    mark = folder.read_result("mark")
    assert mark["marked"] == mark["unmarked"] == mark["rejects_written"] == mark["rejects_removed"] == 0, mark
    assert raw_snapshot(db) == before


def test_the_validation_gate_lets_the_hostile_corpus_through(hostile_db, tmp_path):
    db, _ = hostile_db
    _, report = run(db, tmp_path, "gated", skip_validation=False)
    assert report.ok, report.problems()


def test_a_migrated_lead_that_turns_invalid_loses_its_mark_when_rejected(hostile_db, tmp_path):
    db, _ = hostile_db
    run(db, tmp_path, "first", skip_validation=True)
    for source_id in ("42", 42, {"tenant": "acme", "n": 1}):
        assert db.leads.find_one({"_id": source_id})["_migrated"] is True
        db.leads.update_one({"_id": source_id}, {"$set": {"lead_input": ["no longer an object"]}})

    folder, report = run(db, tmp_path, "second", skip_validation=True)
    assert report.reconciled, report.problems()  # its normalized lead stays: removing it is refresh's work
    assert folder.read_result("mark")["unmarked"] == 3
    for source_id in ("42", 42, {"tenant": "acme", "n": 1}):
        source = db.leads.find_one({"_id": source_id})
        assert "_migrated" not in source and "_migrated_lead_id" not in source
        assert db[REJECTS_COLLECTION].find_one({"_id": source_id})["reason"] == REJECT_NOT_OBJECT
    migrated, rejected = accounted(db)
    assert not migrated & rejected.keys()


def test_a_refresh_of_every_hostile_document_equals_a_migration_from_scratch(hostile_db, tmp_path, mongo_uri):
    """The refresh's scope finds and fetches any `_id` exactly: `"42"` apart from 42, NaN, null,
    embedded documents."""
    from test_refresh import canonical, from_scratch

    db, corpus = hostile_db
    run(db, tmp_path, "first", skip_validation=True)
    touched = 0
    for doc in corpus:
        if legacy_key(doc["_id"]) not in {legacy_key("near-16mb"), legacy_key("expanding")}:
            touched += db.leads.update_one({"_id": doc["_id"]}, {"$set": {"touched": True}}).modified_count
    changes, folder, report = refresh(
        db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "refresh"), skip_validation=True
    )
    assert len(changes.changed) == touched > 0 and report.ok, report.problems()
    assert folder.read_result("scope")["leads"] >= touched
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)
    again, _, _ = refresh(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "again"), skip_validation=True)
    assert not again.any
