"""The seed generator: the contract's source shape, every messy variant, determinism, the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from datetime import datetime

import pytest
from bson import ObjectId

from leadnorm.devtools.seed import generate_leads, seed_leads
from leadnorm.errors import ConfigError

N = 3000
STATUSES = {"uploaded", "researched", "icp_scored"}
LEVELS = {"High", "Medium", "Low"}
LEAD_KEYS = {"_id", "lead_input", "research", "icp", "status", "created_at", "updated_at"}
INPUT_KEYS = {"name", "title", "company", "email", "linkedin_url", "phone", "source"}
COMPANY_KEYS = {
    "name",
    "domain",
    "website",
    "industry",
    "company_size",
    "employee_count",
    "headquarters",
    "founded_year",
    "description",
    "funding_stage",
    "annual_revenue",
    "linkedin_url",
    "technographics",
}
PERSONA_KEYS = {
    "full_name",
    "email",
    "title",
    "seniority",
    "department",
    "decision_authority",
    "linkedin_url",
    "location",
    "bio",
}
META_KEYS = {"run_id", "model", "started_at_utc", "completed_at_utc", "duration_ms", "confidence", "citations"}
SIGNAL_KEYS = {"type", "signal", "strength", "detected_at", "source_url"}
ICP_KEYS = {"icp_score", "fit_tier", "score_breakdown", "scored_at", "model_version", "rationale"}


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return list(generate_leads(N, seed=11))


# --- reading a nested lead the way the contract describes it ---------------------------


def lead_input(doc) -> dict:
    value = doc.get("lead_input")
    return value if isinstance(value, dict) else {}


def research(doc) -> dict:
    return doc.get("research") or {}


def company_profile(doc) -> dict:
    return research(doc).get("CompanyProfile") or {}


def persona_profile(doc) -> dict:
    return research(doc).get("PersonaProfile") or {}


def meta(doc) -> dict:
    return research(doc).get("ResearchMeta") or {}


def signals(doc) -> list[dict]:
    value = research(doc).get("DetectedSignals")
    return [value] if isinstance(value, dict) else value or []


def technographics(doc) -> list:
    return company_profile(doc).get("technographics") or []


def categories(doc) -> list[dict]:
    return list(((doc.get("icp") or {}).get("score_breakdown") or {}).values())


def factors(doc) -> list:
    return [f for category in categories(doc) for f in category.get("factors") or []]


def dates(doc) -> list:
    found = [
        doc.get("created_at"),
        doc.get("updated_at"),
        meta(doc).get("started_at_utc"),
        meta(doc).get("completed_at_utc"),
        (doc.get("icp") or {}).get("scored_at"),
    ]
    found += [s.get("detected_at") for s in signals(doc)]
    found += [c.get("accessed_at_utc") for c in meta(doc).get("citations") or []]
    return [d for d in found if d is not None]


def is_migratable(doc) -> bool:
    li = doc.get("lead_input")
    return isinstance(li, dict) and any(isinstance(li.get(k), str) and li[k].strip() for k in ("name", "email"))


def parses_as_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def is_numeric_string(value) -> bool:
    return isinstance(value, str) and value.isdigit()


def not_canonical_email(value) -> bool:
    return isinstance(value, str) and value != "" and value != value.strip().lower()


def not_canonical_linkedin(value) -> bool:
    canonical = r"https://www\.linkedin\.com/in/[a-z0-9-]+"
    return isinstance(value, str) and value != "" and not re.fullmatch(canonical, value)


def respelled(value) -> bool:
    """Padded with white space, or all upper / all lower case where the canonical form is mixed."""
    return (
        isinstance(value, str)
        and value != ""
        and (value != value.strip() or value in (value.upper(), value.lower()) and value.upper() != value.lower())
    )


def profile_values(doc) -> list:
    return [*lead_input(doc).values(), *company_profile(doc).values(), *persona_profile(doc).values()]


def score(doc):
    return (doc.get("icp") or {}).get("icp_score")


def domain(doc):
    return company_profile(doc).get("domain")


def norm_domain(value):
    if not isinstance(value, str) or not value.strip():
        return None
    text = re.sub(r"^[a-z]+://", "", value.strip().lower())
    return text.split("/")[0].split(":")[0].rstrip(".").removeprefix("www.") or None


def norm_text(value):
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def norm_linkedin(value):
    if not isinstance(value, str) or not value.strip():
        return None
    text = re.sub(r"^[a-z]+://", "", value.strip().lower()).removeprefix("www.")
    return text.split("?")[0].rstrip("/") or None


def company_mention(doc) -> tuple[str | None, str | None]:
    """(normalized domain, normalized name) of the company a lead mentions."""
    cp = company_profile(doc)
    return norm_domain(cp.get("domain")), norm_text(cp.get("name")) or norm_text(lead_input(doc).get("company"))


def persona_mention(doc) -> tuple[str | None, str | None, str | None]:
    """(email, linkedin, name), normalized, of the person a lead mentions: profile first, then lead_input."""
    li, pp = lead_input(doc), persona_profile(doc)
    return (
        norm_text(pp.get("email")) or norm_text(li.get("email")),
        norm_linkedin(pp.get("linkedin_url")) or norm_linkedin(li.get("linkedin_url")),
        norm_text(pp.get("full_name")) or norm_text(li.get("name")),
    )


# --- one detector per messy variant ---------------------------------------------------

VARIANTS = {
    "email mixed case / white space": lambda d: any(
        not_canonical_email(v) for v in (lead_input(d).get("email"), persona_profile(d).get("email"))
    ),
    "linkedin mixed case / white space": lambda d: any(
        not_canonical_linkedin(v) for v in (lead_input(d).get("linkedin_url"), persona_profile(d).get("linkedin_url"))
    ),
    "domain as URL with path": lambda d: isinstance(domain(d), str) and re.match(r"https?://.+/.+", domain(d)),
    "domain with www.": lambda d: isinstance(domain(d), str) and domain(d).lower().startswith("www."),
    "domain with trailing dot": lambda d: isinstance(domain(d), str) and domain(d).endswith("."),
    "domain upper case": lambda d: (
        isinstance(domain(d), str) and "/" not in domain(d) and domain(d) != domain(d).lower()
    ),
    "domain with port": lambda d: isinstance(domain(d), str) and re.search(r":\d+$", domain(d)),
    "CompanyProfile domain null": lambda d: "domain" in company_profile(d) and domain(d) is None,
    "CompanyProfile domain empty": lambda d: domain(d) == "",
    "company name respelled": lambda d: any(
        respelled(v) for v in (company_profile(d).get("name"), lead_input(d).get("company"))
    ),
    "person name respelled": lambda d: any(
        respelled(v) for v in (persona_profile(d).get("full_name"), lead_input(d).get("name"))
    ),
    "null value": lambda d: None in profile_values(d),
    "empty string": lambda d: "" in profile_values(d),
    "missing key": lambda d: (
        bool(company_profile(d))
        and not COMPANY_KEYS <= company_profile(d).keys()
        or bool(persona_profile(d))
        and not PERSONA_KEYS <= persona_profile(d).keys()
    ),
    "lead_input missing key": lambda d: (
        isinstance(d.get("lead_input"), dict) and not {"name", "title", "company", "email"} <= d["lead_input"].keys()
    ),
    "null CompanyProfile or PersonaProfile": lambda d: (
        "research" in d and None in (d["research"]["CompanyProfile"], d["research"]["PersonaProfile"])
    ),
    "technographics null": lambda d: (
        "technographics" in company_profile(d)
        and technographics(d) == []
        and company_profile(d)["technographics"] is None
    ),
    "DetectedSignals null": lambda d: "research" in d and d["research"].get("DetectedSignals", 0) is None,
    "citations null": lambda d: "citations" in meta(d) and meta(d)["citations"] is None,
    "factors null": lambda d: any("factors" in c and c["factors"] is None for c in categories(d)),
    "DetectedSignals a single object": lambda d: isinstance(research(d).get("DetectedSignals"), dict),
    "icp_score numeric string": lambda d: is_numeric_string(score(d)),
    "employee_count numeric string": lambda d: is_numeric_string(company_profile(d).get("employee_count")),
    "founded_year numeric string": lambda d: is_numeric_string(company_profile(d).get("founded_year")),
    "icp_score n/a": lambda d: score(d) == "n/a",
    "icp_score above 100": lambda d: isinstance(score(d), int | float) and score(d) > 100,
    "icp_score negative": lambda d: isinstance(score(d), int | float) and score(d) < 0,
    "date that is no date": lambda d: any(isinstance(v, str) and not parses_as_date(v) for v in dates(d)),
    "date as ISO string": lambda d: any(isinstance(v, str) and parses_as_date(v) for v in dates(d)),
    "fit_tier lower case": lambda d: (d.get("icp") or {}).get("fit_tier") in {"a", "b", "c", "d"},
    "fit_tier 'Tier X'": lambda d: re.fullmatch(r"Tier [ABCD]", str((d.get("icp") or {}).get("fit_tier"))),
    "technographics as strings": lambda d: any(isinstance(t, str) for t in technographics(d)),
    "duplicate technographics": lambda d: (
        len({(t if isinstance(t, str) else t["name"]).casefold() for t in technographics(d)}) < len(technographics(d))
    ),
    "headquarters as string": lambda d: (
        isinstance(company_profile(d).get("headquarters"), str) and company_profile(d)["headquarters"] != ""
    ),
    "headquarters as object": lambda d: (
        isinstance(company_profile(d).get("headquarters"), dict)
        and {"city", "region", "country"} <= company_profile(d)["headquarters"].keys()
    ),
    "factor as object": lambda d: any(isinstance(f, dict) and "name" in f for f in factors(d)),
    "factor as string": lambda d: any(isinstance(f, str) for f in factors(d)),
    "level mixed case": lambda d: any(
        isinstance(v, str) and v not in LEVELS and v.capitalize() in LEVELS
        for v in [s.get("strength") for s in signals(d)]
        + [meta(d).get("confidence")]
        + [t.get("confidence") for t in technographics(d) if isinstance(t, dict)]
    ),
    "unknown top-level field": lambda d: bool(d.keys() - LEAD_KEYS),
    "lead_input.phone": lambda d: "phone" in lead_input(d),
    "lead_input.source": lambda d: "source" in lead_input(d),
    "unknown field in lead_input": lambda d: bool(lead_input(d).keys() - INPUT_KEYS),
    "unknown field in CompanyProfile": lambda d: bool(company_profile(d).keys() - COMPANY_KEYS),
    "unknown field in PersonaProfile": lambda d: bool(persona_profile(d).keys() - PERSONA_KEYS),
    "unknown field in ResearchMeta": lambda d: bool(meta(d).keys() - META_KEYS),
    "unknown field in a signal": lambda d: any(s.keys() - SIGNAL_KEYS for s in signals(d)),
    "lead_input a string": lambda d: isinstance(d.get("lead_input"), str),
    "lead_input null": lambda d: "lead_input" in d and d["lead_input"] is None,
    "lead_input a list": lambda d: isinstance(d.get("lead_input"), list),
    "lead_input without name or email": lambda d: isinstance(d.get("lead_input"), dict) and not is_migratable(d),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_messy_variant_occurs_at_a_realistic_rate(docs, variant):
    hits = sum(1 for d in docs if VARIANTS[variant](d))
    assert hits >= 2, f"{variant}: {hits} of {N}"
    assert hits <= 0.5 * N, f"{variant}: {hits} of {N} is no longer a variant"


TEXT_FIELDS = {
    "lead_input.name": lambda d: [lead_input(d).get("name")],
    "lead_input.title": lambda d: [lead_input(d).get("title")],
    "lead_input.company": lambda d: [lead_input(d).get("company")],
    "CompanyProfile.name": lambda d: [company_profile(d).get("name")],
    "CompanyProfile.industry": lambda d: [company_profile(d).get("industry")],
    "CompanyProfile.description": lambda d: [company_profile(d).get("description")],
    "CompanyProfile.headquarters": lambda d: [str(company_profile(d).get("headquarters"))],
    "technographics.name": lambda d: [t if isinstance(t, str) else t["name"] for t in technographics(d)],
    "PersonaProfile.full_name": lambda d: [persona_profile(d).get("full_name")],
    "PersonaProfile.title": lambda d: [persona_profile(d).get("title")],
    "PersonaProfile.location": lambda d: [persona_profile(d).get("location")],
    "PersonaProfile.bio": lambda d: [persona_profile(d).get("bio")],
    "signal.signal": lambda d: [s.get("signal") for s in signals(d)],
    "citation.source_name": lambda d: [c["source_name"] for c in meta(d).get("citations") or []],
    "icp.rationale": lambda d: [(d.get("icp") or {}).get("rationale")],
    "factor reason": lambda d: [f.get("reason") if isinstance(f, dict) else f for f in factors(d)],
}


@pytest.mark.parametrize("text_field", TEXT_FIELDS)
def test_unicode_occurs_in_every_text_field(docs, text_field):
    values = [v for d in docs for v in TEXT_FIELDS[text_field](d) if isinstance(v, str)]
    assert any(not v.isascii() for v in values), text_field


@pytest.mark.parametrize(
    "script, pattern",
    [
        ("accents", r"[\u00c0-\u024f\u1e00-\u1eff]"),
        ("CJK", r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]"),
        ("emoji", r"[\U0001f300-\U0001faff\u2600-\u27bf]"),
    ],
)
def test_accents_cjk_and_emoji_all_occur(docs, script, pattern):
    names = [lead_input(d).get("name") for d in docs] + [company_profile(d).get("name") for d in docs]
    texts = [persona_profile(d).get("bio") for d in docs] + [company_profile(d).get("description") for d in docs]
    assert any(isinstance(v, str) and re.search(pattern, v) for v in names + texts), script


# --- shape --------------------------------------------------------------------------


def test_every_document_has_the_contract_shape(docs):
    for d in docs:
        assert isinstance(d["_id"], ObjectId)
        assert "lead_input" in d
        assert d["status"] in STATUSES
        created = d["created_at"]
        assert isinstance(created, datetime | str)
        if isinstance(created, datetime):
            assert created.tzinfo is not None
            assert abs((d["_id"].generation_time - created).total_seconds()) < 1
        if isinstance(d["lead_input"], dict) and is_migratable(d):
            assert d["lead_input"].keys() & {"name", "email", "company", "title"}
        if "research" in d:
            r = d["research"]
            assert set(r) == {"CompanyProfile", "PersonaProfile", "DetectedSignals", "ResearchMeta"}
            for profile in (r["CompanyProfile"], r["PersonaProfile"]):
                assert profile is None or isinstance(profile, dict)
            assert r["DetectedSignals"] is None or isinstance(r["DetectedSignals"], dict | list)
            assert all(SIGNAL_KEYS & s.keys() >= {"type", "strength"} for s in signals(d))
            assert META_KEYS - {"run_id", "confidence"} <= r["ResearchMeta"].keys()
            for tech in technographics(d):
                assert isinstance(tech, str) or {"name", "category", "confidence"} <= tech.keys()
        if "icp" in d:
            icp = d["icp"]
            assert {"icp_score", "fit_tier", "score_breakdown", "scored_at"} <= icp.keys() <= ICP_KEYS
            for category in icp["score_breakdown"].values():
                assert isinstance(category["score"], int) and "factors" in category
                assert all(isinstance(f, str) or "name" in f for f in category["factors"] or [])


def test_status_follows_research_and_icp(docs):
    for d in docs:
        expected = "icp_scored" if "icp" in d else "researched" if "research" in d else "uploaded"
        assert d["status"] == expected
        assert "icp" not in d or "research" in d


def test_dates_are_mostly_utc_datetimes(docs):
    values = [v for d in docs for v in dates(d)]
    share = sum(isinstance(v, datetime) for v in values) / len(values)
    assert 0.85 < share < 0.99
    assert all(v.tzinfo is not None and v.microsecond % 1000 == 0 for v in values if isinstance(v, datetime))


def test_ids_are_unique(docs):
    assert len({d["_id"] for d in docs}) == N


# --- determinism ----------------------------------------------------------------------


def test_same_seed_gives_identical_documents():
    assert list(generate_leads(400, seed=5)) == list(generate_leads(400, seed=5))


def test_different_seed_gives_different_documents():
    first, second = list(generate_leads(400, seed=5)), list(generate_leads(400, seed=6))
    assert not {d["_id"] for d in first} & {d["_id"] for d in second}
    assert [d.get("lead_input") for d in first] != [d.get("lead_input") for d in second]


# --- rates ----------------------------------------------------------------------------


def test_unmigratable_share(docs):
    share = sum(not is_migratable(d) for d in docs) / N
    assert 0.003 <= share <= 0.03


def test_research_and_icp_rates(docs):
    researched = [d for d in docs if "research" in d]
    assert 0.65 <= len(researched) / N <= 0.75
    assert 0.55 <= sum("icp" in d for d in researched) / len(researched) <= 0.65


def test_about_ten_leads_per_company(docs):
    migratable = [d for d in docs if is_migratable(d)]
    names = {company_mention(d)[1] for d in migratable}
    assert None not in names
    assert 8 <= len(migratable) / len(names) <= 12


def test_same_company_with_and_without_domain(docs):
    with_domain, without = set(), set()
    for d in filter(is_migratable, docs):
        dom, name = company_mention(d)
        (with_domain if dom else without).add(name)
    assert len(with_domain & without) >= 50


def test_people_recur_by_email_linkedin_or_name_only(docs):
    by_email, by_linkedin, by_name = defaultdict(set), Counter(), Counter()
    for d in filter(is_migratable, docs):
        email, linkedin, name = persona_mention(d)
        if email:
            by_email[email].add(lead_input(d).get("email"))
        elif linkedin:
            by_linkedin[linkedin] += 1
        else:
            by_name[name] += 1
    assert sum(len(spellings) > 1 for spellings in by_email.values()) >= 20
    assert sum(count > 1 for count in by_linkedin.values()) >= 5
    assert sum(count > 1 for count in by_name.values()) >= 5


def test_most_recent_research_matters_within_a_company(docs):
    runs = defaultdict(set)
    for d in docs:
        dom, completed = norm_domain(domain(d)), meta(d).get("completed_at_utc")
        if dom and isinstance(completed, datetime):
            runs[dom].add((completed, company_profile(d).get("employee_count"), company_profile(d).get("name")))
    differing = [v for v in runs.values() if len(v) > 1 and len({(e, n) for _, e, n in v}) > 1]
    assert len(differing) >= 50


# --- against a real server -----------------------------------------------------------


def contract_counts(docs) -> tuple[int, int]:
    """Distinct companies and personas by the contract's dedup rules, over migratable leads."""
    domains, named_with_domain, names_without = set(), set(), set()
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    persona_names, name_only = defaultdict(set), set()
    for d in filter(is_migratable, docs):
        dom, name = company_mention(d)
        if dom:
            domains.add(dom)
            named_with_domain.add(name)
        else:
            names_without.add(name)
        email, linkedin, full_name = persona_mention(d)
        keys = [k for k in (email and f"e:{email}", linkedin and f"l:{linkedin}") if k]
        if keys:
            for key in keys:
                parent[root(key)] = root(keys[0])
            persona_names[keys[0]].add(full_name)
        else:
            name_only.add(full_name)
    components = {root(key) for key in parent}
    named = {n for key, names in persona_names.items() for n in names}
    return len(domains) + len(names_without - named_with_domain), len(components) + len(name_only - named)


