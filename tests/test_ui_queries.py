"""The Leads page's queries against the server: the total matching the filter, each sort's order
(leads without the sorted value last, ties by id) the same across pages, the fit tier filter
with a sort, and each lead's origin."""

from __future__ import annotations

import pytest

from leadnorm.devtools.seed import seed_leads
from leadnorm.steps.ingest import ingest_one
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.research import write_research
from leadnorm.steps.runstore import RunFolder
from leadnorm.ui.queries import ORIGINS, LeadFilter, find_leads
from leadnorm.views import NOT_NESTED


@pytest.fixture(scope="module")
def leads_db(mongo_uri, tmp_path_factory):
    """90 migrated leads, one created through the API, one migrated lead whose research the
    application wrote."""
    from leadnorm.mongo import connect

    db = connect(mongo_uri, "test_ui_queries")
    db.client.drop_database(db.name)
    tmp = tmp_path_factory.mktemp("queries")
    seed_leads(db, 90, seed=21)
    migrate(db, backup_dir=tmp / "b", skip_validation=True, run=RunFolder(tmp / "run"))
    created, _ = ingest_one(db, {"name": "Ada Api", "title": "CTO", "company": "Api Co", "email": "ada@api.example"})
    researched = db.leads.find_one({**NOT_NESTED, "status": "uploaded", "legacy_lead_id": {"$exists": True}})
    research = {"CompanyProfile": {"name": "Written Co", "domain": "written.example"}}
    write_research(db, researched["_id"], research, {"icp_score": 55})
    yield db, created, researched["_id"]
    db.client.drop_database(db.name)


def every_page(db, **wanted) -> list[dict]:
    leads, skip = [], 0
    while True:
        page = find_leads(db, LeadFilter(limit=7, skip=skip, **wanted), show_personal=True)
        leads += page.leads
        if not page.has_more:
            return leads
        skip += 7


def test_the_total_is_every_lead_the_filter_matches(leads_db):
    db, *_ = leads_db
    assert find_leads(db, LeadFilter(limit=5), show_personal=True).total == db.leads.count_documents(NOT_NESTED)
    researched = find_leads(db, LeadFilter(status="researched", limit=5), show_personal=True)
    assert researched.total == db.leads.count_documents({**NOT_NESTED, "status": "researched"})
    tier_a = {s["lead_id"] for s in db.icp_scores.find({"fit_tier": "A"})}
    assert find_leads(db, LeadFilter(fit_tier="A", limit=5), show_personal=True).total == len(tier_a)


@pytest.mark.parametrize("sort", ["icp_score", "fit_tier", "status", "company"])
def test_each_sort_orders_every_page_the_same_way(leads_db, sort):
    db, *_ = leads_db
    leads = every_page(db, sort=sort)
    assert sorted(str(lead["_id"]) for lead in leads) == sorted(str(i) for i in db.leads.distinct("_id", NOT_NESTED))
    value = {
        "icp_score": lambda lead: (lead["icp"] or {}).get("icp_score"),
        "fit_tier": lambda lead: (lead["icp"] or {}).get("fit_tier"),
        "status": lambda lead: lead["status"],
        "company": lambda lead: (lead["company"] or {}).get("name"),
    }[sort]
    keys = [value(lead) for lead in leads]
    present = [k for k in keys if k not in (None, "")]
    assert keys[: len(present)] == present, "leads without the value come last"
    assert present == sorted(present, reverse=sort == "icp_score")
    for before, after in zip(leads, leads[1:]):
        if value(before) == value(after):
            assert str(before["_id"]) < str(after["_id"])


def test_a_tier_sorted_by_score(leads_db):
    db, *_ = leads_db
    leads = every_page(db, fit_tier="B", sort="icp_score")
    scores = [lead["icp"]["icp_score"] for lead in leads]
    assert scores == sorted(scores, reverse=True) and {lead["icp"]["fit_tier"] for lead in leads} == {"B"}
    assert len(leads) == db.icp_scores.count_documents({"fit_tier": "B"})


def test_each_lead_says_where_it_comes_from(leads_db):
    db, created, researched = leads_db
    origins = {lead["_id"]: lead["origin"] for lead in every_page(db)}
    assert origins.pop(created) == ORIGINS[2] and origins.pop(researched) == ORIGINS[3]
    assert set(origins.values()) == {ORIGINS[0]}
