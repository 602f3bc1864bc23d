"""The quality gate: valid frames pass, each kind of breakage fails with the right expectation.

`valid_frames` builds small, consistent frames by hand (real ObjectIds, every reference
resolving); the Data Docs tests import it too.
"""

from __future__ import annotations

import datetime as dt
import socket

import pandas as pd
import pytest
from bson import ObjectId

from leadnorm import schema
from leadnorm.errors import GateFailed
from leadnorm.quality.validate import (
    SOURCE_SUITE,
    Finding,
    run_gate,
    suite_definitions,
    validation_frames,
)

NOW = dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC)
PERSON_NAMES = [
    "Ada Quillfeather",
    "Bram Oakenshaw",
    "Cleo Marchetti",
    "Dov Halvorsen",
    "Esme Takahashi",
    "Femi Adeyemi",
]


def valid_frames(leads: int = 6) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Frames as normalize hands them over, for `leads` migrated leads and one rejected one.

    Every other lead shares the previous lead's company; the first lead has no company and
    the last company no domain; a lead is researched when i % 3 != 0 and scored when
    i % 3 == 2.
    """
    rows: dict[str, list[dict]] = {name: [] for name in schema.COLLECTIONS}
    source = []
    company_id = None
    for i in range(leads):
        person = PERSON_NAMES[i % len(PERSON_NAMES)] + ("" if i < len(PERSON_NAMES) else f" {i}")
        email = f"{person.lower().replace(' ', '.')}@example{i}.com"
        if i % 2 == 1:
            company_id = ObjectId()
            has_domain = i < leads - 1
            rows["companies"].append(
                {
                    "_id": company_id,
                    "name": f"Company {i}",
                    "domain": f"company-{i}.io" if has_domain else None,
                    "website": f"https://company-{i}.io" if has_domain else "",
                    "industry": "Software",
                    "company_size": "11-50",
                    "employee_count": 40 + i,
                    "headquarters": "Austin, TX, US",
                    "founded_year": 2010,
                    "description": "",
                    "funding_stage": "Seed",
                    "annual_revenue": 0,
                    "linkedin_url": f"linkedin.com/company/company-{i}",
                    "extra": {},
                }
            )
            for tech in ("Salesforce", "HubSpot"):
                rows["technographics"].append(
                    {
                        "_id": ObjectId(),
                        "company_id": company_id,
                        "name": tech,
                        "category": "CRM",
                        "confidence": "High",
                        "extra": {},
                    }
                )
        persona_id = ObjectId()
        rows["personas"].append(
            {
                "_id": persona_id,
                "full_name": person,
                "email": email,
                "title": "VP Sales",
                "seniority": "VP",
                "department": "Sales",
                "decision_authority": "High",
                "linkedin_url": f"linkedin.com/in/person-{i}",
                "location": "Austin",
                "bio": "",
                "extra": {},
            }
        )
        legacy_id, lead_id = ObjectId(), ObjectId()
        status = ("uploaded", "researched", "icp_scored")[i % 3]
        rows["leads"].append(
            {
                "_id": lead_id,
                "name": person,
                "title": "VP Sales",
                "email": email,
                "company_id": None if i == 0 else company_id,
                "persona_id": persona_id,
                "status": status,
                "legacy_lead_id": legacy_id,
                "created_at": NOW,
                "updated_at": NOW,
                "extra": {"phone": "555-0100"},
            }
        )
        source.append({"_id": legacy_id, "outcome": "migrated", "reject_reason": None})
        if status != "uploaded":
            run_id = ObjectId()
            rows["research_runs"].append(
                {
                    "_id": run_id,
                    "lead_id": lead_id,
                    "company_id": None if i == 0 else company_id,
                    "persona_id": persona_id,
                    "research_meta": {"model": "m1", "duration_ms": 1200},
                    "extra": {},
                }
            )
            rows["citations"].append(
                {
                    "_id": ObjectId(),
                    "research_run_id": run_id,
                    "source_name": "Web",
                    "url": "https://news.example.com/a",
                    "accessed_at_utc": NOW,
                    "extra": {},
                }
            )
            rows["detected_signals"].append(
                {
                    "_id": ObjectId(),
                    "lead_id": lead_id,
                    "research_run_id": run_id,
                    "type": "hiring",
                    "signal": "Hiring SDRs",
                    "strength": "Medium",
                    "detected_at": NOW,
                    "source_url": "https://jobs.example.com/1",
                    "extra": {},
                }
            )
        if status == "icp_scored":
            score_id = ObjectId()
            rows["icp_scores"].append(
                {
                    "_id": score_id,
                    "lead_id": lead_id,
                    "icp_score": 82,
                    "fit_tier": "ABCD"[i % 4],
                    "score_breakdown": {"firmographics": 40, "intent": 42},
                    "scored_at": NOW,
                    "model_version": "v2",
                    "rationale": "",
                    "extra": {},
                }
            )
            for category, score in (("firmographics", 40), ("intent", 42)):
                rows["icp_factor_breakdowns"].append(
                    {
                        "_id": ObjectId(),
                        "icp_score_id": score_id,
                        "category": category,
                        "score": score,
                        "max_score": 50,
                        "factors": [{"name": "size"}],
                        "extra": {},
                    }
                )
    source.append({"_id": ObjectId(), "outcome": "rejected", "reject_reason": "no name nor email"})
    frames = {
        name: pd.DataFrame(rows[name], columns=collection.columns) for name, collection in schema.COLLECTIONS.items()
    }
    return frames, pd.DataFrame(source, columns=["_id", "outcome", "reject_reason"])


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """The gate must never reach beyond this machine: any non-loopback connection fails."""
    original = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not host.startswith(("127.", "::1", "localhost", "/")):
            raise AssertionError(f"network access to {address}")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def reports(tmp_path):
    return tmp_path / "reports"


def test_valid_frames_pass(reports):
    frames, source = valid_frames()
    result = run_gate(frames, source, reports_dir=reports, run_name="valid")
    assert result.passed, result.summary()
    # The only warning: the rejected nested lead, reported as such.
    assert result.warnings == [Finding(SOURCE_SUITE, "expect_column_values_to_be_in_set", "outcome", 1)]
    assert result.failures == []
    assert result.docs_index == reports / "data_docs" / "index.html"
    assert result.docs_index.is_file()
    assert result.summary().startswith("Quality gate passed")


def test_docs_default_to_the_configured_reports_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEADNORM_REPORTS_DIR", str(tmp_path / "configured"))
    frames, source = valid_frames()
    result = run_gate(frames, source)
    assert result.docs_index == tmp_path / "configured" / "data_docs" / "index.html"
    assert result.docs_index.is_file()


def _break_duplicate_domain(frames, source):
    companies = frames["companies"]
    companies.loc[1, "domain"] = companies.loc[0, "domain"]


def _break_dangling_company(frames, source):
    frames["leads"].loc[1, "company_id"] = ObjectId()


def _break_icp_score(frames, source):
    frames["icp_scores"].loc[0, "icp_score"] = 140


def _break_status(frames, source):
    frames["leads"].loc[2, "status"] = "qualified"


def _break_reconciliation(frames, source):
    source.loc[len(source)] = {"_id": ObjectId(), "outcome": "migrated", "reject_reason": None}


def _break_string_id(frames, source):
    frames["personas"].loc[0, "_id"] = str(frames["personas"].loc[0, "_id"])


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (_break_duplicate_domain, Finding("companies", "expect_column_values_to_be_unique", "domain", 2)),
        (_break_dangling_company, Finding("leads", "expect_column_values_to_be_in_set", "company_id__resolves", 1)),
        (_break_icp_score, Finding("icp_scores", "expect_column_values_to_be_between", "icp_score", 1)),
        (_break_status, Finding("leads", "expect_column_values_to_be_in_set", "status", 1)),
        (_break_reconciliation, Finding("leads", "expect_table_row_count_to_equal", None, None)),
    ],
    ids=["duplicate-domain", "dangling-company-id", "icp-score-140", "bad-status", "reconciliation"],
)
def test_breakage_fails_the_gate(reports, breakage, expected):
    frames, source = valid_frames()
    breakage(frames, source)
    result = run_gate(frames, source, reports_dir=reports)
    assert not result.passed
    assert result.failures == [expected]
    summary = result.summary()
    assert summary.startswith("Quality gate FAILED: 1 critical")
    assert expected.expectation in summary
    with pytest.raises(GateFailed, match=expected.expectation):
        result.raise_if_failed()


def test_string_id_is_no_object_id(reports):
    frames, source = valid_frames()
    _break_string_id(frames, source)
    failures = run_gate(frames, source, reports_dir=reports).failures
    # The persona's own id fails the ObjectId pattern, and the lead's ObjectId no longer finds it.
    assert Finding("personas", "expect_column_values_to_match_regex", "_id", 1) in failures
    assert Finding("leads", "expect_column_values_to_be_in_set", "persona_id__resolves", 1) in failures


def test_warning_only_problems_pass_with_warnings(reports):
    frames, source = valid_frames(leads=12)
    personas = frames["personas"]
    personas.loc[3, ["email", "linkedin_url"]] = None
    frames["icp_scores"].loc[:, "fit_tier"] = ""  # unreadable tiers get the text default
    result = run_gate(frames, source, reports_dir=reports)
    assert result.passed, result.summary()
    assert Finding("personas", "expect_column_values_to_not_be_null", "linkedin_url", 1) in result.warnings
    assert (
        Finding("icp_scores", "expect_column_values_to_be_in_set", "fit_tier", len(frames["icp_scores"]))
        in result.warnings
    )
    assert result.summary().startswith("Quality gate passed. 3 warning(s): ")


def test_missing_frame_and_column_fail_instead_of_crashing(reports):
    frames, source = valid_frames()
    del frames["citations"]
    frames["leads"] = frames["leads"].drop(columns=["persona_id"])
    failures = run_gate(frames, source, reports_dir=reports).failures
    failed = {(finding.suite, finding.expectation) for finding in failures}
    assert ("citations", "expect_table_columns_to_match_set") in failed
    assert ("leads", "expect_table_columns_to_match_set") in failed


def test_validation_frames_mark_references():
    frames, source = valid_frames()
    frames["leads"].loc[1, "company_id"] = ObjectId()
    batches = validation_frames(frames, source)
    leads = batches["leads"]
    assert leads["company_id__resolves"].tolist() == [True, False, *[True] * (len(leads) - 2)]
    assert leads["legacy_lead_id__resolves"].all()
    assert leads.loc[0, "company_id"] is None or pd.isna(leads.loc[0, "company_id"])
    assert frames["leads"]["company_id"].map(type).eq(ObjectId).sum() == len(leads) - 1  # input untouched


def test_suites_cover_the_schema():
    """The JSON suites and schema.py describe the same collections, columns and references."""
    suites = suite_definitions()
    assert set(suites) == {*schema.COLLECTIONS, SOURCE_SUITE}
    for name, collection in schema.COLLECTIONS.items():
        expectations = suites[name]["expectations"]
        assert all(e["severity"] in ("critical", "warning") for e in expectations), name
        columns = next(
            e["kwargs"]["column_set"] for e in expectations if e["type"] == "expect_table_columns_to_match_set"
        )
        assert columns[: len(collection.columns)] == collection.columns, name
        checked = {e["kwargs"].get("column") for e in expectations}
        for reference in collection.references:
            assert f"{reference}__resolves" in checked, (name, reference)
        for key in collection.natural_keys:
            unique = [e["kwargs"] for e in expectations if "unique" in e["type"]]
            assert any(kwargs.get("column_list", [kwargs.get("column")]) == list(key) for kwargs in unique), (name, key)
