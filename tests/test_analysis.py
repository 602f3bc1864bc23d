"""The notebook helpers: each frame has its shape and totals that direct queries confirm;
`mask_personal` leaves no email in sight."""

from __future__ import annotations

import copy
import re
from collections import Counter, defaultdict
from statistics import mean

import pandas as pd
import pytest
from conftest import migrated_once

from leadnorm import analysis, views
from leadnorm.contract import FIT_TIERS, MIGRATED, NESTED_LEAD, NORMALIZED_LEAD, STATUSES

EMAIL = re.compile(r"[^\s@\"']+@[^\s@\"']+\.[a-z]{2,}", re.IGNORECASE)  # as tests/test_notebooks.py
MASK = re.compile(r"^masked:[0-9a-f]{8}$")
DATED = {"detected_at": {"$type": "date"}}


@pytest.fixture(scope="module")
def migrated(mongo_uri, tmp_path_factory):
    """300 seeded leads, migrated once for the module; the tests only read."""
    yield from migrated_once(mongo_uri, tmp_path_factory.mktemp("analysis"), seed=5)


def test_leads_by_status_and_tier(migrated):
    frame = analysis.leads_by_status_and_tier(migrated)
    assert list(frame.index) == list(STATUSES)
    unreadable = migrated.icp_scores.count_documents({"fit_tier": ""})
    assert list(frame.columns) == [*FIT_TIERS, *([analysis.UNREADABLE] if unreadable else []), analysis.NO_SCORE]
    assert frame.to_numpy().sum() == migrated.leads.count_documents(NORMALIZED_LEAD)
    assert (frame[analysis.UNREADABLE].sum() if unreadable else 0) == unreadable
    assert frame[analysis.NO_SCORE].sum() == migrated.leads.count_documents(
        {**NORMALIZED_LEAD, "status": {"$ne": "icp_scored"}}
    )
    for status in STATUSES:
        assert frame.loc[status].sum() == migrated.leads.count_documents({**NORMALIZED_LEAD, "status": status})
    for tier in FIT_TIERS:
        assert frame[tier].sum() == migrated.icp_scores.count_documents({"fit_tier": tier})
    assert frame.loc["icp_scored", list(FIT_TIERS)].sum() > 0
    assert frame.loc[["uploaded", "researched"], list(FIT_TIERS)].to_numpy().sum() == 0


def test_companies_by_lead_count(migrated):
    frame = analysis.companies_by_lead_count(migrated, top=5)
    assert list(frame.columns) == ["name", "domain", "leads"] and len(frame) == 5
    per_company = Counter(
        d["company_id"] for d in migrated.leads.find({**NORMALIZED_LEAD, "company_id": {"$exists": True}})
    )
    assert list(frame["leads"]) == sorted(per_company.values(), reverse=True)[:5]
    for row in frame.itertuples():
        company = migrated.companies.find_one({"name": row.name, "domain": row.domain or {"$exists": False}})
        assert row.leads == migrated.leads.count_documents({"company_id": company["_id"]})
    everything = analysis.companies_by_lead_count(migrated, top=10_000)
    assert everything["leads"].sum() == sum(per_company.values())


def test_signal_types_over_time(migrated):
    monthly = analysis.signal_types_over_time(migrated)
    assert isinstance(monthly.index, pd.PeriodIndex) and monthly.index.freqstr == "M"
    assert monthly.index.is_monotonic_increasing
    assert set(monthly.columns) == set(migrated.detected_signals.distinct("type", DATED))
    assert monthly.to_numpy().sum() == migrated.detected_signals.count_documents(DATED)
    for signal_type in monthly.columns:
        assert monthly[signal_type].sum() == migrated.detected_signals.count_documents({**DATED, "type": signal_type})
    quarterly = analysis.signal_types_over_time(migrated, freq="Q")
    assert len(quarterly) < len(monthly) and quarterly.to_numpy().sum() == monthly.to_numpy().sum()


def test_icp_factor_contributions_by_tier(migrated):
    frame = analysis.icp_factor_contributions_by_tier(migrated)
    tiers = {s["_id"]: s["fit_tier"] or analysis.UNREADABLE for s in migrated.icp_scores.find()}
    scores = defaultdict(list)
    for breakdown in migrated.icp_factor_breakdowns.find():
        scores[tiers[breakdown["icp_score_id"]], breakdown["category"]].append(breakdown["score"])
    assert list(frame.columns) == sorted({category for _, category in scores})
    assert list(frame.index) == [t for t in [*FIT_TIERS, analysis.UNREADABLE] if t in {tier for tier, _ in scores}]
    for (tier, category), values in scores.items():
        assert frame.loc[tier, category] == pytest.approx(mean(values))


