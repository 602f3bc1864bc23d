"""The Data Docs index keeps earlier runs: each run adds its pages, and a dry run shows as one.

Two gate runs into the same reports folder, a real one and then a dry one; the index must
list both, with their result pages, the dry one by a run name that says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_datadocs import page_with_scripts
from test_validate import valid_frames

from leadnorm.quality.suites import suite_definitions
from leadnorm.quality.validate import DRY_RUN_PREFIX, run_gate

RUN_NAME = re.compile(r"'run_name': '(?P<name>[^']*)'")  # a row of the index's table data


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    reports = tmp_path_factory.mktemp("history") / "reports"
    frames, source = valid_frames()
    run_gate(frames, source, reports_dir=reports, run_name="nightly")
    frames, source = valid_frames()
    frames["leads"].loc[2, "status"] = "qualified"
    dry = run_gate(frames, source, reports_dir=reports, run_name="nightly", dry_run=True)
    assert not dry.passed  # the later run failed: the earlier, passed one must still show
    return reports


def test_index_lists_the_real_and_the_dry_run(reports):
    index = page_with_scripts(reports / "data_docs" / "index.html")
    rows = RUN_NAME.findall(index)
    suites = len(suite_definitions())
    assert sorted(rows) == sorted(["nightly"] * suites + [f"{DRY_RUN_PREFIX}nightly"] * suites)
    for run in ("nightly", f"{DRY_RUN_PREFIX}nightly"):
        (page,) = (reports / "data_docs" / "validations" / "leads" / run).rglob("*.html")
        assert page.relative_to(reports / "data_docs").as_posix() in index


def test_results_of_every_run_are_kept_next_to_the_docs(reports):
    runs = {path.parent.parent.name for path in (reports / "gx_results").rglob("*.json")}
    assert runs == {"nightly", f"{DRY_RUN_PREFIX}nightly"}


def test_each_run_keeps_its_own_verdict(reports):
    """The dry run's failure is on its own page; the real run's page of the same suite passed."""
    pages = reports / "data_docs" / "validations" / "leads"
    (real,) = (pages / "nightly").rglob("*.html")
    (dry,) = (pages / f"{DRY_RUN_PREFIX}nightly").rglob("*.html")
    assert ">critical</span>" not in real.read_text(encoding="utf-8")
    assert ">critical</span>" in dry.read_text(encoding="utf-8")


def test_the_docs_keep_the_newest_runs_only(tmp_path, monkeypatch):
    """An hourly refresh must not make every publish slower than the last: beyond
    `LEADNORM_DATA_DOCS_RUNS` runs, the oldest go, their results and their pages."""
    monkeypatch.setenv("LEADNORM_DATA_DOCS_RUNS", "2")
    reports = tmp_path / "reports"
    for name in ("first", "second", "third"):
        frames, source = valid_frames()
        run_gate(frames, source, reports_dir=reports, run_name=name)
    runs = {path.parent.parent.name for path in (reports / "gx_results").rglob("*.json")}
    assert runs == {"second", "third"}
    assert not list((reports / "data_docs" / "validations").rglob("first"))
    index = page_with_scripts(reports / "data_docs" / "index.html")
    assert sorted(set(RUN_NAME.findall(index))) == ["second", "third"]