def test_seed_leads_writes_to_the_server_and_counts_what_a_migration_must_find(db):
    summary = seed_leads(db, 2000, seed=3)
    stored = list(db.leads.find().sort("_id"))
    assert stored == sorted(generate_leads(2000, seed=3), key=lambda d: d["_id"])
    assert (summary.total, summary.unmigratable) == (2000, sum(not is_migratable(d) for d in stored))
    assert summary.researched == sum("research" in d for d in stored)
    assert summary.icp_scored == sum("icp" in d for d in stored)
    assert (summary.companies, summary.people) == contract_counts(stored)
    assert summary.variants["domain as URL"] > 0


def test_summary_renders_counts_without_personal_data(db):
    summary = seed_leads(db, 300, seed=4)
    text = summary.render()
    assert "300" in text and "unmigratable" in text and "distinct people" in text
    assert "@" not in text and "linkedin.com" not in text
    names = {lead_input(d).get("name") for d in generate_leads(300, seed=4)}
    assert not any(name.strip() in text for name in names if isinstance(name, str) and name.strip())


def test_seed_leads_refuses_a_non_empty_collection_without_drop(db):
    seed_leads(db, 120, seed=1)
    with pytest.raises(ConfigError, match=r"^leads already holds 120 documents; pass --drop to replace them$"):
        seed_leads(db, 50, seed=2)
    assert db.leads.count_documents({}) == 120
    seed_leads(db, 50, seed=2, drop=True)
    assert db.leads.count_documents({}) == 50


