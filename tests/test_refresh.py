"""Refresh on the real server: after what a live application does between two runs, one refresh
leaves the nine collections exactly as a migration from scratch of the final source would
(company and persona ids aside), keeps every lead id and nearly every company and persona
id, and a second refresh finds nothing to do."""

from __future__ import annotations

import uuid

import pytest
from bson.raw_bson import RawBSONDocument

from leadnorm.contract import NESTED_LEAD, NORMALIZED_LEAD, REJECTS_COLLECTION, legacy_key
from leadnorm.devtools.seed import generate_leads
from leadnorm.mongo import RAW_CODEC_OPTIONS, connect
from leadnorm.schema import COLLECTIONS
from leadnorm.source import content
from leadnorm.steps.changes import detect_changes
from leadnorm.steps.pipeline import migrate, refresh
from leadnorm.steps.runstate import key_store_complete, set_key_store_complete
from leadnorm.steps.runstore import RunFolder

ENTITY_REFERENCES = {"companies": "company_id", "personas": "persona_id"}


def run(db, tmp_path, name: str, fn=migrate):
    return fn(db, backup_dir=tmp_path / "backups", skip_validation=False, run=RunFolder(tmp_path / name))


def canonical(db) -> dict:
    """Every collection, with company and persona ids replaced by what identifies them here:
    the set of source leads that reference them. Two databases holding the same migration with
    other company or persona ids canonicalise to the same value."""
    leads = list(db.leads.find(NORMALIZED_LEAD))
    names = {}
    for column in ENTITY_REFERENCES.values():
        members: dict = {}
        for lead in leads:
            if lead.get(column) is not None:
                members.setdefault(lead[column], []).append(repr(legacy_key(lead["legacy_lead_id"])))
        names[column] = {entity: tuple(sorted(keys)) for entity, keys in members.items()}

    def rename(doc: dict) -> dict:
        out = dict(doc)
        for column, mapping in names.items():
            if out.get(column) is not None:
                out[column] = mapping.get(out[column], ("unreferenced", out[column]))
        return out

    state = {}
    for name in COLLECTIONS:
        docs = leads if name == "leads" else list(db[name].find())
        if name in ENTITY_REFERENCES:
            column = ENTITY_REFERENCES[name]
            docs = [{**doc, "_id": names[column].get(doc["_id"], ("unreferenced", doc["_id"]))} for doc in docs]
        elif name == "technographics":
            docs = [{**rename(doc), "_id": None} for doc in docs]
        else:
            docs = [rename(doc) for doc in docs]
        state[name] = sorted(repr(sorted(doc.items(), key=lambda kv: kv[0])) for doc in docs)
    state["rejects"] = sorted(repr(sorted(d.items())) for d in db[REJECTS_COLLECTION].find())
    return state


def from_scratch(db, mongo_uri, tmp_path) -> dict:
    """The canonical state a migration from scratch of `db`'s current nested source writes."""
    scratch = connect(mongo_uri, f"scratch_{uuid.uuid4().hex[:10]}")
    try:
        raw = db.leads.with_options(codec_options=RAW_CODEC_OPTIONS)
        scratch.leads.insert_many([RawBSONDocument(content(doc.raw)) for doc in raw.find(NESTED_LEAD)])
        run(scratch, tmp_path, "scratch")
        return canonical(scratch)
    finally:
        scratch.client.drop_database(scratch.name)


def entity_ids(db) -> dict[str, set]:
    return {name: {d["_id"] for d in db[name].find({}, {"_id": 1})} for name in ENTITY_REFERENCES}


def lead_ids(db) -> set:
    return {d["_id"] for d in db.leads.find(NORMALIZED_LEAD, {"_id": 1})}


@pytest.fixture
def live(db, tmp_path):
    """Part of a messy source migrated; the rest of it waiting to be added."""
    leads = list(generate_leads(360, seed=17))
    db.leads.insert_many(leads[:240])
    _, report = run(db, tmp_path, "first")
    assert report.ok, report.problems()
    return db, leads[240:]


def researched_with_persona(db, field: str) -> dict:
    """A migrated nested lead whose research names a persona with `field`."""
    return db.leads.find_one(
        {**NESTED_LEAD, "_migrated": True, f"research.PersonaProfile.{field}": {"$type": "string"}}
    )


