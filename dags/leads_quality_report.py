"""
### leads_quality_report

Runs the migration gate's Great Expectations suites on the nine normalized collections
**as they are stored** (companies, personas, leads, technographics, research_runs,
citations, detected_signals, icp_scores, icp_factor_breakdowns), plus the per-lead
outcomes of the nested source leads (`_migrated` marks and `migration_rejects`).

**Why:** the gate checks what a run is about to write; this report checks what is there
afterwards, so drift from later refreshes or hand edits (a deleted company leaves
dangling `company_id` references, a source lead loses its mark) is caught too.

**Schedule:** any update of any of the nine collection Assets
(`mongodb://host:port/db/collection`, emitted by the migration and refresh DAGs), so one
migration run triggers a report once or a few times; `max_active_runs=1` keeps reports
from overlapping. Can also be triggered by hand.

**Result:** one log line naming every failed expectation; the task fails when a critical
expectation fails (no retry: the data would not change). Data Docs, with this run next to
the migration runs, go to `reports/data_docs/`.

**MongoDB:** the Airflow connection `mongo_default` (its path names the database), e.g.
`AIRFLOW_CONN_MONGO_DEFAULT='mongo://127.0.0.1:27017/jazon_ai_sdr'`; the asset names come
from the same variable (see `leadnorm.assets`).
"""

from __future__ import annotations

import functools
import operator
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from leadnorm.assets import collection_assets

COLLECTION_ASSETS = collection_assets()


@dag(
    dag_id="leads_quality_report",
    schedule=functools.reduce(operator.or_, COLLECTION_ASSETS.values()),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["leadnorm", "quality", "mongodb"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20)},
)
def leads_quality_report():
    @task(multiple_outputs=False)
    def validate_stored_collections() -> dict:
        """Retried on I/O errors only: a failed critical expectation fails the task at once."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from leadnorm.airflow_support import mongo_database
        from leadnorm.quality.report import validate_stored

        result = validate_stored(mongo_database())
        logging.getLogger("leadnorm").info("%s", result.report())
        if not result.passed:
            raise AirflowFailException(result.summary())
        return {"warnings": len(result.warnings), "docs_index": str(result.docs_index)}

    validate_stored_collections()


leads_quality_report()
