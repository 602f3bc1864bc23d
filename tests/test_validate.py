"""The quality gate: valid frames pass, each kind of breakage fails with the right expectation.

`valid_frames` builds small, consistent frames by hand (real ObjectIds, every reference
resolving); the Data Docs tests import it too.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bson import ObjectId
from bson.int64 import Int64

from leadnorm import schema
from leadnorm.errors import GateFailed
from leadnorm.quality.validate import (
    SOURCE_SUITE,
    Finding,
    GateResult,
    id_text,
    run_gate,
    suite_definitions,
    validation_frames,
)

NOW = dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC)
OBJECT_ID_HEX = "^[0-9a-f]{24}$"
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
    assert result.report() == (
        "validation passed with 1 warning\n"
        "  warning   nested_leads.outcome expect_column_values_to_be_in_set (1 unexpected)\n"
        f"Data Docs: {result.docs_index}"
    )


def test_the_report_names_every_failed_expectation_one_per_line():
    warning = Finding("leads", "expect_column_values_to_match_regex", "email", 3)
    other = Finding("companies", "expect_table_row_count_to_equal", None, None)
    critical = Finding("leads", "expect_column_values_to_be_in_set", "status", 1)
    index = Path("reports/data_docs/index.html")
    assert GateResult(True, [], [], index).report() == f"validation passed\nData Docs: {index}"
    assert GateResult(True, [], [warning, other], index).report().splitlines() == [
        "validation passed with 2 warnings",
        "  warning   leads.email expect_column_values_to_match_regex (3 unexpected)",
        "  warning   companies expect_table_row_count_to_equal",
        f"Data Docs: {index}",
    ]
    assert GateResult(False, [critical], [warning], index).report().splitlines() == [
        "validation FAILED with 1 critical failure and 1 warning",
        "  critical  leads.status expect_column_values_to_be_in_set (1 unexpected)",
        "  warning   leads.email expect_column_values_to_match_regex (3 unexpected)",
        f"Data Docs: {index}",
    ]


def test_gate_keeps_gx_info_logs_out(reports, caplog):
    gx_logger = logging.getLogger("great_expectations")
    before = gx_logger.level
    gx_logger.setLevel(logging.DEBUG)  # GX at its noisiest, and a level run_gate must restore
    try:
        with caplog.at_level(logging.INFO):
            run_gate(*valid_frames(), reports_dir=reports)
        assert [
            r for r in caplog.records if r.name.startswith("great_expectations") and r.levelno < logging.WARNING
        ] == []
        assert gx_logger.level == logging.DEBUG
    finally:
        gx_logger.setLevel(before)


def test_importing_the_gate_logs_no_gx_info():
    """Importing GX alone logs some 200 INFO lines; the pipeline imports the gate inside its task."""
    script = "import logging; logging.basicConfig(level=logging.INFO); import leadnorm.quality.validate"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert "great_expectations" not in run.stderr, run.stderr[:2000]


def test_importing_the_gate_compiles_no_iri_grammar():
    """GX, through altair and jsonschema, would load the IRI format checker (a second of CPU); the
    gate imports it without, and a gate run works as before (the other tests here)."""
    script = (
        "import sys, leadnorm.quality.validate, jsonschema;"
        "print(sys.modules.get('rfc3987_syntax') is None, 'jsonschema' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert run.stdout.split() == ["True", "True"]


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


def _with_legacy_ids(frames, source, legacy_ids: list) -> None:
    """Give the first migrated nested leads (and so their leads) the source ids `legacy_ids`."""
    legacy = list(frames["leads"]["legacy_lead_id"])
    legacy[: len(legacy_ids)] = legacy_ids
    frames["leads"]["legacy_lead_id"] = pd.Series(legacy, index=frames["leads"].index, dtype=object)
    source["_id"] = pd.Series([*legacy, *source["_id"][len(legacy) :]], index=source.index, dtype=object)


def test_source_ids_of_any_type_pass(reports):
    """Data contract section 3: any source `_id` is a legacy id; "42" and 42 are two leads."""
    frames, source = valid_frames()
    _with_legacy_ids(frames, source, ["42", 42, {"tenant": "acme", "lead": 42}, Int64(42), dt.datetime(2020, 1, 1)])
    result = run_gate(frames, source, reports_dir=reports)
    assert result.passed, result.summary()
    assert result.failures == []
    assert result.warnings == [Finding(SOURCE_SUITE, "expect_column_values_to_be_in_set", "outcome", 1)]


def test_duplicate_source_ids_still_fail(reports):
    frames, source = valid_frames()
    _with_legacy_ids(frames, source, [{"lead": 42}, {"lead": 42}])
    failures = run_gate(frames, source, reports_dir=reports).failures
    assert Finding(SOURCE_SUITE, "expect_column_values_to_be_unique", "_id", 2) in failures
    assert Finding("leads", "expect_column_values_to_be_unique", "legacy_lead_id", 2) in failures


def test_id_texts_keep_distinct_ids_distinct():
    oid = ObjectId()
    assert id_text(oid) == str(oid)
    assert id_text("42") == "str:42"
    assert id_text(42) == id_text(np.int64(42)) == "int:42"  # a numeric column's numpy scalar is the same id
    assert id_text(Int64(42)) == "Int64:42"
    assert id_text(str(oid)) == f"str:{oid}"  # never passes for an ObjectId
    assert id_text({"b": 1, "a": "x"}) == 'dict:{"b": {"$numberInt": "1"}, "a": "x"}'  # key order kept
    assert id_text({"a": "x", "b": 1}) != id_text({"b": 1, "a": "x"})
    assert id_text({"n": 1}) != id_text({"n": "1"}) != id_text({"n": 1.0})
    assert id_text(None) is id_text(float("nan")) is None


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
    assert result.report().startswith("validation passed with 3 warnings\n")
    assert "personas.linkedin_url expect_column_values_to_not_be_null (1 unexpected)" in result.report()


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


def _object_id_checked(expectations: list[dict], column: str) -> bool:
    return any(
        e["type"] == "expect_column_values_to_match_regex"
        and e["kwargs"]["column"] == column
        and e["kwargs"]["regex"] == OBJECT_ID_HEX
        and e["severity"] == "critical"
        for e in expectations
    )


def test_suites_cover_the_schema():
    """The JSON suites and schema.py describe the same collections, columns and references.

    Target ids are ObjectIds (references too: they must find a target `_id`); source ids,
    the nested leads' `_id` and so `legacy_lead_id`, may be of any type.
    """
    suites = suite_definitions()
    assert set(suites) == {*schema.COLLECTIONS, SOURCE_SUITE}
    assert not _object_id_checked(suites[SOURCE_SUITE]["expectations"], "_id")
    assert not _object_id_checked(suites["leads"]["expectations"], "legacy_lead_id")
    for name, collection in schema.COLLECTIONS.items():
        expectations = suites[name]["expectations"]
        assert all(e["severity"] in ("critical", "warning") for e in expectations), name
        assert _object_id_checked(expectations, "_id"), name
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
