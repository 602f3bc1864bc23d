"""Deduplication over all mentions (leadnorm.transform.resolve, through normalize): companies by
domain then name, personas by email/LinkedIn components then name, most recent value
per field, technographics per (company, name), references, deterministic ids."""

from __future__ import annotations

import pytest

from leadnorm.transform.ids import derived_id

from .leads import (
    MISSING,
    at,
    by_id,
    company_of,
    lead_of,
    nested_lead,
    oid,
    only,
    persona_of,
    research,
    rows,
    run,
)


def researched(
    n: int, *, company: dict | None = None, persona: dict | None = None, completed_at=MISSING, **lead
) -> dict:
    """A researched lead whose research carries `company` / `persona` profiles."""
    return nested_lead(
        n,
        research=research(
            company=company if company is not None else MISSING,
            persona=persona if persona is not None else MISSING,
            completed_at=completed_at,
        ),
        **lead,
    )


def company_ids(result) -> set:
    return {lead["company_id"] for lead in rows(result, "leads")}


def persona_ids(result) -> set:
    return {lead["persona_id"] for lead in rows(result, "leads")}


# --- companies ----------------------------------------------------------------------------------

DOMAIN_FORMS = [
    "acme.io",
    "https://www.Acme.io/about",
    "ACME.IO.",
    "www.acme.io:8080",
    "acme.io/path?q",
    "  http://ACME.io  ",
    "//www.acme.io./x#y",
]


def test_companies_dedupe_over_all_domain_forms():
    result = run(*(researched(n, company={"name": f"Acme {n}", "domain": form}) for n, form in enumerate(DOMAIN_FORMS)))
    company = only(result, "companies")
    assert company["domain"] == "acme.io"
    assert company["_id"] == derived_id("company", "domain:acme.io")
    assert company_ids(result) == {company["_id"]}
    assert dict(result.warnings) == {}


def test_website_domain_dedupes_with_profile_domain():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}),
        researched(2, company={"name": "Acme Corp", "website": "https://www.acme.io/contact"}),
    )
    assert only(result, "companies")["domain"] == "acme.io"
    assert len(company_ids(result)) == 1


def test_different_domains_are_different_companies_even_with_one_name():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}),
        researched(2, company={"name": "Acme", "domain": "acme.com"}),
    )
    assert sorted(c["domain"] for c in rows(result, "companies")) == ["acme.com", "acme.io"]
    assert company_of(result, 1)["domain"] == "acme.io"
    assert company_of(result, 2)["domain"] == "acme.com"


@pytest.mark.parametrize("name", ["Acme", "acme", "  ACME ", "\tAcMe\n"], ids=repr)
def test_domainless_mention_joins_the_domain_company_by_name(name):
    result = run(researched(1, company={"name": "Acme", "domain": "acme.io"}), nested_lead(2, company=name))
    company = only(result, "companies")
    assert company["domain"] == "acme.io"
    assert company_of(result, 2)["_id"] == company["_id"]


def test_unicode_names_join_without_case():
    result = run(
        researched(1, company={"name": "Zoë Straße GmbH", "domain": "zoe.de"}),
        nested_lead(2, company=" ZOË STRASSE GMBH "),
    )
    assert company_of(result, 2)["domain"] == "zoe.de"
    assert only(result, "companies")["name"] == "ZOË STRASSE GMBH"  # lead 2 is the more recent (ObjectId time)


def test_domainless_mention_joins_under_any_name_the_company_was_mentioned_with():
    result = run(
        researched(1, company={"name": "Acme Inc", "domain": "acme.io"}, updated_at=at(1)),
        researched(2, company={"name": "Acme", "domain": "https://acme.io"}, updated_at=at(9)),
        nested_lead(3, company=" acme inc ", updated_at=at(2)),
        nested_lead(4, company="ACME", updated_at=at(3)),
    )
    company = only(result, "companies")
    assert (company["domain"], company["name"]) == ("acme.io", "Acme")
    assert company_ids(result) == {company["_id"]}


def test_domainless_mention_joins_the_smallest_domain_where_several_bear_the_name():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}),
        researched(2, company={"name": "ACME", "domain": "acme.com"}),
        researched(3, company={"name": "Acme", "domain": "zeta-acme.ai"}),
        nested_lead(4, company=" acme "),
    )
    assert company_of(result, 4)["domain"] == "acme.com"
    assert len(rows(result, "companies")) == 3


