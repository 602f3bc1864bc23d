"""
### leads_migration

Migrates the nested Jazon AI SDR leads of `leads` into the nine normalized collections
(companies, personas, leads, technographics, research_runs, citations, detected_signals,
icp_scores, icp_factor_breakdowns), following the project's data contract
(`docs/data-contract.md` in the repository). Rerun it at any time: it writes only what
differs from the current source, deletes what the source no longer produces, and keeps
every lead id and the ids of companies and personas.

**Shape:** lock → backup → plan → extract and split (one mapped task per partition) →
resolve → validate → load (one mapped task per collection) → mark (and prune) → verify →
remove_run_folder, with unlock as teardown.

- **lock** takes the database's lease lock (`migration_locks`): a second migrate,
  refresh, rollback or cleanup is refused at once with a line naming the holder.
- **backup** dumps `leads` (and any target collection already there) in mongodump's
  layout under `backups/` before anything is written.
- **plan** splits the source by `_id` ranges into the param `partitions` (0: one per
  25,000 nested leads, at most 8); **extract** stages each partition's nested leads as
  BSON batches and **split** turns them into mention frames, in parallel; **resolve**
  dedupes companies and personas over all partitions at once (exact, whatever the
  partitioning), keeps the ids already stored, and stages the frames. Tasks pass the run
  folder's path and partition numbers through XCom, never data.
- **validate** is the Great Expectations gate: a critical failure stops the run before
  any write; Data Docs go to `reports/data_docs/`.
- **load** writes only what differs (a rerun writes nothing); **mark** sets
  `_migrated: true` and the content's fingerprint on each source lead once all its
  documents are written, records rejects in `migration_rejects`, then deletes what the
  source no longer produces; **verify** fails the run unless nested = migrated +
  rejected and every reference resolves, and emits an Asset event per collection
  (`mongodb://host:port/db/collection`: row count and what the run wrote).
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

import pendulum
from airflow.sdk import dag

from leadnorm.assets import collection_assets
from leadnorm.flows import DEFAULT_ARGS, migration_flow, run_params


@dag(
    dag_id="leads_migration",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["leadnorm", "migration", "mongodb"],
    doc_md=__doc__,
    params=run_params(),
    default_args=DEFAULT_ARGS,
)
def leads_migration():
    migration_flow("migrate", collection_assets())


leads_migration()
