"""What a DAG run's tab in the Airflow UI shows: the run's summary and its quality gate, suite by
suite, with the severity of what failed.

Both are found by comparing the run's names with the files there, never by making the request's
text into a path: the summary under `reports/summaries/<dag id>/<run name>.txt` (written when a run
ends, or skips), the gate's masked results under `reports/gx_results/<suite>/<run name>/` and its
pages under `reports/data_docs/validations/<suite>/<run name>/` (a run's name is its id with `:`
and `+` replaced, as `RunFolder.new` and GX file it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from leadnorm.steps.runstore import run_name

# The DAGs that validate what they write; the others (the CSV upload checks each row as it reads
# it, rollback and cleanup restore or delete what was validated) have no gate to show.
GATED_DAGS = frozenset({"leads_migration", "leads_refresh", "leads_quality_report"})
SUMMARY_MAX_BYTES = 64 * 1024
PASSED, WARNED, FAILED = "passed", "passed with warnings", "critical failed"


@dataclass
class SuiteOutcome:
    suite: str
    result: str  # PASSED, WARNED or FAILED
    failed: int  # expectations that failed, either severity
    pages: list[str] = field(default_factory=list)  # Data Docs pages, relative to the site


@dataclass
class RunOutcome:
    dag_id: str
    run_id: str
    gated: bool
    summary: str | None
    suites: list[SuiteOutcome]


def run_outcome(reports: Path, dag_id: str, run_id: str) -> RunOutcome:
    name = run_name(run_id)
    return RunOutcome(
        dag_id, run_id, dag_id in GATED_DAGS, _summary(reports / "summaries", dag_id, name), _suites(reports, name)
    )


def _summary(summaries: Path, dag_id: str, name: str) -> str | None:
    for dag in _children(summaries):
        if dag.name == dag_id:
            for path in _children(dag):
                if path.name == f"{name}.txt" and path.is_file():
                    with path.open("rb") as text:
                        return text.read(SUMMARY_MAX_BYTES).decode("utf-8", "replace")
    return None


def _suites(reports: Path, name: str) -> list[SuiteOutcome]:
    docs = reports / "data_docs"
    outcomes = []
    for suite in _children(reports / "gx_results"):
        for run in _children(suite):
            if run.name != name:
                continue
            failed = {"critical": 0, "warning": 0}
            for result in sorted(run.glob("*/*.json")):
                for expectation in json.loads(result.read_text()).get("results", []):
                    if not expectation.get("success", True):
                        severity = expectation.get("expectation_config", {}).get("severity", "critical")
                        failed["critical" if severity == "critical" else "warning"] += 1
            verdict = FAILED if failed["critical"] else WARNED if failed["warning"] else PASSED
            pages = sorted(
                p.relative_to(docs).as_posix() for p in (docs / "validations" / suite.name / name).glob("*/*.html")
            )
            outcomes.append(SuiteOutcome(suite.name, verdict, sum(failed.values()), pages))
    return outcomes


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []
