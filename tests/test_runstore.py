"""Run storage: tables round-trip exactly through Parquet, files are owner-only, no pickle
anywhere, a tampered table is refused, and left-over run folders can be listed and pruned."""

from __future__ import annotations

import json
import math
import stat
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from bson import Decimal128, ObjectId
from bson.datetime_ms import DatetimeMS
from bson.int64 import Int64

from leadnorm.contract import NORMALIZED_LEAD
from leadnorm.devtools.seed import seed_leads
from leadnorm.errors import StagingError
from leadnorm.steps import layout
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RUN_FILE, RunFolder, list_runs, parse_age, prune
from leadnorm.transform import columns

WHEN = datetime(2025, 3, 4, 5, 6, 7, 8000, tzinfo=UTC)


KINDS = {"_id": "oid", "when": "time", "nested": "bson", "score": "float", "count": "int", "legacy": "key"}


def messy_table() -> pa.Table:
    rows = [
        {"_id": ObjectId(), "when": WHEN, "nested": {"a": [1, {"b": float("nan")}], "$k": {"x.y": None}}},
        {"_id": ObjectId(), "when": None, "nested": [], "score": float("nan"), "count": 2, "legacy": 42},
        {"_id": ObjectId(), "when": None, "nested": DatetimeMS(2**62), "score": float("inf"), "legacy": Int64(42)},
    ]
    defaults = {"score": 1.5, "count": 1, "legacy": "42"}
    rows += [{"_id": ObjectId(), "when": None, "nested": None, "legacy": {"embedded": Decimal128("1.10")}}]
    return columns.table([{**defaults, **row} for row in rows], KINDS)


def same(a, b) -> bool:
    """Equality that counts NaN equal to NaN, element by element, types included."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_tables_round_trip_exactly(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    table = messy_table()
    run.write_table("messy", table, table.schema)
    back = RunFolder(run.root).read_table("messy")  # as the next task reads it: from the file
    assert back.schema == table.schema
    for row, again in zip(columns.rows_of(table, KINDS), columns.rows_of(back, KINDS)):
        for column in KINDS:
            assert same(row[column], again[column]), (column, row[column], again[column])


def test_an_empty_table_keeps_its_columns(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    empty = columns.schema({"_id": "oid", "name": "text"}).empty_table()
    run.write_table("empty", empty, empty.schema)
    back = RunFolder(run.root).read_table("empty")
    assert back.schema == empty.schema and back.num_rows == 0


def test_files_and_folders_are_owner_only(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    run.write_table("messy", messy_table(), messy_table().schema)
    run.write_result("step", {"ok": True})
    run.clear_batches(0)
    run.write_batch(0, 0, b"")
    assert stat.S_IMODE(run.root.stat().st_mode) == 0o700
    for path in run.root.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_tampered_table_is_refused_not_run(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    run.write_table("leads", messy_table(), messy_table().schema)
    planted = tmp_path / "planted"
    pickle_payload = b"cos\nsystem\n(S'touch " + str(planted).encode() + b"'\ntR."
    run.table_path("leads").write_bytes(pickle_payload)
    with pytest.raises(StagingError, match="not a staged table"):
        RunFolder(run.root).read_table("leads")
    assert not planted.exists()


def test_a_missing_table_is_one_clear_error(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    with pytest.raises(StagingError, match="not staged"):
        run.read_table("leads")


def test_a_migration_stages_parquet_and_bson_only_and_private(db, tmp_path):
    seed_leads(db, 150, seed=4)
    run = RunFolder(tmp_path / "run")
    migrate(db, backup_dir=tmp_path / "backups", skip_validation=True, run=run)
    staged = [p for p in run.root.rglob("*") if p.is_file()]
    assert staged and {p.suffix for p in staged} <= {".parquet", ".bson", ".json"}
    assert all(p.read_bytes()[:4] == b"PAR1" for p in staged if p.suffix == ".parquet")
    assert all(p.read_bytes()[:1] != b"\x80" for p in staged), "a pickle stream was staged"
    backup = next((tmp_path / "backups").iterdir())
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    for path in backup.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_list_and_prune_left_over_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LEADNORM_STAGING_DIR", str(tmp_path / "staging"))
    old = RunFolder.new("old-run")
    info = json.loads((old.root / RUN_FILE).read_text())
    info["created_at"] = (datetime.now(UTC) - timedelta(days=9)).isoformat()
    (old.root / RUN_FILE).write_text(json.dumps(info))
    old.write_result("extract", {"documents": 1})
    fresh = RunFolder.new("dag/manual__2026", command="leads_migration")

    runs = list_runs()
    assert [r.path for r in runs] == [old.root, fresh.root]
    assert runs[0].steps == ("extract",) and runs[1].command == "leads_migration"
    assert [r.path for r in prune(parse_age("7d"))] == [old.root]
    assert not old.root.exists() and fresh.root.exists()


@pytest.mark.parametrize("text", ["7", "d", "-1d", "7w", ""])
def test_bad_ages_are_refused(text):
    with pytest.raises(ValueError):
        parse_age(text)


def test_a_run_staged_in_object_storage(db, tmp_path, monkeypatch):
    """Staging at a URL goes through Airflow's ObjectStoragePath (memory:// here; s3:// or gs://
    with workers on several machines): the run reads back what it staged, with no local file."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())  # what a provider does for s3:// or gs://
    monkeypatch.setenv("LEADNORM_STAGING_DIR", f"memory://staging-{tmp_path.name}")
    seed_leads(db, 150, seed=4)
    run = RunFolder.new("dag/manual__1")
    assert isinstance(run.root, ObjectStoragePath)
    _, report = migrate(db, backup_dir=tmp_path / "backups", skip_validation=True, run=run)
    assert report.ok

    handed_over = RunFolder.at(str(run.root))  # as the next task gets it through XCom: nothing cached
    assert handed_over.root == run.root and handed_over.batch_paths()
    assert handed_over.table_rows(layout.frame("leads")) == db.leads.count_documents(NORMALIZED_LEAD)
    assert handed_over.read_result("mark")["marked"] > 0
    assert [r.path for r in list_runs()] == [run.root]

    assert [r.path for r in prune(timedelta(0))] == [run.root]
    assert not run.root.exists() and list_runs() == []
