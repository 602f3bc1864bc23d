"""Property: the result depends only on the set of source leads, never on their order nor
on how they are split into batches (contract: "The result does not depend on the order
of the source documents, nor on how they are split into batches or partitions").

Documents are drawn from small pools of companies, people, emails, domains and LinkedIn
URLs written in several case/white-space/URL forms, so that deduplication, name joins,
recency ties and rejects all actually happen."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadnorm.transform.normalize import normalize_batches

from .leads import at, oid, rows, run, run_batches, sorted_records

DOMAINS = ["acme.io", "globex.com", "initech.net"]
COMPANY_NAMES = ["Acme", "Globex"]  # fewer names than domains: one name, several domains
PEOPLE = [
    ("Ann Lee", "ann@acme.io", "linkedin.com/in/ann"),
    ("Bob Stone", "bob@globex.com", "linkedin.com/in/bob"),
    ("Cy Park", "cy@initech.net", "linkedin.com/in/cy"),
]
DATES = [None, at(1), at(1), at(2), "2024-01-03T00:00:00Z", "2024-01-02T00:00:00+00:00", "not a date"]


def forms(*variants):
    """One of several written forms of a value (each variant is a function of it)."""
    return lambda value: st.sampled_from([variant(value) for variant in variants])


domain_form = forms(
    str,
    str.upper,
    lambda d: f"https://www.{d}/about",
    lambda d: f"{d.upper()}.",
    lambda d: f"www.{d}:8080",
    lambda d: f" {d} ",
    lambda d: f"{d}/path?q",
)
name_form = forms(str, str.upper, lambda n: f"  {n.lower()} ", lambda n: f"{n}\t")
email_form = forms(str, str.upper, lambda e: f" {e} ", lambda e: e.capitalize())
linkedin_form = forms(str, lambda u: f"https://www.{u}/", lambda u: f"HTTP://{u.upper()}?trk=x", lambda u: f"www.{u}")

maybe = st.booleans


def often():
    return st.sampled_from([True, True, True, False])


@st.composite
def company_profiles(draw):
    profile = {}
    if draw(often()):
        profile["name"] = draw(st.sampled_from(COMPANY_NAMES).flatmap(name_form))
    key = draw(st.sampled_from(["domain", "domain", "website", "bad", None]))
    if key in ("domain", "website"):
        profile[key] = draw(st.sampled_from(DOMAINS).flatmap(domain_form))
    elif key == "bad":
        profile["domain"] = "n/a"
    profile["industry"] = draw(st.sampled_from([None, "", "SaaS", "Fintech"]))
    profile["employee_count"] = draw(st.sampled_from([None, 10, "250", "n/a"]))
    profile["technographics"] = draw(
        st.sampled_from(
            [
                None,
                "Salesforce",
                ["Salesforce", "salesforce "],
                ["HubSpot", {"name": "SALESFORCE", "category": "CRM"}],
                [{"name": "Slack", "category": "Chat", "confidence": "high"}, {"name": "slack", "confidence": "bogus"}],
            ]
        )
    )
    if draw(maybe()):
        profile["ticker"] = draw(st.sampled_from(["ACM", "GLX", None]))
    return profile


@st.composite
def person(draw):
    """(name, email, linkedin) forms of one of the pool's people; any part may be absent."""
    name, email, linkedin = draw(st.sampled_from(PEOPLE))
    return (
        draw(st.one_of(st.none(), name_form(name))),
        draw(st.one_of(st.none(), st.just("not-an-email"), email_form(email))),
        draw(st.one_of(st.none(), linkedin_form(linkedin))),
    )


