"""
### leads_csv_ingest

Loads a CSV of leads, the seed application's upload (POST /api/leads/upload): the **Leads**
page's upload form stores the file in the inbox folder and triggers this DAG with its path.

**Shape:** check_file → ingest.

- **check_file** reads the whole file once without writing: a file that cannot be read, or
  lacks one of the columns `name`, `title`, `company`, `email` (header names without case,
  any order; `linkedin_url`, `phone`, `domain` optional), fails at once, without
  retries, and nothing is written.
- **ingest** finds each row's company (by domain, else name) and persona (by email, else
  LinkedIn URL, else full name) by the contract's dedupe rules, creates what it does not
  find, and creates the lead with status `uploaded`. Rows with neither a name nor an
  email, or with a malformed email, are not loaded: each is logged with its line number
  and kept in `upload_rejects` with its reason. Ingesting the same file again creates
  nothing, so a retry is safe. It holds the database's migration lock meanwhile.

**MongoDB:** the Airflow connection `mongo_default` (conn type `mongo`; its path names the
database, default `jazon_ai_sdr`).

**Params:** `path`, the CSV file on the workers' file system.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="leads_csv_ingest",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["leadnorm", "upload", "mongodb"],
    doc_md=__doc__,
    params={"path": Param("", type="string", minLength=1, description="the CSV file to load")},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20)},
)
def leads_csv_ingest():
    @task
    def check_file(params=None) -> str:
        """Bad input fails at once, one line, no retry (AirflowFailException): retrying cannot
        mend a file. A file system that failed to answer is retried."""
        from pathlib import Path

        from airflow.sdk.exceptions import AirflowFailException

        from leadnorm.errors import UploadError
        from leadnorm.steps.ingest import check_file as check

        try:
            rows = check(Path(params["path"]))
        except UploadError as exc:
            raise AirflowFailException(str(exc)) from None
        return f"{rows} rows"

    @task(multiple_outputs=False)
    def ingest(checked: str, params=None, dag_run=None) -> dict:
        import logging
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.ingest import ingest_csv
        from leadnorm.steps.lock import hold_lock
        from leadnorm.steps.summary import save_summary

        db = mongo_database()
        with hold_lock(db, "leads_csv_ingest"):
            result = ingest_csv(db, Path(params["path"]))
        text = result.render()
        saved = save_summary(text, f"{dag_run.dag_id}/{dag_run.run_id}")  # the run's Outcome tab
        logging.getLogger("leadnorm").info("%s\nsummary: %s", text, saved)
        return result.as_dict()

    ingest(check_file())


leads_csv_ingest()
