"""Lead-level rules of leadnorm.transform.split: one source lead in; its lead, research run, citations,
signals, ICP score and breakdowns out (final), its company/persona/technographic
*mentions* out (deduplicated later by resolve); rejects; warnings."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from leadnorm.contract import REJECT_NO_IDENTITY, REJECT_NOT_OBJECT
from leadnorm.steps.extract import source_frame
from leadnorm.transform.ids import derived_id, lead_id
from leadnorm.transform.split import split_batch

from .leads import (
    MISSING,
    UTC,
    at,
    mention_rows,
    nested_lead,
    oid,
    only,
    only_mention,
    research,
    rows,
    run,
    split,
)

FULL_ICP = {
    "icp_score": 82,
    "fit_tier": "A",
    "scored_at": at(3),
    "model_version": "icp-v2",
    "rationale": "Good fit",
    "score_breakdown": {"firmographic": {"score": 40, "max_score": 50, "factors": ["Size 200-500"]}},
}


def full_research(**meta) -> dict:
    return research(
        company={"name": "Acme", "domain": "acme.io", "industry": "SaaS"},
        persona={"full_name": "Ann Lee", "seniority": "VP"},
        signals=[{"type": "hiring", "signal": "Hiring 5 SDRs", "strength": "High"}],
        completed_at=at(2),
        model="gpt-x",
        citations=[{"source_name": "LinkedIn", "url": "https://linkedin.com/company/acme", "accessed_at_utc": at(2)}],
        **meta,
    )


def without(row: dict, *keys: str) -> dict:
    return {k: v for k, v in row.items() if k not in keys}


# --- status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc_research, doc_icp, expected",
    [
        (MISSING, MISSING, "uploaded"),
        (None, None, "uploaded"),
        ("RESEARCH", MISSING, "researched"),
        ("RESEARCH", "ICP", "icp_scored"),
        (MISSING, "ICP", "icp_scored"),
    ],
)
def test_status_is_derived_not_copied(doc_research, doc_icp, expected):
    doc = nested_lead(
        research=full_research() if doc_research == "RESEARCH" else doc_research,
        icp=FULL_ICP if doc_icp == "ICP" else doc_icp,
        status="icp_scored" if expected == "uploaded" else "uploaded",  # the stored status is stale
    )
    mentions = split(doc)
    assert only_mention(mentions, "leads")["status"] == expected
    assert len(mentions.research_runs) == (1 if doc_research == "RESEARCH" else 0)
    assert len(mentions.icp_scores) == (1 if doc_icp == "ICP" else 0)


# --- lead fields --------------------------------------------------------------------------------


def test_lead_fields_from_lead_input():
    mentions = split(nested_lead(7, name="  Ann Lee ", title=" VP Sales ", email=" ANN@Acme.IO ", company="Acme"))
    lead = only_mention(mentions, "leads")
    assert lead["_id"] == lead_id(oid(7))
    assert without(lead, "created_at", "updated_at") == {
        "_id": lead_id(oid(7)),
        "name": "Ann Lee",
        "title": "VP Sales",
        "email": "ann@acme.io",
        "status": "uploaded",
        "legacy_lead_id": oid(7),
        "extra": None,
    }
    assert dict(mentions.warnings) == {}


def test_lead_title_and_email_default_to_empty_text():
    lead = only_mention(split(nested_lead(name="Ann", title=MISSING, email=None, company=MISSING)), "leads")
    assert (lead["name"], lead["title"], lead["email"]) == ("Ann", "", "")


def test_unreadable_lead_email_is_empty_and_counted():
    mentions = split(nested_lead(name="Ann", email="ann at acme"))
    assert only_mention(mentions, "leads")["email"] == ""
    assert dict(mentions.warnings) == {"leads.email": 1}
    assert list(mentions.outcomes["outcome"]) == ["migrated"]


def test_created_and_updated_at_are_utc():
    lead = only_mention(
        split(nested_lead(created_at=datetime(2024, 1, 5, 9, 30), updated_at="2024-02-01T10:00:00+02:00")), "leads"
    )
    assert lead["created_at"] == datetime(2024, 1, 5, 9, 30, tzinfo=UTC)
    assert lead["updated_at"] == datetime(2024, 2, 1, 8, 0, tzinfo=UTC)


def test_created_at_falls_back_to_object_id_time_and_updated_at_to_created_at():
    lead = only_mention(split(nested_lead(5)), "leads")
    assert (lead["created_at"], lead["updated_at"]) == (oid(5).generation_time, oid(5).generation_time)
    lead = only_mention(split(nested_lead(5, created_at=at(10))), "leads")
    assert (lead["created_at"], lead["updated_at"]) == (at(10), at(10))


def test_unreadable_dates_fall_back_and_are_counted():
    mentions = split(nested_lead(5, created_at="not a date", updated_at="2024-13-01"))
    lead = only_mention(mentions, "leads")
    assert (lead["created_at"], lead["updated_at"]) == (oid(5).generation_time, oid(5).generation_time)
    assert dict(mentions.warnings) == {"leads.created_at": 1, "leads.updated_at": 1}


# --- recency of a lead's mentions: what "most recent" means for it -------------------------------


@pytest.mark.parametrize(
    "fields, completed_at, expected",
    [
        ({"created_at": at(1), "updated_at": at(5)}, at(3), at(3)),  # research completion first
        ({"created_at": at(1), "updated_at": at(5)}, MISSING, at(5)),  # else updated_at
        ({"created_at": at(1)}, MISSING, at(1)),  # else created_at
        ({}, MISSING, oid(4).generation_time),  # else the ObjectId time
        ({"updated_at": at(5)}, "not a date", at(5)),  # an unreadable completion: updated_at
    ],
    ids=["completed", "updated", "created", "objectid", "unreadable-completed"],
)
def test_mention_recency(fields, completed_at, expected):
    doc = nested_lead(
        4, research=research(company={"name": "Acme", "technographics": ["Slack"]}, completed_at=completed_at), **fields
    )
    mentions = split(doc)
    assert only_mention(mentions, "company_mentions")["recency"] == expected
    assert only_mention(mentions, "persona_mentions")["recency"] == expected
    assert only_mention(mentions, "tech_mentions")["recency"] == expected
    assert dict(mentions.warnings) == (
        {"research_runs.research_meta.completed_at_utc": 1} if completed_at == "not a date" else {}
    )


# --- extra: unknown fields kept at every level --------------------------------------------------


def test_unknown_top_level_and_lead_input_fields_go_to_lead_extra():
    doc = nested_lead(
        lead_input={
            "name": "Ann",
            "email": "ann@acme.io",
            "company": "Acme",
            "phone": "+1 555 0100",
            "source": "csv-upload",
        },
        crm_owner="bob",
        tags=["vip"],
        notes=None,
        imported={"batch": 3},
        # named like a mark or a target field: the source split sees never holds the migration's
        # marks (`leadnorm.source` takes them off), so these are the application's data too
        _migrated="yes",
        legacy_lead_id="L-1",
        company_id="acme",
    )
    assert only_mention(split(doc), "leads")["extra"] == {
        "crm_owner": "bob",
        "tags": ["vip"],
        "notes": None,
        "imported": {"batch": 3},
        "_migrated": "yes",
        "legacy_lead_id": "L-1",
        "company_id": "acme",
        "lead_input": {"phone": "+1 555 0100", "source": "csv-upload"},
    }


def test_unknown_fields_kept_under_extra_at_every_level():
    doc = nested_lead(
        research={
            "CompanyProfile": {
                "name": "Acme",
                "domain": "acme.io",
                "ticker": "ACME",
                "technographics": [{"name": "Salesforce", "version": "2024"}],
            },
            "PersonaProfile": {"full_name": "Ann Lee", "pronouns": "she/her"},
            "DetectedSignals": [{"type": "hiring", "signal": "x", "region": "EMEA"}],
            "ResearchMeta": {"model": "m", "tokens": 1234, "citations": [{"source_name": "s", "url": "u", "rank": 1}]},
            "Summary": "Great account",
        },
        icp={
            "icp_score": 50,
            "fit_tier": "B",
            "reviewer": "kim",
            "score_breakdown": {"fit": {"score": 10, "weight": 0.5, "factors": [{"name": "f", "note": "n"}]}},
        },
    )
    mentions = split(doc)
    assert only_mention(mentions, "company_mentions")["extra"] == {"ticker": "ACME"}
    assert only_mention(mentions, "tech_mentions")["extra"] == {"version": "2024"}
    assert only_mention(mentions, "persona_mentions")["extra"] == {"pronouns": "she/her"}
    assert only_mention(mentions, "detected_signals")["extra"] == {"region": "EMEA"}
    assert only_mention(mentions, "research_runs")["extra"] == {
        "Summary": "Great account",
        "ResearchMeta": {"tokens": 1234},
    }
    assert only_mention(mentions, "citations")["extra"] == {"rank": 1}
    assert only_mention(mentions, "icp_scores")["extra"] == {"reviewer": "kim"}
    breakdown = only_mention(mentions, "icp_factor_breakdowns")
    assert breakdown["extra"] == {"weight": 0.5}
    assert breakdown["factors"] == [{"name": "f", "note": "n"}]
    # and they survive resolution onto the stored documents
    result = run(doc)
    assert only(result, "companies")["extra"] == {"ticker": "ACME"}
    assert only(result, "technographics")["extra"] == {"version": "2024"}
    assert only(result, "personas")["extra"] == {"pronouns": "she/her"}
    assert only(result, "research_runs")["extra"] == {"Summary": "Great account", "ResearchMeta": {"tokens": 1234}}


def test_no_unknown_fields_means_no_extra():
    mentions = split(nested_lead(research=full_research(), icp=FULL_ICP))
    for frame in (
        "leads",
        "company_mentions",
        "persona_mentions",
        "research_runs",
        "citations",
        "detected_signals",
        "icp_scores",
        "icp_factor_breakdowns",
    ):
        assert [r["extra"] for r in mention_rows(mentions, frame)] == [None], frame


def test_headquarters_object_keeps_its_unknown_parts():
    doc = nested_lead(
        research=research(
            company={
                "name": "Acme",
                "domain": "acme.io",
                "headquarters": {"city": "Austin", "region": "TX", "country": "US", "postal_code": "78701"},
            }
        )
    )
    company = only_mention(split(doc), "company_mentions")
    assert company["headquarters"] == "Austin, TX, US"
    assert "78701" in repr(company["extra"])


# --- research run, citations, signals -----------------------------------------------------------


def test_research_run_citations_and_signals():
    mentions = split(
        nested_lead(
            3,
            research=full_research(
                run_id="r-1", started_at_utc="2024-01-01T23:00:00Z", duration_ms="1500", confidence="medium"
            ),
        )
    )
    research_run = only_mention(mentions, "research_runs")
    assert research_run == {
        "_id": derived_id("research_run", oid(3)),
        "lead_id": lead_id(oid(3)),
        "legacy_lead_id": oid(3),
        "research_meta": {
            "run_id": "r-1",
            "model": "gpt-x",
            "started_at_utc": datetime(2024, 1, 1, 23, tzinfo=UTC),
            "completed_at_utc": at(2),
            "duration_ms": 1500,
            "confidence": "Medium",
        },
        "extra": None,
    }
    assert without(only_mention(mentions, "citations"), "_id") == {
        "research_run_id": research_run["_id"],
        "source_name": "LinkedIn",
        "url": "https://linkedin.com/company/acme",
        "accessed_at_utc": at(2),
        "extra": None,
    }
    assert without(only_mention(mentions, "detected_signals"), "_id") == {
        "lead_id": lead_id(oid(3)),
        "research_run_id": research_run["_id"],
        "type": "hiring",
        "signal": "Hiring 5 SDRs",
        "strength": "High",
        "detected_at": None,
        "source_url": "",
        "extra": None,
    }
    assert dict(mentions.warnings) == {}


def test_research_meta_defaults():
    mentions = split(nested_lead(research=research(company={"name": "Acme"})))
    assert only_mention(mentions, "research_runs")["research_meta"] == {
        "run_id": "",
        "model": "",
        "duration_ms": 0,
        "confidence": "Low",
    }
    assert len(mentions.citations) == 0


def test_one_citation_and_one_signal_document_each():
    doc = nested_lead(
        research=research(
            company={"name": "Acme"},
            signals=[
                {"type": "hiring", "signal": "a"},
                {"type": "funding", "signal": "b"},
                {"type": "hiring", "signal": "a"},
            ],
            citations=[{"source_name": "s1", "url": "u1"}, {"source_name": "s2", "url": "u2"}],
        )
    )
    mentions = split(doc)
    assert sorted((s["type"], s["signal"]) for s in mention_rows(mentions, "detected_signals")) == [
        ("funding", "b"),
        ("hiring", "a"),
        ("hiring", "a"),
    ]
    assert len(set(mentions.detected_signals["_id"])) == 3
    assert sorted(c["url"] for c in mention_rows(mentions, "citations")) == ["u1", "u2"]
    assert len(set(mentions.citations["_id"])) == 2


def test_single_signal_object_is_a_list_of_one():
    doc = nested_lead(
        research=research(
            company={"name": "Acme"},
            signals={
                "type": "funding",
                "signal": "Series B",
                "strength": "HIGH",
                "detected_at": "2024-03-01T00:00:00Z",
                "source_url": "https://news.example/acme",
            },
        )
    )
    mentions = split(doc)
    signal = only_mention(mentions, "detected_signals")
    assert (signal["type"], signal["signal"], signal["strength"], signal["detected_at"], signal["source_url"]) == (
        "funding",
        "Series B",
        "High",
        datetime(2024, 3, 1, tzinfo=UTC),
        "https://news.example/acme",
    )
    assert dict(mentions.warnings) == {}


def test_signal_defaults_and_unreadable_values():
    doc = nested_lead(
        research=research(
            company={"name": "Acme"},
            signals=[{"signal": "x"}, {"type": "hiring", "strength": "very strong", "detected_at": "yesterday"}],
        )
    )
    mentions = split(doc)
    assert sorted(
        (s["type"], s["signal"], s["strength"], s["detected_at"]) for s in mention_rows(mentions, "detected_signals")
    ) == [("", "x", "Low", None), ("hiring", "", "Low", None)]
    assert dict(mentions.warnings) == {"detected_signals.strength": 1, "detected_signals.detected_at": 1}


@pytest.mark.parametrize("container", ["DetectedSignals", "technographics", "citations", "factors"])
def test_null_list_is_empty_without_warning(container):
    doc = nested_lead(
        research=research(
            company={"name": "Acme", "technographics": ["Slack"]},
            citations=[{"url": "u"}],
            signals=[{"type": "hiring"}],
        ),
        icp={"icp_score": 10, "score_breakdown": {"fit": {"score": 10, "factors": ["big"]}}},
    )
    holder = {
        "DetectedSignals": doc["research"],
        "technographics": doc["research"]["CompanyProfile"],
        "citations": doc["research"]["ResearchMeta"],
        "factors": doc["icp"]["score_breakdown"]["fit"],
    }[container]
    holder[container] = None
    mentions = split(doc)
    counts = {
        "DetectedSignals": len(mentions.detected_signals),
        "technographics": len(mentions.tech_mentions),
        "citations": len(mentions.citations),
        "factors": len(only_mention(mentions, "icp_factor_breakdowns")["factors"]),
    }
    assert counts == {**dict.fromkeys(counts, 1), container: 0}
    assert dict(mentions.warnings) == {}


def test_single_citation_object_is_a_list_of_one():
    doc = nested_lead(research=research(company={"name": "Acme"}, citations={"source_name": "s", "url": "u"}))
    assert only_mention(split(doc), "citations")["url"] == "u"


def test_research_without_research_meta():
    doc = nested_lead(research={"CompanyProfile": {"name": "Acme"}})
    mentions = split(doc)
    assert only_mention(mentions, "leads")["status"] == "researched"
    assert only_mention(mentions, "research_runs")["research_meta"]["model"] == ""
    assert dict(mentions.warnings) == {}


# --- company, persona, technographic mentions of one lead ---------------------------------------


def test_string_technographics_and_object_ones():
    doc = nested_lead(
        research=research(
            company={
                "name": "Acme",
                "domain": "acme.io",
                "technographics": [
                    "Salesforce",
                    "  HubSpot ",
                    {"name": "Slack", "category": "Chat", "confidence": "high"},
                ],
            }
        )
    )
    mentions = split(doc)
    techs = mention_rows(mentions, "tech_mentions")
    assert [(t["name"], t["name_key"], t["category"], t["confidence"]) for t in techs] == [
        ("Salesforce", "salesforce", None, None),
        ("HubSpot", "hubspot", None, None),
        ("Slack", "slack", "Chat", "High"),
    ]
    # stored: defaults for what no mention had
    stored = sorted((t["name"], t["category"], t["confidence"]) for t in rows(run(doc), "technographics"))
    assert stored == [("HubSpot", "", "Low"), ("Salesforce", "", "Low"), ("Slack", "Chat", "High")]


def test_single_string_technographics_is_a_list_of_one():
    doc = nested_lead(research=research(company={"name": "Acme", "technographics": "Salesforce"}))
    assert only_mention(split(doc), "tech_mentions")["name"] == "Salesforce"


def test_technographic_without_name_is_skipped_and_non_objects_counted():
    doc = nested_lead(
        research=research(
            company={
                "name": "Acme",
                "technographics": [{"category": "CRM"}, 42, "Slack", {"name": "HubSpot", "confidence": "sure"}],
            }
        )
    )
    mentions = split(doc)
    assert [t["name"] for t in mention_rows(mentions, "tech_mentions")] == ["Slack", "HubSpot"]
    assert dict(mentions.warnings) == {"technographics": 1, "technographics.confidence": 1}


def test_company_mention_fields():
    doc = nested_lead(
        4,
        company="Acme",
        updated_at=at(9),
        research=research(
            company={
                "domain": "https://www.Acme.io/about",
                "website": "https://acme.io",
                "industry": " SaaS ",
                "employee_count": "250",
                "headquarters": {"city": "Austin", "region": "TX", "country": "US"},
                "founded_year": "2015",
                "annual_revenue": " $1.5M ",
                "linkedin_url": "https://www.linkedin.com/company/Acme/",
            }
        ),
    )
    assert only_mention(split(doc), "company_mentions") == {
        "legacy_lead_id": oid(4),
        "recency": at(9),
        "domain": "acme.io",
        "name_key": "acme",
        "name": "Acme",
        "website": "https://acme.io",
        "industry": "SaaS",
        "company_size": None,
        "employee_count": 250,
        "headquarters": "Austin, TX, US",
        "founded_year": 2015,
        "description": None,
        "funding_stage": None,
        "annual_revenue": "$1.5M",
        "linkedin_url": "linkedin.com/company/acme",
        "extra": None,
    }


def test_company_defaults_once_stored():
    company = only(run(nested_lead(research=research(company={"name": "Acme", "domain": "acme.io"}))), "companies")
    assert without(company, "_id") == {
        "name": "Acme",
        "domain": "acme.io",
        "website": "",
        "industry": "",
        "company_size": "",
        "employee_count": 0,
        "headquarters": "",
        "founded_year": 0,
        "description": "",
        "funding_stage": "",
        "annual_revenue": "",
        "linkedin_url": "",
        "extra": None,
    }


def test_company_mention_from_lead_input_only():
    company = only_mention(split(nested_lead(company="  Acme  ")), "company_mentions")
    assert (company["name"], company["name_key"], company["domain"], company["industry"]) == (
        "Acme",
        "acme",
        None,
        None,
    )


@pytest.mark.parametrize(
    "headquarters, expected",
    [
        (" Austin, TX, US ", "Austin, TX, US"),
        ({"city": "Austin", "region": "TX", "country": "US"}, "Austin, TX, US"),
        ({"city": "Zürich", "country": "CH"}, "Zürich, CH"),
        ({"city": None, "region": "", "country": "US"}, "US"),
        ({}, None),
    ],
    ids=repr,
)
def test_headquarters(headquarters, expected):
    doc = nested_lead(research=research(company={"name": "Acme", "headquarters": headquarters}))
    assert only_mention(split(doc), "company_mentions")["headquarters"] == expected


@pytest.mark.parametrize(
    "field, value, target",
    [
        ("employee_count", "n/a", "companies.employee_count"),
        ("employee_count", -5, "companies.employee_count"),
        ("founded_year", "n/a", "companies.founded_year"),
        ("founded_year", 3024, "companies.founded_year"),
        ("annual_revenue", {"usd": 5}, "companies.annual_revenue"),
        ("domain", "not a domain", "companies.domain"),
        ("industry", {"name": "SaaS"}, "companies.industry"),
    ],
    ids=repr,
)
def test_unreadable_company_value_is_absent_and_counted(field, value, target):
    mentions = split(nested_lead(research=research(company={"name": "Acme", field: value})))
    assert only_mention(mentions, "company_mentions")[field] is None
    assert dict(mentions.warnings) == {target: 1}


def test_unreadable_company_value_is_stored_as_its_default():
    doc = nested_lead(
        research=research(
            company={
                "name": "Acme",
                "domain": "acme.io",
                "employee_count": "n/a",
                "annual_revenue": {"usd": 5},
                "industry": ["SaaS"],
            }
        )
    )
    result = run(doc)
    company = only(result, "companies")
    assert (company["employee_count"], company["annual_revenue"], company["industry"]) == (0, "", "")
    assert dict(result.warnings) == {
        "companies.employee_count": 1,
        "companies.annual_revenue": 1,
        "companies.industry": 1,
    }


def test_lead_input_company_fills_a_missing_profile_name():
    doc = nested_lead(company="Acme Inc", research=research(company={"domain": "acme.io", "industry": "SaaS"}))
    company = only_mention(split(doc), "company_mentions")
    assert (company["name"], company["domain"], company["industry"]) == ("Acme Inc", "acme.io", "SaaS")


def test_profile_name_wins_over_lead_input_company():
    doc = nested_lead(company="ACME", research=research(company={"name": "Acme Incorporated", "domain": "acme.io"}))
    assert only_mention(split(doc), "company_mentions")["name"] == "Acme Incorporated"


def test_website_gives_the_domain_when_the_profile_has_none():
    doc = nested_lead(research=research(company={"name": "Acme", "website": "https://www.Acme.io/contact"}))
    mentions = split(doc)
    company = only_mention(mentions, "company_mentions")
    assert (company["domain"], company["website"]) == ("acme.io", "https://www.Acme.io/contact")
    assert dict(mentions.warnings) == {}


def test_profile_domain_wins_over_website():
    doc = nested_lead(research=research(company={"name": "Acme", "domain": "acme.io", "website": "https://acme.com"}))
    assert only_mention(split(doc), "company_mentions")["domain"] == "acme.io"


def test_lead_without_any_company_has_no_company_mention():
    mentions = split(nested_lead(company=MISSING))
    assert len(mentions.company_mentions) == 0
    assert only(run(nested_lead(company=MISSING)), "leads")["company_id"] is None


def test_company_profile_without_name_or_domain_is_still_a_company_mention():
    doc = nested_lead(
        company=MISSING, research=research(company={"industry": "SaaS", "technographics": ["Salesforce"]})
    )
    mentions = split(doc)
    assert only_mention(mentions, "company_mentions")["industry"] == "SaaS"
    assert only_mention(mentions, "tech_mentions")["name"] == "Salesforce"


def test_persona_profile_merged_with_lead_input_for_what_it_lacks():
    doc = nested_lead(
        3,
        lead_input={
            "name": "Ann",
            "title": "VP Sales",
            "email": " ANN@acme.io ",
            "linkedin_url": "https://www.linkedin.com/in/AnnLee/",
        },
        updated_at=at(5),
        research=research(
            company={"name": "Acme"},
            persona={
                "full_name": "Ann Lee",
                "seniority": "VP",
                "department": "Sales",
                "decision_authority": "Decision maker",
                "location": "Austin",
                "bio": "Sells things",
            },
        ),
    )
    assert only_mention(split(doc), "persona_mentions") == {
        "legacy_lead_id": oid(3),
        "recency": at(5),
        "name_key": "ann lee",
        "full_name": "Ann Lee",
        "email": "ann@acme.io",
        "title": "VP Sales",
        "seniority": "VP",
        "department": "Sales",
        "decision_authority": "Decision maker",
        "linkedin_url": "linkedin.com/in/annlee",
        "location": "Austin",
        "bio": "Sells things",
        "extra": None,
    }


def test_persona_profile_values_win_over_lead_input():
    doc = nested_lead(
        name="Ann",
        title="Sales",
        email="ann@acme.io",
        research=research(
            company={"name": "Acme"},
            persona={
                "full_name": "Ann Lee",
                "title": "VP Sales",
                "email": "Ann.Lee@Acme.io",
                "linkedin_url": "linkedin.com/in/annlee",
            },
        ),
    )
    mentions = split(doc)
    persona = only_mention(mentions, "persona_mentions")
    assert (persona["full_name"], persona["title"], persona["email"], persona["linkedin_url"]) == (
        "Ann Lee",
        "VP Sales",
        "ann.lee@acme.io",
        "linkedin.com/in/annlee",
    )
    assert only_mention(mentions, "leads")["email"] == "ann@acme.io"  # the lead keeps its own lead_input email


def test_persona_without_email_or_linkedin():
    persona = only_mention(split(nested_lead(email=MISSING)), "persona_mentions")
    assert (persona["full_name"], persona["name_key"], persona["email"], persona["linkedin_url"], persona["title"]) == (
        "Ann Lee",
        "ann lee",
        None,
        None,
        "VP Sales",
    )


def test_persona_defaults_once_stored():
    doc = nested_lead(email=MISSING, title=MISSING, research=research(company={"name": "Acme", "domain": "acme.io"}))
    persona = only(run(doc), "personas")
    assert without(persona, "_id") == {
        "full_name": "Ann Lee",
        "email": None,
        "title": "",
        "seniority": "",
        "department": "",
        "decision_authority": "",
        "linkedin_url": None,
        "location": "",
        "bio": "",
        "extra": None,
    }


# --- ICP ----------------------------------------------------------------------------------------


def test_icp_score_and_breakdowns():
    icp = {
        "icp_score": "82",
        "fit_tier": "Tier a",
        "scored_at": "2024-04-01T00:00:00Z",
        "model_version": "icp-v2",
        "rationale": "Strong fit",
        "score_breakdown": {
            "firmographic": {
                "score": 40,
                "max_score": 50,
                "factors": ["Company size 200-500", {"name": "SaaS", "points": 10, "reason": "ICP"}],
            },
            "intent": {"score": "30", "max_score": "30", "factors": [" Hiring SDRs "]},
            "timing": {"score": 12},
        },
    }
    mentions = split(nested_lead(4, icp=icp))
    score = only_mention(mentions, "icp_scores")
    assert score == {
        "_id": derived_id("icp_score", oid(4)),
        "lead_id": lead_id(oid(4)),
        "icp_score": 82.0,
        "fit_tier": "A",
        "score_breakdown": {"firmographic": 40.0, "intent": 30.0, "timing": 12.0},
        "scored_at": datetime(2024, 4, 1, tzinfo=UTC),
        "model_version": "icp-v2",
        "rationale": "Strong fit",
        "extra": None,
    }
    breakdowns = sorted(mention_rows(mentions, "icp_factor_breakdowns"), key=lambda b: b["category"])
    assert [without(b, "_id") for b in breakdowns] == [
        {
            "icp_score_id": score["_id"],
            "category": "firmographic",
            "score": 40.0,
            "max_score": 50.0,
            "factors": [{"name": "Company size 200-500"}, {"name": "SaaS", "points": 10, "reason": "ICP"}],
            "extra": None,
        },
        {
            "icp_score_id": score["_id"],
            "category": "intent",
            "score": 30.0,
            "max_score": 30.0,
            "factors": [{"name": "Hiring SDRs"}],
            "extra": None,
        },
        {
            "icp_score_id": score["_id"],
            "category": "timing",
            "score": 12.0,
            "max_score": 0.0,
            "factors": [],
            "extra": None,
        },
    ]
    assert len({b["_id"] for b in breakdowns}) == 3
    assert dict(mentions.warnings) == {}


def test_category_given_as_a_bare_number():
    mentions = split(nested_lead(icp={"icp_score": 10, "score_breakdown": {"fit": "10"}}))
    assert only_mention(mentions, "icp_scores")["score_breakdown"] == {"fit": 10.0}
    assert only_mention(mentions, "icp_factor_breakdowns")["score"] == 10.0


def test_unreadable_category_score_is_zero_and_counted():
    mentions = split(nested_lead(icp={"icp_score": 10, "score_breakdown": {"fit": {"score": "high"}}}))
    assert only_mention(mentions, "icp_scores")["score_breakdown"] == {"fit": 0.0}
    assert dict(mentions.warnings) == {"icp_factor_breakdowns.score": 1}


@pytest.mark.parametrize(
    "value, expected", [(82, 82.0), ("82", 82.0), (" 82.5 ", 82.5), ("0", 0.0), (100, 100.0)], ids=repr
)
def test_numeric_icp_score(value, expected):
    mentions = split(nested_lead(icp={"icp_score": value}))
    assert only_mention(mentions, "icp_scores")["icp_score"] == expected
    assert dict(mentions.warnings) == {}


@pytest.mark.parametrize("value", ["n/a", 140, "140", -5, True, "eighty"], ids=repr)
def test_unreadable_icp_score_is_zero_with_a_warning(value):
    mentions = split(nested_lead(icp={"icp_score": value, "fit_tier": "B"}))
    score = only_mention(mentions, "icp_scores")
    assert (score["icp_score"], score["fit_tier"]) == (0.0, "B")
    assert dict(mentions.warnings) == {"icp_scores.icp_score": 1}
    assert only_mention(mentions, "leads")["status"] == "icp_scored"


def test_warnings_add_up_over_leads_and_reach_the_result():
    docs = [nested_lead(n, company=MISSING, icp={"icp_score": v}) for n, v in enumerate(["n/a", 140, 55, "x"])]
    assert dict(split(*docs).warnings) == {"icp_scores.icp_score": 3}
    assert dict(run(*docs).warnings) == {"icp_scores.icp_score": 3}


@pytest.mark.parametrize(
    "value, expected, warned",
    [
        ("A", "A", False),
        ("b", "B", False),
        ("Tier C", "C", False),
        (" d ", "D", False),
        ("E", "", True),
        ("tier z", "", True),
        (None, "", False),
    ],
    ids=repr,
)
def test_fit_tier(value, expected, warned):
    mentions = split(nested_lead(icp={"icp_score": 50, "fit_tier": value}))
    assert only_mention(mentions, "icp_scores")["fit_tier"] == expected
    assert dict(mentions.warnings) == ({"icp_scores.fit_tier": 1} if warned else {})


def test_icp_defaults():
    score = only_mention(split(nested_lead(icp={"rationale": "pending"})), "icp_scores")
    assert without(score, "_id", "lead_id") == {
        "icp_score": 0.0,
        "fit_tier": "",
        "score_breakdown": {},
        "scored_at": None,
        "model_version": "",
        "rationale": "pending",
        "extra": None,
    }


# --- rejects and counts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lead_input, reason",
    [
        ("Ann Lee, Acme", "lead_input is not an object"),
        (None, "lead_input is not an object"),
        (["Ann", "ann@acme.io"], "lead_input is not an object"),
        (42, "lead_input is not an object"),
        ({}, "lead_input has neither a name nor a readable email"),
        ({"title": "CEO", "company": "Acme"}, "lead_input has neither a name nor a readable email"),
        ({"name": "   ", "email": ""}, "lead_input has neither a name nor a readable email"),
        ({"name": None, "email": "not-an-email"}, "lead_input has neither a name nor a readable email"),
        ({"name": {"first": "Ann"}, "email": None}, "lead_input has neither a name nor a readable email"),
    ],
    ids=repr,
)
def test_reject_reasons(lead_input, reason):
    assert reason in (REJECT_NOT_OBJECT, REJECT_NO_IDENTITY)
    doc = nested_lead(9, lead_input=lead_input, research=full_research(), icp=FULL_ICP, crm_owner="bob")
    mentions = split(doc)
    assert mentions.outcomes.to_dict("records") == [{"_id": oid(9), "outcome": "rejected", "reject_reason": reason}]
    result = run(doc)
    assert result.rejects.to_dict("records") == [{"_id": oid(9), "reject_reason": reason}]
    assert {name: len(frame) for name, frame in result.frames.items()} == dict.fromkeys(result.frames, 0)
    assert dict(result.warnings) == {}


@pytest.mark.parametrize("lead_input", [{"name": "Ann"}, {"email": " ANN@acme.io "}, {"name": 42}], ids=repr)
def test_name_or_email_alone_is_enough(lead_input):
    result = run(nested_lead(lead_input=lead_input))
    assert result.outcomes.to_dict("records") == [{"_id": oid(1), "outcome": "migrated", "reject_reason": None}]
    assert len(result.rejects) == 0
    assert len(rows(result, "leads")) == 1


def test_counts_add_up():
    docs = [
        nested_lead(1, company=MISSING),
        nested_lead(2, lead_input="oops"),
        nested_lead(3, research=full_research()),
        nested_lead(4, lead_input={}),
        nested_lead(5, icp=FULL_ICP, company="Acme"),
        nested_lead(6, lead_input=None),
    ]
    result = run(*docs)
    outcomes = result.outcomes
    assert sorted(outcomes["_id"]) == [oid(n) for n in range(1, 7)]
    assert outcomes["outcome"].value_counts().to_dict() == {"migrated": 3, "rejected": 3}
    assert sorted(result.rejects["_id"]) == [oid(2), oid(4), oid(6)]
    assert sorted(lead["legacy_lead_id"] for lead in rows(result, "leads")) == [oid(1), oid(3), oid(5)]


def test_research_or_icp_that_is_not_an_object_is_counted():
    mentions = split(nested_lead(research="pending", icp="n/a"))
    assert only_mention(mentions, "leads")["status"] == "uploaded"
    assert sum(mentions.warnings.values()) == 2


# --- batches as frames --------------------------------------------------------------------------


def test_split_batch_ignores_keys_only_other_documents_had():
    """A source frame holds the union of keys; a key a document lacked is not a value of it."""
    docs = [nested_lead(1, crm_owner="bob", notes=None), nested_lead(2, icp=FULL_ICP)]
    mentions = split_batch(source_frame(docs))
    extras = dict(zip(mentions.leads["legacy_lead_id"], mentions.leads["extra"]))
    assert extras == {oid(1): {"crm_owner": "bob", "notes": None}, oid(2): None}
    assert list(mentions.icp_scores["lead_id"]) == [lead_id(oid(2))]


def test_split_yields_one_company_and_one_persona_mention_per_lead():
    mentions = split(nested_lead(1), nested_lead(2, company=" ACME ", email="ANN@acme.io"))
    assert list(mentions.company_mentions["name_key"]) == ["acme", "acme"]
    assert list(mentions.company_mentions["domain"]) == [None, None]
    assert list(mentions.persona_mentions["email"]) == ["ann@acme.io", "ann@acme.io"]
    assert list(mentions.outcomes["outcome"]) == ["migrated", "migrated"]


def test_split_batch_keeps_a_nan_the_document_holds():
    """Absent is pd.NA in a source frame, so a genuine NaN is a value: kept under extra."""
    docs = [nested_lead(1, legacy_score=float("nan")), nested_lead(2)]
    extras = list(split_batch(source_frame(docs)).leads["extra"])
    assert math.isnan(extras[0]["legacy_score"]) and extras[1] is None
