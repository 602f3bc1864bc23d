"""
### leads_refresh

Keeps the nine normalized collections in step with the nested leads the application
keeps writing (new uploads, new research, new ICP scores), on a time schedule: hourly by
default, `LEADNORM_REFRESH_SCHEDULE` (a cron expression or preset, read when the DAG file
is parsed) changes it. No catchup: a missed slot is not replayed, the next run catches up.

Afterwards the collections hold exactly what a migration from scratch of the current
source would write (timestamps aside), with every lead id kept and the ids of companies
and personas kept while they exist (in a merge, the id with more leads survives).

**Shape:** the same tasks as `leads_migration` (see its docs). The first task, **lock**,
also compares each source lead's content with the fingerprint recorded when it was last
migrated or rejected: with nothing new, changed or gone, the run is skipped and writes
nothing. A slot whose lock a manual run holds is skipped too.

Changes are found by content, not by `updated_at`. Writes are ordered so that no unique
index is violated on the way (a stored document gives up a domain, email or LinkedIn URL
that another id takes over before it is written); what the source no longer produces is
deleted after every collection is loaded. Each run backs up what it may replace or delete
first, so `leads_rollback` can undo it. Backups are pruned to the last 10 per database.

**MongoDB:** the Airflow connection `mongo_default`. **Params:** `dry_run`, `batch_size`.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from leadnorm.assets import collection_assets
from leadnorm.flows import DEFAULT_ARGS, migration_flow, run_params


@dag(
    dag_id="leads_refresh",
    schedule=os.environ.get("LEADNORM_REFRESH_SCHEDULE", "@hourly"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["leadnorm", "refresh", "mongodb"],
    doc_md=__doc__,
    params=run_params(),
    default_args=DEFAULT_ARGS,
)
def leads_refresh():
    migration_flow("refresh", collection_assets())


leads_refresh()
