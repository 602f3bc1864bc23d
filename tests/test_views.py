"""The joined lead view against a real migration: every lead shows what its nested source held."""

from __future__ import annotations

from collections import defaultdict

import pytest
from bson import ObjectId
from conftest import migrated_once
from pymongo import MongoClient, monitoring

from leadnorm import views
from leadnorm.contract import MIGRATED, NESTED_LEAD, NORMALIZED_LEAD
from leadnorm.transform.clean import Warnings, name_key, normalize_domain, normalize_email

INDEXED_JOINS = {  # (collection, field) of each $lookup: what the contract indexes
    ("companies", "_id"),
    ("personas", "_id"),
    ("technographics", "company_id"),
    ("detected_signals", "lead_id"),
    ("research_runs", "lead_id"),
    ("citations", "research_run_id"),
    ("icp_scores", "lead_id"),
    ("icp_factor_breakdowns", "icp_score_id"),
}


@pytest.fixture(scope="module")
def migrated(mongo_uri, tmp_path_factory):
    """300 seeded leads, migrated once for the module; the tests only read."""
    yield from migrated_once(mongo_uri, tmp_path_factory.mktemp("views"), seed=11)


def _objects(value) -> list[dict]:
    """The contract's list reading: one object is a list of one, anything but objects is dropped."""
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _by(db, collection: str, field: str, sort: str = "_id") -> dict:
    grouped = defaultdict(list)
    for doc in db[collection].find().sort(sort, 1):
        grouped[doc[field]].append(doc)
    return grouped


def _expected_domain(profile: dict) -> str | None:
    """A profile's domain, else its website's host (contract, section 3)."""
    return normalize_domain(profile.get("domain"), "x", Warnings()) or normalize_domain(
        profile.get("website"), "x", Warnings()
    )


def test_every_migrated_lead_shows_what_its_source_held(migrated):
    db = migrated
    stored_leads = {d["_id"]: d for d in db.leads.find(NORMALIZED_LEAD)}
    companies = {d["_id"]: d for d in db.companies.find()}
    personas = {d["_id"]: d for d in db.personas.find()}
    technographics = _by(db, "technographics", "company_id", sort="name")
    citations = _by(db, "citations", "research_run_id")
    breakdowns = _by(db, "icp_factor_breakdowns", "icp_score_id", sort="category")
    sources = list(db.leads.find({**NESTED_LEAD, MIGRATED: True}))
    assert len(sources) > 280

    checked_domains = checked_emails = 0
    for source in sources:
        joined = views.lead(db, source["_migrated_lead_id"])
        stored = stored_leads[source["_migrated_lead_id"]]
        research = _dict(source.get("research"))
        icp = source.get("icp")
        assert joined["legacy_lead_id"] == source["_id"]
        assert {k: joined[k] for k in stored} == stored

        company = companies.get(stored.get("company_id"))
        assert joined["company"] == company
        profile = _dict(research.get("CompanyProfile"))
        company_name = name_key(profile.get("name")) or name_key(_dict(source["lead_input"]).get("company"))
        if company_name:
            assert name_key(company["name"]) == company_name
        if domain := _expected_domain(profile):
            assert company["domain"] == domain
            checked_domains += 1
        assert joined["technographics"] == technographics.get(stored.get("company_id"), [])
        source_tech = {
            name_key(t.get("name") if isinstance(t, dict) else t) for t in profile.get("technographics") or []
        }
        assert source_tech - {None} <= {name_key(t["name"]) for t in joined["technographics"]}

        assert joined["persona"] == personas.get(stored.get("persona_id"))
        persona = _dict(research.get("PersonaProfile"))
        email = normalize_email(persona.get("email"), "x", Warnings()) or normalize_email(
            _dict(source["lead_input"]).get("email"), "x", Warnings()
        )
        if email:
            assert joined["persona"]["email"] == email
            checked_emails += 1

        assert len(joined["detected_signals"]) == len(_objects(research.get("DetectedSignals")))
        assert all(s["lead_id"] == joined["_id"] for s in joined["detected_signals"])
        if research:
            run = joined["research"]
            assert run["lead_id"] == joined["_id"]
            assert len(run["citations"]) == len(_objects(_dict(research.get("ResearchMeta")).get("citations")))
            assert run["citations"] == citations.get(run["_id"], [])
        else:
            assert joined["research"] is None

        if isinstance(icp, dict):
            assert joined["icp"]["lead_id"] == joined["_id"]
            categories = set(_dict(icp.get("score_breakdown")))
            assert {b["category"] for b in joined["icp"]["factor_breakdowns"]} == categories
            assert len(joined["icp"]["factor_breakdowns"]) == len(categories)
            assert joined["icp"]["factor_breakdowns"] == breakdowns.get(joined["icp"]["_id"], [])
        else:
            assert joined["icp"] is None
    assert checked_domains > 100 and checked_emails > 200  # the comparisons above did run