def test_icp_scores_tell_a_defaulted_score_from_a_real_one(migrated):
    frame = analysis.icp_scores(migrated)
    assert len(frame) == migrated.icp_scores.count_documents({})
    legacy = {lead["_id"]: lead["legacy_lead_id"] for lead in migrated.leads.find(NORMALIZED_LEAD)}
    for row in frame.itertuples():
        source = migrated.leads.find_one({"_id": legacy[row.lead_id]})["icp"].get("icp_score")
        number = None
        try:
            number = float(str(source).strip().replace(",", ""))
        except ValueError:
            pass
        real = number is not None and not isinstance(source, bool) and 0 <= number <= 100
        assert row.score_read == real, (source, row)
        if not real:
            assert row.icp_score == 0  # the contract's default, which the analysis now names
    assert not frame["score_read"].all() and frame["score_read"].any(), "the seed holds both kinds"


def test_technographics_frequency(migrated):
    frame = analysis.technographics_frequency(migrated, top=10)
    assert list(frame.columns) == ["technology", "category", "companies"] and len(frame) == 10
    assert frame["companies"].is_monotonic_decreasing
    per_technology = Counter(t["name"].strip().casefold() for t in migrated.technographics.find())
    for row in frame.itertuples():
        assert row.companies == per_technology[row.technology.strip().casefold()]
        assert row.category
    everything = analysis.technographics_frequency(migrated, top=10_000)
    assert everything["companies"].sum() == migrated.technographics.count_documents({})
    assert len(everything) == len(per_technology)


def test_dedupe_ratios(migrated):
    frame = analysis.dedupe_ratios(migrated)
    assert list(frame.index) == ["companies", "personas"]
    mentions = migrated.leads.count_documents({**NESTED_LEAD, MIGRATED: True})
    for entity in ("companies", "personas"):
        stored = migrated[entity].count_documents({})
        assert frame.loc[entity, "mentions"] == mentions
        assert frame.loc[entity, "entities"] == stored
        assert frame.loc[entity, "mentions_per_entity"] == pytest.approx(mentions / stored)
    assert frame.loc["companies", "mentions_per_entity"] > frame.loc["personas", "mentions_per_entity"] > 1


def _shown(value) -> str:
    return value.to_string() if isinstance(value, pd.DataFrame | pd.Series) else repr(value)


def test_mask_personal_hides_every_email_and_keeps_them_on_request(migrated):
    joined = views.leads(migrated, {"status": "icp_scored"}, limit=40)
    sources = list(migrated.leads.find(NESTED_LEAD).limit(40))
    extra_text = pd.DataFrame({"note": ["write to Ann <ann.smith@acme.io> today", "none"], "n": [1, 2]})
    emails = pd.Series([lead["email"] for lead in joined], name="email")
    shapes = [joined, joined[0], pd.DataFrame(joined), sources, pd.json_normalize(sources), extra_text, emails]
    originals = copy.deepcopy(shapes[:2] + shapes[3:4])
    for shape in shapes:
        assert EMAIL.search(_shown(shape))
        assert analysis.mask_personal(shape, show_personal=True) is shape
        with pd.option_context("display.max_colwidth", None, "display.width", 10_000):
            assert not EMAIL.search(_shown(analysis.mask_personal(shape))), type(shape)
    assert shapes[:2] + shapes[3:4] == originals  # the input is left as it was


def test_mask_personal_masks_people_stably_and_keeps_the_rest(migrated):
    lead = views.leads(migrated, {"status": "icp_scored", "email": {"$ne": ""}}, limit=1)[0]
    masked = analysis.mask_personal(lead)
    assert MASK.match(masked["name"]) and MASK.match(masked["email"])
    assert MASK.match(masked["persona"]["full_name"]) and MASK.match(masked["persona"]["linkedin_url"])
    if lead["email"] == lead["persona"]["email"]:
        assert masked["email"] == masked["persona"]["email"]  # stable: masked columns still join
    assert masked["company"]["name"] == lead["company"]["name"]
    assert [t["name"] for t in masked["technographics"]] == [t["name"] for t in lead["technographics"]]
    assert masked["status"] == lead["status"] and masked["_id"] == lead["_id"]

    companies = analysis.companies_by_lead_count(migrated, top=3)
    assert analysis.mask_personal(companies).equals(companies)  # company names are not people's
    frame = analysis.mask_personal(pd.DataFrame(views.leads(migrated, limit=40)))
    named = frame["name"] != ""  # a lead known by its email alone has no name to hide
    assert named.sum() > 30 and frame.loc[named, "name"].str.match(MASK.pattern).all()
