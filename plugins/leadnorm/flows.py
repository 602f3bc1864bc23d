"""The migration's task graph, shared by the `leads_migration` and `leads_refresh` DAGs.

Both run the steps of `leadnorm.steps.runplan.STEPS`, the plan `python -m leadnorm migrate|refresh`
runs in one process: here each step is a task, a step over partitions (extract, split: one per
partition of the source's `_id` range) or over collections (load) a mapped task, between a lock
task and an unlock teardown. Tasks pass references through XCom (the lock's token with the run
folder's path, partition numbers), never data; library imports stay inside the tasks, so parsing a
DAG file stays cheap. The lock spans the whole run: the first task takes it (or, for a scheduled
refresh, skips the slot when a manual run holds it) and names the run folder, every task renews
it, the last releases it whatever happened. The verify task emits one Asset event per collection.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, get_current_context, task
from airflow.sdk.definitions.asset import Asset

from leadnorm.contract import COLLECTION_NAMES
from leadnorm.steps.runplan import STEPS, Step

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

    @task(retries=2, multiple_outputs=False)
    def lock(dag_run=None, params=None) -> dict | None:
        """Take the database's lock for the whole run. A refresh first looks whether anything
        changed: with nothing changed, or a manual run holding the lock, it skips the run."""
        from airflow.sdk.exceptions import AirflowSkipException

        from leadnorm.airflow_support import mongo_database, run_folder
        from leadnorm.errors import LockHeld
        from leadnorm.mongo import require_source
        from leadnorm.steps.lock import acquire

        db = mongo_database()
        require_source(db)
        try:
            held = acquire(db, f"{dag_run.dag_id}/{dag_run.run_id}", LOCK_LEASE_S, outlives_process=True)
        except LockHeld as exc:
            if kind == "refresh":
                raise AirflowSkipException(skipped(dag_run, f"skipped: {exc}")) from None
            raise
        if kind == "refresh":
            from leadnorm.steps.changes import detect_changes, nothing_changed
            from leadnorm.steps.lock import release

            changes = detect_changes(db)
            if nothing_changed(db, changes, dry_run=params["dry_run"]):
                release(db, held)
                raise AirflowSkipException(skipped(dag_run, f"{changes.render()}: nothing to write"))
        return {**held.to_dict(), "run_root": str(run_folder(dag_run.dag_id, dag_run.run_id).root)}

    def skipped(dag_run, why: str) -> str:
        """Why a run writes nothing, kept as its summary: the run's Outcome tab shows it."""
        from leadnorm.steps.summary import save_summary

        save_summary(f"{kind} skipped: {why}", f"{dag_run.dag_id}/{dag_run.run_id}")
        return why

    def resources(held: dict, params):
        """A task's resources: the database with the run's lease renewed (a task that lost the lock
        stops here), the run folder the lock task made, the run's params."""
        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.lock import renew
        from leadnorm.steps.runplan import Resources, Settings
        from leadnorm.steps.runstore import RunFolder

        db = mongo_database()
        renew(db, held, LOCK_LEASE_S)
        return Resources(db, RunFolder.at(held["run_root"]), Settings.from_params(params, refresh=kind == "refresh"))

    def step_task(step: Step):
        """The step as a task; mapped, it returns its item; plan returns the partitions."""

        def run_step(held: dict, item=None, params=None, dag_run=None):
            res = resources(held, params)
            if step.over is not None:
                get_current_context()["item"] = item  # for the map index's name
            result = step.run(res, item)
            if step.name == "validate":
                import logging

                from leadnorm.airflow_support import run_page
                from leadnorm.steps.pipeline import wait_for_data_docs

                wait_for_data_docs()  # the task ends once its Data Docs are written
                logging.getLogger("leadnorm").info(
                    "the gate's result in the UI: %s", run_page(dag_run.dag_id, dag_run.run_id)
                )
            if step.over is not None:
                return item
            return result if step.gives_partitions else None

        return task(
            run_step,
            task_id=step.name,
            retries=step.retries,
            doc_md=step.doc,
            map_index_template={"partitions": "partition {{ item }}", "collections": "{{ item }}"}.get(step.over),
        )

    def verify_task(step: Step):
        @task(task_id=step.name, retries=step.retries, doc_md=step.doc, outlets=list(assets.values()))
        def verify(held: dict, dag_run=None, params=None, outlet_events=None) -> None:
            """Fails the run unless every nested lead is accounted for and every reference resolves;
            then emits one event per collection with its row count and what the run wrote."""
            import logging

            from leadnorm.assets import asset_event_extras, emit_asset_events
            from leadnorm.errors import LeadnormError
            from leadnorm.schema import COLLECTIONS
            from leadnorm.steps import layout
            from leadnorm.steps.summary import save_summary, summary

            res = resources(held, params)
            report = step.run(res)
            text = summary(res.run, dry_run=res.settings.dry_run)
            saved = save_summary(text, f"{dag_run.dag_id}/{dag_run.run_id}")
            logging.getLogger("leadnorm").info("\n%s\nsummary: %s", text, saved)
            if report is not None and not report.ok:
                raise LeadnormError("verification failed: " + "; ".join(report.problems()))
            pruned = res.run.read_result(layout.Results.PRUNE) or {}
            written = {
                name: {**(res.run.read_result(layout.Results.loaded(name)) or {}), "deleted": pruned.get(name, 0)}
                for name in COLLECTIONS
            }
            extras = asset_event_extras(res.db, written)
            emit_asset_events(
                outlet_events, assets, {name: {**e, "dry_run": res.settings.dry_run} for name, e in extras.items()}
            )

        return verify

    @task(retries=2)
    def remove_run_folder(held: dict) -> None:
        """Only after a successful run (a failed one keeps its folder for the retry); backups of
        this database are pruned to the last 10 then, the one before its first migration kept."""

        from leadnorm.config import backups_dir
        from leadnorm.steps.housekeeping import prune_backups
        from leadnorm.steps.runstore import RunFolder

        RunFolder.at(held["run_root"]).remove()
        prune_backups(backups_dir(), held["database"])

    @task(retries=2)
    def unlock(held: dict) -> None:
        """A teardown: runs whatever happened to the run once the lock was taken, so a failed run
        does not block the next one until its lease runs out, and leaves the run's state alone."""
        from leadnorm.airflow_support import mongo_database
        from leadnorm.steps.lock import release

        release(mongo_database(), held)

    held = lock()
    previous, partitions = held, None
    for step in STEPS:
        make = verify_task(step) if step.name == "verify" else step_task(step)
        if step.over == "partitions":
            current = make.partial(held=held).expand(item=partitions)
            partitions = current  # the next step over partitions maps over what this one did
        elif step.over == "collections":
            current = make.partial(held=held).expand(item=list(COLLECTION_NAMES))
        else:
            current = make(held)
        if step.gives_partitions:
            partitions = current
        previous >> current
        previous = current
    done = remove_run_folder(held)
    previous >> done
    done >> unlock(held).as_teardown(setups=held)
