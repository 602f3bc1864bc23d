"""A DAG run's Outcome tab, from the files a real run leaves: its summary, and its gate suite by
suite with the severity of what failed, found by comparing the run's name with the files there."""

from __future__ import annotations

import json

import pytest

from leadnorm.devtools.seed import seed_leads
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder, run_name
from leadnorm.steps.summary import save_summary, summary
from leadnorm.ui.runs import FAILED, PASSED, WARNED, run_outcome

RUN_ID = "manual__2026-12-08T01:02:03.456789+00:00"


@pytest.fixture
def reports(db, tmp_path, monkeypatch):
    """The reports of one gated migration, run as the DAG names its run folder."""
    monkeypatch.setenv("LEADNORM_REPORTS_DIR", str(tmp_path / "reports"))
    seed_leads(db, 80, seed=12)
    run, report = migrate(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / run_name(RUN_ID)))
    assert report.ok
    save_summary(summary(run), f"leads_migration/{RUN_ID}")
    return tmp_path / "reports"


def test_a_gated_run_shows_its_summary_and_each_suite_with_its_result(reports):
    outcome = run_outcome(reports, "leads_migration", RUN_ID)
    assert outcome.gated and outcome.summary.startswith("migration summary")
    suites = {s.suite: s for s in outcome.suites}
    assert {"leads", "companies", "personas", "nested_leads"} <= set(suites)
    for suite in suites.values():
        assert suite.pages and all((reports / "data_docs" / page).is_file() for page in suite.pages)
        assert suite.result == (WARNED if suite.failed else PASSED)


def test_a_failed_critical_expectation_marks_its_suite_critical_failed(reports):
    results = next((reports / "gx_results" / "companies" / run_name(RUN_ID)).glob("*/*.json"))
    stored = json.loads(results.read_text())
    stored["results"][0]["success"] = False  # what a gate that stopped the run leaves
    stored["results"][0]["expectation_config"]["severity"] = "critical"
    results.write_text(json.dumps(stored))
    suites = {s.suite: s for s in run_outcome(reports, "leads_migration", RUN_ID).suites}
    assert suites["companies"].result == FAILED and suites["companies"].failed >= 1


def test_another_run_or_dag_finds_nothing_and_a_path_in_the_id_goes_nowhere(reports):
    assert run_outcome(reports, "leads_migration", "manual__other").suites == []
    assert run_outcome(reports, "leads_refresh", RUN_ID).summary is None
    escaped = run_outcome(reports, "../summaries/leads_migration", f"../../{RUN_ID}")
    assert escaped.summary is None and escaped.suites == [] and not escaped.gated
    assert not run_outcome(reports, "leads_csv_ingest", RUN_ID).gated
