"""The migration's task graph, shared by the `leads_migration` and `leads_refresh` DAGs.

Both run the same steps as `python -m leadnorm migrate|refresh`: lock → backup → plan →
extract and split (one mapped task per partition of the source's `_id` range) → resolve
(all partitions at once) → validate → load (one mapped task per collection) → mark →
prune → verify → unlock. Tasks pass references through XCom (the run folder's path, the lock's token),
never data; library imports stay inside the tasks, so parsing a DAG file stays cheap.
The lock spans the whole run: the first task takes it (or, for a scheduled refresh,
skips the slot when a manual run holds it), every task renews it, the last releases it
whatever happened. The verify task emits one Asset event per collection.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, get_current_context, task
from airflow.sdk.definitions.asset import Asset

LOCK_LEASE_S = 15 * 60.0  # covers the gaps between tasks; renewed by each task
DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(seconds=20)}


def run_params() -> dict[str, Param]:
    """The params a migration or refresh run takes (fresh objects for each DAG)."""
    return {
        "dry_run": Param(False, type="boolean", description="write nothing; report what would be written"),
        "batch_size": Param(1000, type="integer", minimum=1, description="source documents per batch"),
        "partitions": Param(
            0,
            type="integer",
            minimum=0,
            maximum=64,
            description="parallel extract and split tasks over _id ranges; 0: one per 25,000 nested leads, at most 8",
        ),
    }


def migration_flow(kind: str, assets: dict[str, Asset]) -> None:
    """Wire the tasks of a `kind` ("migrate" or "refresh") run into the DAG being defined."""

    @task(retries=2)
    def lock(dag_run=None) -> dict | None:
        """Take the database's lock for the whole run. A refresh first looks whether anything
        changed: with nothing changed, or a manual run holding the lock, it skips the run."""
        from airflow.sdk.exceptions import AirflowSkipException

        from leadnorm.airflow_support import mongo_database
        from leadnorm.errors import LockHeld
        from leadnorm.mongo import require_source
        from leadnorm.steps.lock import acquire

        db = mongo_database()
        require_source(db)
        try:
            held = acquire(db, f"{dag_run.dag_id}/{dag_run.run_id}", LOCK_LEASE_S, outlives_process=True)
        except LockHeld as exc:
            if kind == "refresh":
                raise AirflowSkipException(f"skipped: {exc}") from None
            raise
        if kind == "refresh":
            from leadnorm.steps.changes import detect_changes
            from leadnorm.steps.lock import release

            changes = detect_changes(db)
            if not changes.any:
                release(db, held)
                raise AirflowSkipException(f"{changes.render()}: nothing to write")
        return held.to_dict()

    def working(held: dict):
        """The database, with the run's lease renewed: a task that lost the lock stops here."""
        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.lock import renew

        db = mongo_database()
        renew(db, held, LOCK_LEASE_S)
        return db

    @task(retries=2)
    def backup(held: dict, dag_run=None, params=None) -> str:
        """Dump the source before any write; returns the run folder every later task works in."""
        from leadnorm.airflow_support import run_folder
        from leadnorm.steps.pipeline import backup_step

        db = working(held)
        run = run_folder(dag_run.dag_id, dag_run.run_id)
        if not params["dry_run"]:
            backup_step(db, run)
        return str(run.root)

    @task(retries=2)
    def plan(run_root: str, held: dict, params=None) -> list[int]:
        """How the run reads the source: its partitions (a refresh: of its scope alone)."""

        from leadnorm.steps.changes import detect_changes
        from leadnorm.steps.pipeline import plan_step
        from leadnorm.steps.runstore import RunFolder

        db = working(held)
        changes = detect_changes(db) if kind == "refresh" else None
        return plan_step(db, RunFolder.at(run_root), params["partitions"], changes=changes)

    @task(retries=2, map_index_template="partition {{ partition }}")
    def extract(run_root: str, held: dict, partition: int, params=None) -> int:

        from leadnorm.steps.pipeline import extract_step
        from leadnorm.steps.runstore import RunFolder

        get_current_context()["partition"] = partition
        extract_step(working(held), RunFolder.at(run_root), params["batch_size"], partition)
        return partition

    @task(retries=0, map_index_template="partition {{ partition }}")
    def split(run_root: str, partition: int) -> int:
        """Pure: one partition's nested leads into mention frames."""

        from leadnorm.steps.pipeline import split_step
        from leadnorm.steps.runstore import RunFolder

        get_current_context()["partition"] = partition
        split_step(RunFolder.at(run_root), partition)
        return partition

    @task(retries=0)
    def resolve(run_root: str, held: dict) -> str:
        """Every partition's mentions at once (dedupe exact across partitions), keeping the
        company and persona ids already stored."""

        from leadnorm.steps.pipeline import resolve_step
        from leadnorm.steps.runstore import RunFolder

        resolve_step(RunFolder.at(run_root), working(held))
        return run_root

    @task(retries=0)
    def validate(run_root: str, params=None) -> list[str]:
        """The gate; returns the collections to load, which the load task maps over."""

        from leadnorm.schema import COLLECTIONS
        from leadnorm.steps.pipeline import validate_step
        from leadnorm.steps.runstore import RunFolder

        validate_step(RunFolder.at(run_root), dry_run=params["dry_run"])
        return list(COLLECTIONS)

    @task(map_index_template="{{ collection }}", retries=3, multiple_outputs=False)
    def load(run_root: str, held: dict, collection: str, params=None) -> dict:

        from leadnorm.steps.pipeline import load_step
        from leadnorm.steps.runstore import RunFolder

        get_current_context()["collection"] = collection
        return load_step(
            working(held),
            RunFolder.at(run_root),
            collection,
            dry_run=params["dry_run"],
            batch_size=params["batch_size"],
        )

    @task(retries=3)
    def mark(run_root: str, held: dict, params=None) -> str:

        from leadnorm.steps.pipeline import keys_step, mark_step, prune_step
        from leadnorm.steps.runstore import RunFolder

        db, run = working(held), RunFolder.at(run_root)
        mark_step(db, run, dry_run=params["dry_run"], batch_size=params["batch_size"])
        prune_step(db, run, dry_run=params["dry_run"])
        keys_step(db, run, dry_run=params["dry_run"])
        return run_root

    @task(outlets=list(assets.values()))
    def verify(run_root: str, held: dict, dag_run=None, params=None, outlet_events=None) -> str:
        """Fails the run unless every nested lead is accounted for and every reference resolves;
        then emits one event per collection with its row count and what the run wrote."""
        import logging

        from leadnorm.assets import asset_event_extras, emit_asset_events
        from leadnorm.errors import LeadnormError
        from leadnorm.schema import COLLECTIONS
        from leadnorm.steps.pipeline import verify_step
        from leadnorm.steps.runstore import RunFolder
        from leadnorm.steps.summary import save_summary, summary

        db, run = working(held), RunFolder.at(run_root)
        report = None if params["dry_run"] else verify_step(db, run)
        text = summary(run, dry_run=params["dry_run"])
        saved = save_summary(text, f"{dag_run.dag_id}/{dag_run.run_id}")
        logging.getLogger("leadnorm").info("\n%s\nsummary: %s", text, saved)
        if report is not None and not report.ok:
            raise LeadnormError("verification failed: " + "; ".join(report.problems()))
        pruned = run.read_result("prune") or {}
        written = {
            name: {**(run.read_result(f"load-{name}") or {}), "deleted": pruned.get(name, 0)} for name in COLLECTIONS
        }
        extras = asset_event_extras(db, written)
        emit_asset_events(
            outlet_events, assets, {name: {**e, "dry_run": params["dry_run"]} for name, e in extras.items()}
        )
        return run_root

    @task(retries=2)
    def remove_run_folder(run_root: str, held: dict) -> None:
        """Only after a successful run (a failed one keeps its folder for the retry); backups of
        this database are pruned to the last 10 then, the one before its first migration kept."""

        from leadnorm.config import backups_dir
        from leadnorm.steps.housekeeping import prune_backups
        from leadnorm.steps.runstore import RunFolder

        RunFolder.at(run_root).remove()
        prune_backups(backups_dir(), held["database"])

    @task(retries=2)
    def unlock(held: dict) -> None:
        """A teardown: runs whatever happened to the run once the lock was taken, so a failed run
        does not block the next one until its lease runs out, and leaves the run's state alone."""
        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.lock import release

        release(mongo_database(), held)

    held = lock()
    staged = backup(held)
    extracted = extract.partial(run_root=staged, held=held).expand(partition=plan(staged, held))
    run_root = resolve(staged, held)
    split.partial(run_root=staged).expand(partition=extracted) >> run_root
    loaded = load.partial(run_root=run_root, held=held).expand(collection=validate(run_root))
    marked = mark(run_root, held)
    loaded >> marked
    done = remove_run_folder(verify(marked, held), held)
    done >> unlock(held).as_teardown(setups=held)