@st.composite
def lead_docs(draw):
    """A nested lead without its _id."""
    shape = draw(st.sampled_from(["ok"] * 8 + ["not_object", "no_identity"]))
    if shape == "not_object":
        return {"lead_input": draw(st.sampled_from(["oops", None, ["a"]]))}
    name, email, linkedin = draw(person())
    lead_input = {"title": draw(st.sampled_from([None, "VP Sales", "CTO"]))}
    if shape == "no_identity":
        lead_input["company"] = "Acme"
    else:
        lead_input.update({"name": name, "email": email} if name or email else {"name": "Zed"})
        if linkedin and draw(maybe()):
            lead_input["linkedin_url"] = linkedin
        if draw(often()):
            lead_input["company"] = draw(st.sampled_from(COMPANY_NAMES).flatmap(name_form))
        if draw(maybe()):
            lead_input["phone"] = "+1 555 0100"
    doc = {"lead_input": lead_input}
    for field in ("created_at", "updated_at"):
        if draw(maybe()):
            doc[field] = draw(st.sampled_from(DATES))
    if draw(st.sampled_from([True, True, False])):
        persona = {}
        other_name, other_email, other_linkedin = draw(person())
        for key, value in (("full_name", other_name), ("email", other_email), ("linkedin_url", other_linkedin)):
            if value is not None and draw(maybe()):
                persona[key] = value
        persona["seniority"] = draw(st.sampled_from([None, "VP", "C-level"]))
        doc["research"] = {
            "CompanyProfile": draw(often().flatmap(lambda present: company_profiles() if present else st.none())),
            "PersonaProfile": persona,
            "DetectedSignals": draw(
                st.sampled_from(
                    [
                        None,
                        {"type": "hiring", "strength": "HIGH"},
                        [{"type": "funding"}, {"type": "hiring", "detected_at": "x"}],
                    ]
                )
            ),
            "ResearchMeta": {
                "completed_at_utc": draw(st.sampled_from(DATES)),
                "citations": draw(st.sampled_from([None, [{"url": "u"}], {"url": "v"}])),
            },
        }
    if draw(maybe()):
        doc["icp"] = {
            "icp_score": draw(st.sampled_from([50, "82", "n/a", 140, None])),
            "fit_tier": draw(st.sampled_from(["A", "tier b", "E", None])),
            "score_breakdown": {
                "fit": {
                    "score": draw(st.sampled_from([10, "20", "x"])),
                    "factors": ["big", {"name": "saas", "points": 5}],
                }
            },
        }
    if draw(maybe()):
        doc["crm_owner"] = draw(st.sampled_from([None, "bob", 7]))
    return doc


@st.composite
def corpora(draw):
    docs = draw(st.lists(lead_docs(), min_size=1, max_size=14))
    return [{"_id": oid(n), **doc} for n, doc in enumerate(docs, start=1)]


def snapshot(result) -> dict:
    return {
        "frames": {name: sorted_records(frame) for name, frame in result.frames.items()},
        "outcomes": sorted_records(result.outcomes),
        "warnings": dict(result.warnings),
    }


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=corpora(), data=st.data())
def test_order_and_batching_do_not_change_the_result(docs, data):
    expected = snapshot(run(*docs))
    shuffled = data.draw(st.permutations(docs), label="shuffled")
    assert snapshot(run(*shuffled)) == expected
    for size in (1, 7, 1000):
        assert snapshot(run_batches(shuffled, size)) == expected, f"batch size {size}"


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=corpora())
def test_counts_add_up_and_references_resolve(docs):
    result = run(*docs)
    outcomes = result.outcomes
    assert sorted(outcomes["_id"]) == sorted(doc["_id"] for doc in docs)
    migrated = set(outcomes.loc[outcomes["outcome"] == "migrated", "_id"])
    assert len(migrated) + len(result.rejects) == len(docs)
    assert {lead["legacy_lead_id"] for lead in rows(result, "leads")} == migrated
    companies, personas = set(result.frames["companies"]["_id"]), set(result.frames["personas"]["_id"])
    for lead in rows(result, "leads"):
        assert lead["persona_id"] in personas
        assert lead["company_id"] is None or lead["company_id"] in companies
    assert result.frames["companies"]["domain"].dropna().is_unique
    assert result.frames["personas"]["email"].dropna().is_unique
    assert result.frames["personas"]["linkedin_url"].dropna().is_unique


def test_no_batches_at_all_is_the_empty_result():
    assert snapshot(normalize_batches([])) == snapshot(run())