def test_domainless_mention_with_another_name_forms_a_company_without_domain():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}),
        nested_lead(2, company="Acme Labs"),
        nested_lead(3, company=" ACME LABS", updated_at=at(30)),
    )
    assert sorted((c["name"], c["domain"]) for c in rows(result, "companies")) == [
        ("ACME LABS", None),
        ("Acme", "acme.io"),
    ]
    assert company_of(result, 2)["_id"] == company_of(result, 3)["_id"] == derived_id("company", "name:acme labs")


def test_unreadable_domain_counts_as_no_domain():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}),
        researched(2, company={"name": "acme", "domain": "n/a"}),
    )
    assert only(result, "companies")["domain"] == "acme.io"
    assert dict(result.warnings) == {"companies.domain": 1}


@pytest.mark.parametrize(
    "docs, expected",
    [
        ([nested_lead(1, company="Acme")], ("Acme", None)),
        (
            [nested_lead(1, company="Acme", updated_at=at(1)), nested_lead(2, company=" ACME ", updated_at=at(2))],
            ("ACME", None),
        ),
        ([nested_lead(1, company=MISSING, research=research(company={"domain": "www.acme.io"}))], ("", "acme.io")),
    ],
    ids=["one-domainless", "two-domainless", "domain-without-name"],
)
def test_companies_without_any_named_domain_company(docs, expected):
    result = run(*docs)
    company = only(result, "companies")
    assert (company["name"], company["domain"]) == expected
    assert company_ids(result) == {company["_id"]}


def test_domainless_only_company_has_no_domain():
    # (alongside an unrelated domain company, so that the crash above does not hide this rule)
    result = run(
        researched(1, company={"name": "Globex", "domain": "globex.com"}),
        nested_lead(2, company="Acme", updated_at=at(1)),
        nested_lead(3, company=" acme ", updated_at=at(2)),
    )
    acme = company_of(result, 2)
    assert company_of(result, 3)["_id"] == acme["_id"]
    assert (acme["name"], acme["domain"]) == ("acme", None)
    assert len(rows(result, "companies")) == 2


# --- personas -----------------------------------------------------------------------------------


def test_personas_dedupe_by_email_in_any_case_and_white_space():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, email=" ANN@Acme.io"),
        nested_lead(2, name="Ann", email="ann@ACME.IO "),
        nested_lead(3, name="A. Lee", email="\tann@acme.io\n"),
    )
    persona = only(result, "personas")
    assert persona["email"] == "ann@acme.io"
    assert persona_ids(result) == {persona["_id"]}


def test_personas_dedupe_by_linkedin_in_any_form():
    forms = [
        "https://www.linkedin.com/in/Ann/",
        "linkedin.com/in/ann?trk=1",
        "HTTP://LinkedIn.com/in/ANN",
        " www.linkedin.com/in/ann/ ",
    ]
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, email=MISSING, persona={"linkedin_url": forms[0]}),
        *(
            nested_lead(n, lead_input={"name": f"Ann {n}", "linkedin_url": form})
            for n, form in enumerate(forms[1:], start=2)
        ),
    )
    persona = only(result, "personas")
    assert (persona["linkedin_url"], persona["email"]) == ("linkedin.com/in/ann", None)
    assert persona_ids(result) == {persona["_id"]}


def test_personas_merge_transitively():
    """A~B by email, B~C by LinkedIn, C~D by another email: one persona."""
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, name="Ann", email="ann@acme.io"),
        researched(2, name="Ann Lee", email="ANN@acme.io", persona={"linkedin_url": "linkedin.com/in/annlee"}),
        researched(
            3, name="A. Lee", email="ann.lee@gmail.com", persona={"linkedin_url": "https://www.linkedin.com/in/AnnLee/"}
        ),
        nested_lead(4, name="Annie", email="Ann.Lee@gmail.com"),
    )
    persona = only(result, "personas")
    assert persona_ids(result) == {persona["_id"]}
    assert persona["_id"] == derived_id("persona", "email:ann.lee@gmail.com")  # named by its smallest identifier


def test_transitive_merge_through_linkedin_only_mention():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, email="ann@acme.io"),
        researched(2, email="ann@acme.io", persona={"linkedin_url": "linkedin.com/in/ann"}),
        nested_lead(
            3, name="Somebody Else", lead_input={"name": "Somebody Else", "linkedin_url": "linkedin.com/in/Ann/"}
        ),
    )
    assert len(rows(result, "personas")) == 1
    assert persona_of(result, 3)["_id"] == persona_of(result, 1)["_id"]


