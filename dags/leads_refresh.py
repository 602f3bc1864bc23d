"""
### leads_refresh

Keeps the nine normalized collections in step with the nested leads the application
keeps writing (new uploads, new research, new ICP scores), within a minute of a change:
the Asset of the nested leads (`mongodb://…/leads?documents=nested`) has an AssetWatcher
whose trigger reads the source's change stream in the triggerer and fires once nested
leads changed and the stream has been quiet for a few seconds (a burst of writes gives one
run; the refresh's own writes never fire it). A time schedule stays as a safety net:
hourly by default, `LEADNORM_REFRESH_SCHEDULE` (a cron expression or preset, read when the
DAG file is parsed) changes it. Without change streams (a standalone server) the watcher
says so in the triggerer's log and the time schedule carries on alone. No catchup: a
missed slot is not replayed, the next run catches up.

Afterwards the collections hold exactly what a migration from scratch of the current
source would write (timestamps aside), with every lead id kept and the ids of companies
and personas kept while they exist (in a merge, the id with more leads survives).

**Shape:** the same tasks as `leads_migration` (see its docs). The first task, **lock**,
also compares the content of the source leads named in the change stream since the last run
(of every source lead, where there is no trusted stream position) with the fingerprint
recorded when each was last migrated or rejected: with nothing new, changed or gone, the run
is skipped and writes nothing; its log says which detection ran. A slot whose lock a manual
run holds is skipped too.

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
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag

from leadnorm.assets import collection_assets, nested_leads_asset
from leadnorm.flows import DEFAULT_ARGS, migration_flow, run_params


@dag(
    dag_id="leads_refresh",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(os.environ.get("LEADNORM_REFRESH_SCHEDULE", "@hourly"), timezone="UTC"),
        assets=[nested_leads_asset()],
    ),
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
