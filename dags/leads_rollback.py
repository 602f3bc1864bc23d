"""
### leads_rollback

Undoes the leads migrations: restores the source collection `leads` from a backup that
the migration DAG or `python -m leadnorm migrate` took, and removes everything the
migrations wrote (the normalized leads, the eight other normalized collections,
`migration_rejects` and the other `migration_*` bookkeeping collections). A backup taken
before a refresh also holds the previous run's normalized collections: those come back.

**Shape:** check_backup → restore.

- **check_backup** checks every file of the backup against its `manifest.json` (size,
  sha256, document count) and fails, naming the file, when one is missing, altered or
  truncated. Nothing has changed at that point.
- **restore** checks the backup again, then restores `leads` (and the other collections
  the backup holds) document for document, byte for byte, with their indexes, and drops
  the rest of what the migrations wrote. A retry starts from the backup again.

**MongoDB:** the Airflow connection `mongo_default` (conn type `mongo`; its path names
the database, default `jazon_ai_sdr`). **Backups:** `LEADNORM_BACKUP_DIR` (default
`backups/` of the checkout).

**Params:** `backup`, the path of a backup folder (`backups/<db>-<UTC stamp>`); empty
means the newest complete backup of the connection's database.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="leads_rollback",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["leadnorm", "rollback", "mongodb"],
    doc_md=__doc__,
    params={
        "backup": Param(
            "", type="string", description="backup folder to restore; empty = the newest of the connection's database"
        ),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20)},
)
def leads_rollback():
    @task
    def check_backup(params=None) -> str:
        """Resolve and check the backup before anything changes; returns its folder."""
        import logging
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.config import backups_dir
        from leadnorm.steps import rollback

        folder = Path(params["backup"]) if params["backup"] else None
        folder = folder or rollback.latest_backup(backups_dir(), mongo_database().name)
        manifest = rollback.check_backup(folder)
        counts = ", ".join(f"{name} {c['documents']}" for name, c in manifest["collections"].items())
        logging.getLogger("leadnorm").info("backup %s checked: %s", folder, counts)
        return str(folder)

    @task(multiple_outputs=False)
    def restore(folder: str) -> dict:
        import logging
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.lock import hold_lock
        from leadnorm.steps.rollback import rollback

        db = mongo_database()
        with hold_lock(db, "leads_rollback"):  # no migrate, refresh or cleanup meanwhile
            result = rollback(db, Path(folder), keep_locks=True)
        logging.getLogger("leadnorm").info("%s", result.render())
        return result.as_dict()

    restore(check_backup())


leads_rollback()