def test_same_name_different_emails_are_different_personas():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, name="Ann Lee", email="ann@acme.io"),
        nested_lead(2, name="Ann Lee", email="ann@globex.com"),
    )
    assert sorted(p["email"] for p in rows(result, "personas")) == ["ann@acme.io", "ann@globex.com"]


@pytest.mark.parametrize("name", ["Ann Lee", "ann lee", "  ANN LEE  "], ids=repr)
def test_name_only_mention_joins_the_persona_bearing_its_name(name):
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, name="Ann Lee", email="ann@acme.io"),
        nested_lead(2, name=name, email=MISSING),
    )
    persona = only(result, "personas")
    assert persona["email"] == "ann@acme.io"
    assert persona_of(result, 2)["_id"] == persona["_id"]


def test_name_only_mention_joins_under_any_name_the_persona_was_mentioned_with():
    result = run(
        researched(
            1, company={"name": "Acme", "domain": "acme.io"}, name="Ann Lee", email="ann@acme.io", updated_at=at(1)
        ),
        nested_lead(2, name="Ann L.", email="ANN@acme.io", updated_at=at(9)),
        nested_lead(3, name=" ann lee ", email=MISSING, updated_at=at(2)),
    )
    persona = only(result, "personas")
    assert (persona["full_name"], persona["email"]) == ("Ann L.", "ann@acme.io")
    assert persona_of(result, 3)["_id"] == persona["_id"]


def test_name_only_mention_joins_the_smallest_persona_where_several_bear_the_name():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, name="Sam Park", email="sam@zeta.io"),
        nested_lead(2, name="Sam Park", email="sam@acme.io"),
        nested_lead(3, name="sam park", email=MISSING),
    )
    assert persona_of(result, 3)["email"] == "sam@acme.io"
    assert len(rows(result, "personas")) == 2


def test_name_only_mentions_alone_form_one_persona_by_name():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io"}, name="Ann Lee", email="ann@acme.io"),
        nested_lead(2, name="Bob Stone", email=MISSING, updated_at=at(1)),
        nested_lead(3, name=" BOB STONE", email="not-an-email", updated_at=at(2)),
    )
    bob = persona_of(result, 2)
    assert persona_of(result, 3)["_id"] == bob["_id"] == derived_id("persona", "name:bob stone")
    assert (bob["full_name"], bob["email"], bob["linkedin_url"]) == ("BOB STONE", None, None)
    assert len(rows(result, "personas")) == 2


# --- most recent value per field ----------------------------------------------------------------


def test_most_recent_research_wins_per_field_and_empty_values_do_not_overwrite():
    acme = {"name": "Acme", "domain": "acme.io"}
    result = run(
        researched(
            1,
            company={**acme, "industry": "SaaS", "description": "Old text", "employee_count": 100},
            persona={"full_name": "Ann Lee", "seniority": "VP", "bio": "Old bio"},
            completed_at=at(1),
        ),
        researched(
            2,
            company={**acme, "industry": "Fintech", "description": "", "employee_count": None},
            persona={"full_name": "Ann Lee", "seniority": "   ", "bio": "New bio"},
            completed_at=at(20),
        ),
        researched(
            3,
            company={**acme, "industry": "Retail", "description": "Older text", "employee_count": 5},
            persona={"full_name": "Ann Lee", "seniority": "Director"},
            completed_at=at(0),
        ),
    )
    company = only(result, "companies")
    assert (company["industry"], company["description"], company["employee_count"]) == ("Fintech", "Old text", 100)
    persona = only(result, "personas")
    assert (persona["seniority"], persona["bio"]) == ("VP", "New bio")


def test_research_completion_outranks_a_later_updated_at():
    """A: research completed on day 1 (lead updated on day 30); B: not researched, updated day 10: B is newer."""
    result = run(
        researched(
            1,
            company={"name": "Acme", "domain": "acme.io"},
            persona={"title": "CTO"},
            completed_at=at(1),
            updated_at=at(30),
        ),
        nested_lead(2, title="CEO", company="Acme", updated_at=at(10)),
    )
    assert only(result, "personas")["title"] == "CEO"