# --- command line ---------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "leadnorm", *args], capture_output=True, text=True, timeout=120)


def test_cli_seeds_and_prints_the_summary(mongo_uri):
    from pymongo import MongoClient

    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        result = run_cli("seed", "--leads", "50", "--uri", mongo_uri, "--db", name)
        assert result.returncode == 0, result.stderr
        assert f"seeded 50 nested leads into {name}.leads" in result.stdout
        assert "messy variants" in result.stdout
        with MongoClient(mongo_uri) as client:
            assert client[name].leads.count_documents({}) == 50
            again = run_cli("seed", "--leads", "50", "--uri", mongo_uri, "--db", name)
            assert again.returncode == 1
            assert again.stderr.strip() == (
                "leadnorm: error: leads already holds 50 documents; pass --drop to replace them"
            )
    finally:
        with MongoClient(mongo_uri) as client:
            client.drop_database(name)


@pytest.mark.parametrize(
    "leads, message", [("abc", "expected a whole number, got 'abc'"), ("0", "expected a number of at least 1, got 0")]
)
def test_cli_rejects_a_bad_lead_count(leads, message):
    result = run_cli("seed", "--leads", leads, "--uri", "mongodb://127.0.0.1:1")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [f"python -m leadnorm seed: error: argument --leads: {message} (see --help)"]
    assert "Traceback" not in result.stderr
