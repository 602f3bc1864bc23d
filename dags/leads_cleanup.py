"""
### leads_cleanup

Deletes the nested leads that the migration has already normalized (those marked
`_migrated: true`), the last step of the leads migration. Rejected leads and the
normalized documents stay.

**Shape:** check_confirm → cleanup.

- **check_confirm** fails at once, without retries, unless the param `confirm` is the
  name of the connection's database: a typo or the wrong connection deletes nothing.
- **cleanup** takes a backup of `leads` and the normalized collections (under
  `LEADNORM_BACKUP_DIR`, default `backups/`), runs the reconciliation (every nested lead
  migrated or rejected, every expected document there, every reference resolving) and
  only when both succeed deletes the migrated nested leads. Each one is recorded in
  `migration_cleaned` first, so later refreshes keep its normalized lead and a retry
  after a crash finishes the job. `leads_rollback` with this run's backup undoes it.

**MongoDB:** the Airflow connection `mongo_default` (conn type `mongo`; its path names
the database, default `jazon_ai_sdr`).

**Params:** `confirm`, the database name, typed out.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="leads_cleanup",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["leadnorm", "cleanup", "mongodb"],
    doc_md=__doc__,
    params={
        "confirm": Param("", type="string", description="the name of the database whose nested leads to delete"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20)},
)
def leads_cleanup():
    @task
    def check_confirm(params=None) -> None:
        """A wrong confirmation stays wrong: fail without retrying."""
        from airflow.sdk.exceptions import AirflowFailException

        from leadnorm.airflow_support import mongo_database
        from leadnorm.errors import LeadnormError
        from leadnorm.steps.cleanup import check_confirm

        try:
            check_confirm(mongo_database(), params["confirm"])
        except LeadnormError as refused:
            raise AirflowFailException(str(refused)) from None

    @task(multiple_outputs=False)
    def cleanup(params=None) -> dict:
        import logging

        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.cleanup import run_cleanup
        from leadnorm.steps.lock import hold_lock

        db = mongo_database()
        with hold_lock(db, "leads_cleanup"):  # no migrate, refresh or rollback meanwhile
            result = run_cleanup(db, params["confirm"])
        logging.getLogger("leadnorm").info("%s", result.render())
        return result.as_dict()

    check_confirm() >> cleanup()


leads_cleanup()