@pytest.mark.parametrize(
    "older, newer",
    [
        ({"updated_at": at(1)}, {"updated_at": at(2)}),
        ({"created_at": at(1)}, {"created_at": at(2)}),
        ({"created_at": at(5), "updated_at": at(6)}, {"created_at": at(1), "updated_at": at(7)}),
        ({"updated_at": at(3)}, {"created_at": at(4)}),
    ],
    ids=["updated", "created", "updated-over-created", "created-when-no-updated"],
)
def test_lead_dates_order_mentions_without_research(older, newer):
    # the newer one has the SMALLER _id, so only the dates can make it win
    result = run(
        researched(9, company={"name": "Acme", "domain": "acme.io"}, title="Old title", **older),
        nested_lead(1, title="New title", company="Acme", **newer),
    )
    assert only(result, "personas")["title"] == "New title"


def test_object_id_time_orders_mentions_without_any_date():
    result = run(
        researched(2, company={"name": "Acme", "domain": "acme.io", "industry": "Old"}),
        researched(5, company={"name": "Acme", "domain": "acme.io", "industry": "New"}),
        researched(3, company={"name": "Acme", "domain": "acme.io", "industry": "Middle"}),
    )
    assert only(result, "companies")["industry"] == "New"


def test_equal_recency_is_broken_by_source_id():
    result = run(
        researched(7, company={"name": "Acme", "domain": "acme.io", "industry": "Seven"}, completed_at=at(3)),
        researched(8, company={"name": "ACME", "domain": "acme.io", "industry": "Eight"}, completed_at=at(3)),
        researched(6, company={"name": "acme", "domain": "acme.io", "industry": "Six"}, completed_at=at(3)),
    )
    company = only(result, "companies")
    assert (company["name"], company["industry"]) == ("ACME", "Eight")


def test_extra_is_merged_across_mentions_most_recent_winning():
    result = run(
        researched(
            1, company={"name": "Acme", "domain": "acme.io", "ticker": "ACM", "hq_floor": 3}, completed_at=at(1)
        ),
        researched(2, company={"name": "Acme", "domain": "acme.io", "ticker": "ACME", "crm": None}, completed_at=at(2)),
    )
    assert only(result, "companies")["extra"] == {"ticker": "ACME", "hq_floor": 3}


# --- technographics -----------------------------------------------------------------------------


def test_technographics_union_one_per_company_and_name_without_case():
    acme = {"name": "Acme", "domain": "acme.io"}
    result = run(
        researched(
            1,
            company={
                **acme,
                "technographics": [{"name": "Salesforce", "category": "CRM", "confidence": "High"}, "HubSpot"],
            },
            completed_at=at(1),
        ),
        researched(
            2,
            company={
                **acme,
                "technographics": [{"name": "salesforce", "category": "Sales", "confidence": None}, "Slack"],
            },
            completed_at=at(2),
        ),
    )
    company_id = only(result, "companies")["_id"]
    techs = rows(result, "technographics")
    assert sorted((t["company_id"], t["name"], t["category"], t["confidence"]) for t in techs) == [
        (company_id, "HubSpot", "", "Low"),
        (company_id, "Slack", "", "Low"),
        (company_id, "salesforce", "Sales", "High"),
    ]


def test_duplicate_technographics_inside_one_profile():
    result = run(
        researched(
            1,
            company={
                "name": "Acme",
                "domain": "acme.io",
                "technographics": [
                    "Salesforce",
                    "SALESFORCE ",
                    {"name": " salesforce", "category": "CRM"},
                    "HubSpot",
                    "hubspot",
                ],
            },
        )
    )
    assert sorted((t["name"].casefold(), t["category"]) for t in rows(result, "technographics")) == [
        ("hubspot", ""),
        ("salesforce", "CRM"),
    ]


def test_same_technographic_at_two_companies_is_two_documents():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io", "technographics": ["Slack"]}),
        researched(2, company={"name": "Globex", "domain": "globex.com", "technographics": ["slack"]}),
    )
    techs = rows(result, "technographics")
    assert sorted(t["company_id"] for t in techs) == sorted(c["_id"] for c in rows(result, "companies"))
    assert len({t["_id"] for t in techs}) == 2


def test_technographics_follow_the_company_their_lead_joined():
    result = run(
        researched(1, company={"name": "Acme", "domain": "acme.io", "technographics": ["Slack"]}),
        researched(2, company={"name": " ACME ", "technographics": ["Zoom"]}),
    )
    company = only(result, "companies")
    assert sorted((t["company_id"], t["name"]) for t in rows(result, "technographics")) == [
        (company["_id"], "Slack"),
        (company["_id"], "Zoom"),
    ]


# --- references and ids -------------------------------------------------------------------------