def test_refresh_equals_a_migration_from_scratch(live, tmp_path, mongo_uri):
    db, rest = live
    before_leads, before_entities = lead_ids(db), entity_ids(db)

    db.leads.insert_many(rest)  # the rest of the source arrives
    for lead in db.leads.find({**NESTED_LEAD, "research": {"$type": "object"}}).limit(5):  # re-researched
        db.leads.update_one(
            {"_id": lead["_id"]},
            {
                "$set": {
                    "research.DetectedSignals": [{"type": "hiring", "signal": "new VP Sales", "strength": "high"}],
                    "icp": {"icp_score": 91, "fit_tier": "A", "score_breakdown": {"fit": {"score": 40}}},
                }
            },
        )
    with_email = researched_with_persona(db, "email")
    with_linkedin = db.leads.find_one(
        {
            **NESTED_LEAD,
            "_migrated": True,
            "research.PersonaProfile.linkedin_url": {"$type": "string"},
            "_id": {"$ne": with_email["_id"]},
        }
    )
    linker = {  # a new lead naming the email of one persona and the LinkedIn URL of another
        "lead_input": {"name": "Link Er", "email": with_email["research"]["PersonaProfile"]["email"], "company": "X"},
        "research": {"PersonaProfile": {"linkedin_url": with_linkedin["research"]["PersonaProfile"]["linkedin_url"]}},
        "status": "researched",
    }
    db.leads.insert_one(linker)
    moved = db.leads.find_one(
        {**NESTED_LEAD, "_migrated": True, "_id": {"$nin": [with_email["_id"], with_linkedin["_id"]]}}
    )
    db.leads.update_one(
        {"_id": moved["_id"]},
        {
            "$set": {"lead_input.email": "someone.new@fresh-mail.example"},
            "$unset": {"research.PersonaProfile.email": "", "research.PersonaProfile.linkedin_url": ""},
        },
    )
    rebranded = db.leads.find_one(
        {**NESTED_LEAD, "_migrated": True, "research.CompanyProfile.domain": {"$type": "string"}}
    )
    db.leads.update_one({"_id": rebranded["_id"]}, {"$set": {"research.CompanyProfile.domain": "rebranded-co.example"}})
    quiet = db.leads.find_one({**NESTED_LEAD, "_migrated": True, "research.DetectedSignals.0": {"$exists": True}})
    db.leads.update_one({"_id": quiet["_id"]}, {"$unset": {"research.DetectedSignals": ""}})  # updated_at untouched

    changes, _, report = run(db, tmp_path, "refresh", fn=refresh)
    assert changes.any and report.ok, report.problems()
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)
    assert before_leads <= lead_ids(db), "a lead lost its id"
    after = entity_ids(db)
    for name, ids in before_entities.items():
        assert len(ids & after[name]) >= 0.95 * len(ids), name
    assert db.detected_signals.count_documents({"lead_id": quiet["_migrated_lead_id"]}) == 0

    assert not detect_changes(db).any
    again, folder, _ = run(db, tmp_path, "again", fn=refresh)
    assert not again.any and folder is None


def test_invalid_and_fixed_leads_move_between_rejects_and_leads(live, tmp_path, mongo_uri):
    db, _ = live
    victim = db.leads.find_one({**NESTED_LEAD, "_migrated": True})
    reject = db[REJECTS_COLLECTION].find_one({})
    db.leads.update_one({"_id": victim["_id"]}, {"$set": {"lead_input": "not an object"}})
    db.leads.update_one(
        {"_id": reject["_id"]}, {"$set": {"lead_input": {"name": "Fixed Now", "email": "fixed@now.example"}}}
    )

    _, _, report = run(db, tmp_path, "refresh", fn=refresh)
    assert report.ok, report.problems()
    assert "_migrated" not in db.leads.find_one({"_id": victim["_id"]})
    assert db[REJECTS_COLLECTION].find_one({"_id": victim["_id"]})["reason"] == "lead_input is not an object"
    assert db.leads.find_one({"legacy_lead_id": victim["_id"]}) is None
    assert db.leads.find_one({"_id": reject["_id"]})["_migrated"] is True
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)


def test_a_removed_source_lead_takes_its_documents_along(live, tmp_path, mongo_uri):
    db, _ = live
    gone = db.leads.find_one({**NESTED_LEAD, "_migrated": True, "research": {"$type": "object"}})
    db.leads.delete_one({"_id": gone["_id"]})
    _, _, report = run(db, tmp_path, "refresh", fn=refresh)
    assert report.ok, report.problems()
    assert db.research_runs.count_documents({"lead_id": gone["_migrated_lead_id"]}) == 0
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)


def test_a_refresh_works_on_the_changed_leads_and_what_they_tie_to(live, tmp_path, mongo_uri):
    db, _ = live
    quiet = db.leads.find_one({**NESTED_LEAD, "_migrated": True, "research.DetectedSignals.0": {"$exists": True}})
    db.leads.update_one({"_id": quiet["_id"]}, {"$unset": {"research.DetectedSignals": ""}})
    _, folder, report = run(db, tmp_path, "refresh", fn=refresh)
    scope = folder.read_result("scope")
    assert report.ok and "refresh scope" in report.render(), report.problems()
    assert scope is not None and 1 <= scope["leads"] < 60, scope  # of 240: its company's and persona's leads
    written = sum(
        folder.read_result(f"load-{name}")["inserted"] + folder.read_result(f"load-{name}")["replaced"]
        for name in COLLECTIONS
    )
    assert written <= 2  # the lead's research run, and its company's merged values at most
    staged = folder.read_result("normalize")["rows"]
    assert scope["leads"] > 1 and staged["leads"] == 1  # the others are in the scope for their company's sake
    assert staged["companies"] >= 1 and staged["research_runs"] == 1
    assert db.detected_signals.count_documents({"lead_id": quiet["_migrated_lead_id"]}) == 0
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)


