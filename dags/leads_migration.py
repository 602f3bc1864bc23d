"""
### leads_migration

Migrates the nested Jazon AI SDR leads of `leads` into the nine normalized collections
(companies, personas, leads, technographics, research_runs, citations, detected_signals,
icp_scores, icp_factor_breakdowns), following the project's data contract
(`docs/data-contract.md` in the repository).

**Shape:** backup → extract → normalize → validate → load (one mapped task per
collection) → mark → verify → remove_run_folder.

- **backup** dumps `leads` (and any target collection already there) in mongodump's
  layout under `backups/` before anything is written.
- **extract** stages the nested leads as BSON batches; **normalize** dedupes companies
  and personas over all of them and stages the nine frames. Tasks pass the run folder's
  path through XCom, never data.
- **validate** is the Great Expectations gate: a critical failure stops the run before
  any write; Data Docs go to `reports/data_docs/`.
- **load** writes only what differs (a rerun writes nothing); **mark** sets
  `_migrated: true` on each source lead once all its documents are written and records
  rejects in `migration_rejects`; **verify** fails the run unless nested = migrated +
  rejected and every reference resolves.
- **remove_run_folder** deletes the run's staging folder (personal data, owner-only)
  once the run succeeded; a failed run keeps it for the retry (`python -m leadnorm
  staging list|prune`). The summary table goes to the task log and
  `reports/summaries/`.

**MongoDB:** the Airflow connection `mongo_default` (conn type `mongo`; its path names
the database, default `jazon_ai_sdr`), e.g.
`AIRFLOW_CONN_MONGO_DEFAULT='mongo://127.0.0.1:27017/jazon_ai_sdr'`.

**Params:** `dry_run` (write nothing, report what would be written), `batch_size`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="leads_migration",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["leadnorm", "migration", "mongodb"],
    doc_md=__doc__,
    params={
        "dry_run": Param(False, type="boolean", description="write nothing; report what would be written"),
        "batch_size": Param(1000, type="integer", minimum=1, description="source documents per batch"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20)},
)
def leads_migration():
    @task
    def backup(dag_run=None, params=None) -> str:
        """Dump the source before any write; returns the run folder every later task works in."""
        from leadnorm.airflow_support import mongo_database, run_folder
        from leadnorm.mongo import require_source
        from leadnorm.steps.pipeline import backup_step

        db = mongo_database()
        require_source(db)
        run = run_folder(dag_run.dag_id, dag_run.run_id)
        if not params["dry_run"]:
            backup_step(db, run)
        return str(run.root)

    @task
    def extract(run_root: str, params=None) -> str:
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.pipeline import extract_step
        from leadnorm.steps.runstore import RunFolder

        extract_step(mongo_database(), RunFolder(Path(run_root)), params["batch_size"])
        return run_root

    @task(retries=0)
    def normalize(run_root: str) -> str:
        from pathlib import Path

        from leadnorm.steps.pipeline import normalize_step
        from leadnorm.steps.runstore import RunFolder

        normalize_step(RunFolder(Path(run_root)))
        return run_root

    @task(retries=0)
    def validate(run_root: str, params=None) -> list[str]:
        """The gate; returns the collections to load, which the load task maps over."""
        from pathlib import Path

        from leadnorm.schema import COLLECTIONS
        from leadnorm.steps.pipeline import validate_step
        from leadnorm.steps.runstore import RunFolder

        validate_step(RunFolder(Path(run_root)), dry_run=params["dry_run"])
        return list(COLLECTIONS)

    @task(map_index_template="{{ collection }}", retries=3, multiple_outputs=False)
    def load(run_root: str, collection: str, params=None) -> dict:
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.pipeline import load_step
        from leadnorm.steps.runstore import RunFolder

        get_current_context()["collection"] = collection
        return load_step(
            mongo_database(),
            RunFolder(Path(run_root)),
            collection,
            dry_run=params["dry_run"],
            batch_size=params["batch_size"],
        )

    @task(retries=3)
    def mark(run_root: str, params=None) -> str:
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.pipeline import mark_step
        from leadnorm.steps.runstore import RunFolder

        mark_step(
            mongo_database(), RunFolder(Path(run_root)), dry_run=params["dry_run"], batch_size=params["batch_size"]
        )
        return run_root

    @task
    def verify(run_root: str, dag_run=None, params=None) -> str:
        """Fails the run unless every nested lead is accounted for and every reference resolves."""
        import logging
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.errors import LeadnormError
        from leadnorm.steps.pipeline import save_summary, summary, verify_step
        from leadnorm.steps.runstore import RunFolder

        run = RunFolder(Path(run_root))
        report = None if params["dry_run"] else verify_step(mongo_database(), run)
        text = summary(run, dry_run=params["dry_run"])
        saved = save_summary(text, f"{dag_run.dag_id}/{dag_run.run_id}")
        logging.getLogger("leadnorm").info("\n%s\nsummary: %s", text, saved)
        if report is not None and not report.ok:
            raise LeadnormError("verification failed: " + "; ".join(report.problems()))
        return run_root

    @task
    def remove_run_folder(run_root: str) -> None:
        """Only after a successful run: a failed one keeps its folder for the retry."""
        from pathlib import Path

        from leadnorm.steps.runstore import RunFolder

        RunFolder(Path(run_root)).remove()

    run_root = normalize(extract(backup()))
    loaded = load.partial(run_root=run_root).expand(collection=validate(run_root))
    marked = mark(run_root)
    loaded >> marked
    remove_run_folder(verify(marked))


leads_migration()
