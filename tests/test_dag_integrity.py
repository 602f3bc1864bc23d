"""Every DAG file imports cleanly and follows the project's rules: tags, doc_md, retries."""

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


def test_every_dag_has_tags_doc_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} has no real doc_md"
        for task in dag.tasks:
            if task.task_id not in ("split", "resolve", "validate"):  # pure steps: a retry cannot help
                assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


@pytest.mark.parametrize("dag_id", ["leads_migration", "leads_refresh"])
def test_migration_and_refresh_shape(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    order = [
        "lock",
        "plan",
        "extract",
        "split",
        "resolve",
        "validate",
        "backup",
        "load",
        "mark",
        "verify",
        "remove_run_folder",
        "unlock",
    ]
    assert set(dag.task_ids) == set(order)
    for upstream, downstream in zip(order, order[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} -> {downstream}"
    assert dag.get_task("unlock").is_teardown
    from leadnorm.steps.runplan import STEPS

    for step in STEPS:  # the plan `migrate` runs, one task per step
        assert dag.get_task(step.name).retries == step.retries, step.name
        assert dag.get_task(step.name).is_mapped == (step.over is not None), step.name
    assert set(dag.params.keys()) == {"dry_run", "batch_size", "partitions"}


def test_refresh_runs_when_nested_leads_change_and_hourly_without_catchup(dagbag):
    from airflow.sdk import AssetOrTimeSchedule

    from leadnorm.triggers import NestedLeadsChanged

    dag = dagbag.dags["leads_refresh"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule) and not dag.catchup
    assert dag.timetable.timetable.expression == "0 * * * *"
    (watched,) = dag.timetable.asset_condition.objects
    assert watched.uri.endswith("/leads?documents=nested")
    (watcher,) = watched.watchers
    assert isinstance(watcher.trigger, NestedLeadsChanged)
    outlets = {asset.uri for asset in dag.get_task("verify").outlets}
    assert watched.uri not in outlets  # the refresh never schedules itself


def test_every_collection_is_an_outlet_of_migration_and_refresh(dagbag):
    from leadnorm.contract import COLLECTION_NAMES

    for dag_id in ("leads_migration", "leads_refresh"):
        outlets = {asset.uri.rsplit("/", 1)[-1] for asset in dagbag.dags[dag_id].get_task("verify").outlets}
        assert outlets == set(COLLECTION_NAMES), dag_id


def test_day_two_dags_are_there(dagbag):
    assert {"leads_rollback", "leads_cleanup", "leads_quality_report"} <= set(dagbag.dag_ids)