def test_after_a_run_that_died_a_refresh_resolves_the_whole_source(live, tmp_path, mongo_uri):
    db, rest = live
    set_key_store_complete(db, False)  # what a run killed between its first and its last write leaves
    db.leads.insert_many(rest[:10])
    _, folder, report = run(db, tmp_path, "refresh", fn=refresh)
    assert folder.read_result("scope") is None and report.ok, report.problems()
    assert key_store_complete(db)
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)
    db.leads.insert_many(rest[10:20])
    _, folder, report = run(db, tmp_path, "again", fn=refresh)
    assert folder.read_result("scope") is not None and report.ok, report.problems()
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)


def test_partitions_give_what_one_partition_gives(live, tmp_path, mongo_uri):
    """The source split into _id ranges, resolved together: a rerun in three partitions of a
    one-partition migration writes nothing; a refresh in three equals a migration from scratch."""
    db, rest = live
    folder, report = migrate(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "p3"), partitions=3)
    assert report.ok and folder.read_result("plan")["partitions"] == 3
    for name in COLLECTIONS:
        loaded = folder.read_result(f"load-{name}")
        assert loaded["inserted"] == loaded["replaced"] == 0, (name, loaded)
    assert folder.read_result("mark")["marked"] == 0

    db.leads.insert_many(rest[:40])
    changes, folder, report = refresh(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "r3"), partitions=3)
    assert report.ok and folder.read_result("plan")["partitions"] == 3, report.problems()
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)


def nested(name: str, email: str | None = None, company: str | None = None, **research) -> dict:
    lead = {"lead_input": {"name": name, "email": email, "company": company}, "status": "researched"}
    if research:
        lead["research"] = research
    return lead


def test_unchanged_leads_whose_company_or_persona_merges_are_relinked_not_read_again(db, tmp_path, mongo_uri):
    """A new lead ties a domain-less company to a domain company of another name, and a persona known
    by email to one known by LinkedIn URL: the smaller of each merges into the larger, whose id
    survives, and the unchanged leads of the smaller point at it afterwards. Only the new lead and
    those relinked leads are read from the source; the rest come from the key store."""
    globex_corp = [
        nested(f"Corp {i}", f"corp{i}@globex.example", CompanyProfile={"name": "Globex Corp", "domain": "globex.com"})
        for i in range(3)
    ]
    globex = [nested(f"Plain {i}", f"plain{i}@globex.example", "Globex") for i in range(2)]
    by_url = [
        nested(
            f"Url {i}", company="Initech", PersonaProfile={"full_name": "Una", "linkedin_url": "linkedin.com/in/una"}
        )
        for i in range(2)
    ]
    by_email = [nested("Una", "una@initech.example", "Initech")]
    bystanders = [nested(f"Other {i}", f"other{i}@elsewhere.example", f"Else {i}") for i in range(20)]
    db.leads.insert_many([*globex_corp, *globex, *by_url, *by_email, *bystanders])
    run(db, tmp_path, "first")
    company_of = {lead["name"]: lead["company_id"] for lead in db.leads.find(NORMALIZED_LEAD)}
    persona_of = {lead["name"]: lead["persona_id"] for lead in db.leads.find(NORMALIZED_LEAD)}
    assert company_of["Plain 0"] != company_of["Corp 0"] and persona_of["Una"] != persona_of["Url 0"]

    db.leads.insert_one(nested("Tie", "tie@globex.example", CompanyProfile={"name": "Globex", "domain": "globex.com"}))
    db.leads.insert_one(
        nested("Una", "una@initech.example", "Initech", PersonaProfile={"linkedin_url": "linkedin.com/in/una"})
    )
    _, folder, report = run(db, tmp_path, "refresh", fn=refresh)
    assert report.ok, report.problems()
    scope = folder.read_result("scope")
    assert scope["changed"] == 2 and folder.read_result("plan")["documents"] == 2, "only the new leads are read"
    relinked = folder.read_table("refresh/relinked-leads")["legacy_lead_id"].to_pylist()
    assert len(relinked) == 3  # Plain 0 and 1 (company), the first Una (persona)
    after = {lead["name"]: lead for lead in db.leads.find(NORMALIZED_LEAD)}
    assert after["Plain 0"]["company_id"] == after["Plain 1"]["company_id"] == company_of["Corp 0"]
    assert db.companies.find_one({"_id": company_of["Plain 0"]}) is None, "the merged company goes"
    assert {lead["persona_id"] for name, lead in after.items() if name.startswith(("Una", "Url"))} == {
        persona_of["Url 0"]
    }
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)
