"""
### leads_rollback

Undoes the runs since a backup: replays the chain of backups from the newest down to the one
named (by default the newest, which undoes the last run). An increment, taken by a refresh of a
scope, deletes the ids its run may have written or deleted and puts back the documents they
held; a full backup, taken by a migration (or a refresh without a trusted key store), restores
`leads` and the collections it holds whole, and nothing after it needs replaying. Then what the
migrations wrote that the chain does not cover is dropped with the bookkeeping (`migration_*`):
the next refresh resolves the whole source. Uploaded leads, and nested leads the application
wrote since an increment, stay. The backups of the runs undone are set aside (`<name>.undone`).

**Shape:** check_backup → restore.

- **check_backup** checks every backup of the chain against its `manifest.json` (size, sha256,
  document count) and each against its parent, and fails, naming the file or the gap, when one
  is missing, altered or truncated. Nothing has changed at that point.
- **restore** checks the chain again, then replays it, byte for byte, under the database's lock.
  A retry starts from the chain again.

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
        """Resolve the backup and check its chain before anything changes; returns its folder."""
        import logging
        from pathlib import Path

        from leadnorm.airflow_support import mongo_database
        from leadnorm.config import backups_dir
        from leadnorm.steps import rollback

        folder = Path(params["backup"]) if params["backup"] else None
        folder = folder or rollback.latest_backup(backups_dir(), mongo_database().name)
        chain = rollback.check_chain(folder)
        for member, manifest in chain:
            counts = ", ".join(f"{name} {c['documents']}" for name, c in manifest["collections"].items())
            logging.getLogger("leadnorm").info("%s backup %s checked: %s", manifest["kind"], member, counts)
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