def mixed_corpus() -> list[dict]:
    return [
        researched(
            1,
            email=MISSING,
            company={"name": "Acme", "domain": "https://www.Acme.io/", "technographics": ["Slack"]},
            persona={"full_name": "Ann Lee", "linkedin_url": "linkedin.com/in/ann"},
            icp={"icp_score": 80, "score_breakdown": {"fit": {"score": 40}, "intent": {"score": 40}}},
        ),
        nested_lead(2, name="Bob", email="BOB@acme.io", company="acme"),
        nested_lead(3, name="Cy", email=MISSING, company="Cy Labs", updated_at=at(4)),
        nested_lead(4, lead_input={"name": "Ann Lee", "linkedin_url": "https://linkedin.com/in/Ann/"}),
        nested_lead(
            5,
            name="Eve",
            email="eve@globex.com",
            research=research(
                company={"name": "Globex", "website": "globex.com"},
                signals=[{"type": "hiring"}],
                citations=[{"url": "u"}],
            ),
            icp={"icp_score": "n/a"},
        ),
        nested_lead(6, lead_input="broken"),
        nested_lead(7, name="Dee", company=MISSING, email="dee@x.io"),
    ]


def test_every_reference_points_at_an_existing_row():
    result = run(*mixed_corpus())
    ids = {name: set(frame["_id"]) for name, frame in result.frames.items()}
    for lead in rows(result, "leads"):
        assert lead["persona_id"] in ids["personas"]
        assert lead["company_id"] in ids["companies"] or (
            lead["company_id"] is None and lead["legacy_lead_id"] in (oid(4), oid(7))
        )
    for run_row in rows(result, "research_runs"):
        lead = by_id(result, "leads", run_row["lead_id"])
        assert (run_row["company_id"], run_row["persona_id"]) == (lead["company_id"], lead["persona_id"])
        assert run_row["company_id"] in ids["companies"] and run_row["persona_id"] in ids["personas"]
    assert all(t["company_id"] in ids["companies"] for t in rows(result, "technographics"))
    assert all(c["research_run_id"] in ids["research_runs"] for c in rows(result, "citations"))
    assert all(
        s["lead_id"] in ids["leads"] and s["research_run_id"] in ids["research_runs"]
        for s in rows(result, "detected_signals")
    )
    assert all(s["lead_id"] in ids["leads"] for s in rows(result, "icp_scores"))
    assert all(b["icp_score_id"] in ids["icp_scores"] for b in rows(result, "icp_factor_breakdowns"))
    # and nothing is orphaned: every company and persona is some lead's
    assert ids["companies"] == {lead["company_id"] for lead in rows(result, "leads")} - {None}
    assert ids["personas"] == {lead["persona_id"] for lead in rows(result, "leads")}
    assert {name: len(frame) for name, frame in result.frames.items()} == {
        "companies": 3,
        "personas": 5,
        "leads": 6,
        "technographics": 1,
        "research_runs": 2,
        "citations": 1,
        "detected_signals": 1,
        "icp_scores": 2,
        "icp_factor_breakdowns": 2,
    }
    assert persona_of(result, 4)["_id"] == persona_of(result, 1)["_id"]
    assert company_of(result, 2)["_id"] == company_of(result, 1)["_id"]
    assert company_of(result, 5)["domain"] == "globex.com"
    assert dict(result.warnings) == {"icp_scores.icp_score": 1}


def test_natural_keys_are_unique():
    result = run(*mixed_corpus())
    companies, personas, techs = (result.frames[n] for n in ("companies", "personas", "technographics"))
    assert companies["domain"].dropna().is_unique
    assert personas["email"].dropna().is_unique and personas["linkedin_url"].dropna().is_unique
    assert not techs.assign(k=techs["name"].str.casefold()).duplicated(["company_id", "k"]).any()
    for frame in result.frames.values():
        assert frame["_id"].is_unique


def test_ids_are_deterministic_across_calls_and_order():
    first, second = run(*mixed_corpus()), run(*reversed(mixed_corpus()))
    for name in first.frames:
        assert list(first.frames[name]["_id"]) == list(second.frames[name]["_id"]), name
    assert lead_of(first, 1)["_id"] == derived_id("lead", oid(1))
    assert company_of(first, 1)["_id"] == derived_id("company", "domain:acme.io")
    assert persona_of(first, 1)["_id"] == derived_id("persona", "linkedin:linkedin.com/in/ann")