def test_leads_filters_on_the_lead_and_joins_each(migrated):
    page = views.leads(migrated, {"status": "icp_scored"}, limit=25)
    assert len(page) == 25
    assert [lead["_id"] for lead in page] == sorted(lead["_id"] for lead in page)
    for lead in page:
        assert lead["status"] == "icp_scored" and "lead_input" not in lead
        assert lead["company"] is not None and lead["icp"] is not None
        assert lead == views.lead(migrated, lead["_id"])


def test_pages_are_disjoint_and_cover_every_normalized_lead(migrated):
    total = migrated.leads.count_documents(NORMALIZED_LEAD)
    pages, skip = [], 0
    while page := views.leads(migrated, limit=100, skip=skip):
        pages.append([lead["_id"] for lead in page])
        skip += 100
    ids = [i for page in pages for i in page]
    assert len(ids) == len(set(ids)) == total
    assert ids == sorted(ids)
    assert [len(p) for p in pages[:-1]] == [100] * (len(pages) - 1)


def test_a_lead_without_research_has_none_and_no_signals(migrated):
    source = migrated.leads.find_one({**NESTED_LEAD, MIGRATED: True, "research": {"$exists": False}})
    joined = views.lead(migrated, source["_migrated_lead_id"])
    assert joined["status"] == "uploaded"
    assert joined["research"] is None and joined["icp"] is None and joined["detected_signals"] == []


def test_absent_and_nested_ids_give_none(migrated):
    nested = migrated.leads.find_one(NESTED_LEAD)
    assert views.lead(migrated, nested["_id"]) is None
    assert views.lead(migrated, ObjectId()) is None
    assert views.leads(migrated, {"status": "no such status"}) == []


def test_each_view_is_one_aggregation(migrated, mongo_uri):
    commands = []

    class Recorder(monitoring.CommandListener):
        def started(self, event):
            commands.append(event.command_name)

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    with MongoClient(mongo_uri, event_listeners=[Recorder()], tz_aware=True) as client:
        db = client[migrated.name]
        lead_id = views.leads(db, limit=1, skip=7)[0]["_id"]
        views.lead(db, lead_id)
        views.leads(db, limit=50, skip=50)
    assert [c for c in commands if c != "endSessions"] == ["aggregate"] * 3


def _lookups(pipeline: list[dict]):
    for stage in pipeline:
        if "$lookup" in stage:
            yield stage["$lookup"]
            yield from _lookups(stage["$lookup"].get("pipeline", []))


def _explained_lookups(node):
    """Per-$lookup index facts a real MongoDB (5.0+) reports: classic `$lookup` stages carry
    `indexesUsed`/`collectionScans`, lookups pushed down to the slot engine are EQ_LOOKUP nodes."""
    if isinstance(node, dict):
        if "$lookup" in node and "indexesUsed" in node:
            yield node["$lookup"]["from"], bool(node["indexesUsed"]) and not node.get("collectionScans")
        if node.get("stage") == "EQ_LOOKUP":
            yield node["foreignCollection"].split(".")[-1], node.get("strategy") == "IndexedLoopJoin"
        for value in node.values():
            yield from _explained_lookups(value)
    elif isinstance(node, list):
        for value in node:
            yield from _explained_lookups(value)


def test_every_lookup_joins_on_an_index(migrated):
    lookups = list(_lookups(views.lead_pipeline({"_id": ObjectId()}, limit=1)))
    assert {(lk["from"], lk["foreignField"]) for lk in lookups} == INDEXED_JOINS
    for lk in lookups:  # localField/foreignField: the form both servers drive through an index
        assert lk["localField"]
        leading = [next(iter(ix["key"]))[0] for ix in migrated[lk["from"]].index_information().values()]
        assert lk["foreignField"] in leading, lk

    lead_id = migrated.icp_scores.find_one()["lead_id"]
    for pipeline in (views.lead_pipeline({"_id": lead_id}, limit=1), views.lead_pipeline(skip=10, limit=20)):
        explained = migrated.command(
            "explain", {"aggregate": "leads", "pipeline": pipeline, "cursor": {}}, verbosity="executionStats"
        )
        assert explained["ok"] == 1
        # SecantusDB reports no per-lookup facts (it drives localField/foreignField joins through the
        # foreign index regardless); a real MongoDB does, and then every reported join used an index.
        assert all(indexed for _, indexed in _explained_lookups(explained)), list(_explained_lookups(explained))


def test_bad_pages_are_refused():
    with pytest.raises(ValueError):
        views.lead_pipeline(limit=0)
    with pytest.raises(ValueError):
        views.lead_pipeline(skip=-1)
