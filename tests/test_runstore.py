"""Run storage: frames round-trip exactly through BSON, files are owner-only, no pickle
anywhere, a tampered frame is refused, and left-over run folders can be listed and pruned."""

from __future__ import annotations

import json
import math
import stat
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from bson import Decimal128, ObjectId
from bson.datetime_ms import DatetimeMS

from leadnorm.devtools.seed import seed_leads
from leadnorm.errors import StagingError
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RUN_FILE, RunFolder, list_runs, parse_age, prune

WHEN = datetime(2025, 3, 4, 5, 6, 7, 8000, tzinfo=UTC)


def messy_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_id": pd.Series([ObjectId(), ObjectId(), ObjectId()], dtype=object),
            "when": pd.Series([WHEN, None, DatetimeMS(2**62)], dtype=object),
            "nested": pd.Series([{"a": [1, {"b": float("nan")}], "$k": {"x.y": None}}, [], None], dtype=object),
            "score": pd.Series([1.5, float("nan"), float("inf")], dtype="float64"),
            "count": pd.Series([1, 2, 3], dtype="int64"),
            "legacy": pd.Series(["42", 42, {"embedded": Decimal128("1.10")}], dtype=object),
        }
    )


def same(a, b) -> bool:
    """Equality that counts NaN equal to NaN, element by element, types included."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_frames_round_trip_exactly(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    frame = messy_frame()
    run.write_frame("messy", frame)
    back = RunFolder(run.root).read_frame("messy")  # as the next task reads it: from the file
    assert list(back.columns) == list(frame.columns)
    assert list(back.dtypes) == list(frame.dtypes)
    for column in frame.columns:
        for a, b in zip(frame[column], back[column]):
            assert same(a, b), (column, a, b)


def test_an_empty_frame_keeps_its_columns(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    run.write_frame("empty", pd.DataFrame(columns=["_id", "name"]))
    back = RunFolder(run.root).read_frame("empty")
    assert list(back.columns) == ["_id", "name"] and back.empty


def test_files_and_folders_are_owner_only(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    run.write_frame("messy", messy_frame())
    run.write_result("step", {"ok": True})
    list(run.write_batches(iter([b""])))
    assert stat.S_IMODE(run.root.stat().st_mode) == 0o700
    for path in run.root.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_tampered_frame_is_refused_not_run(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    run.write_frame("leads", messy_frame())
    planted = tmp_path / "planted"
    pickle_payload = b"cos\nsystem\n(S'touch " + str(planted).encode() + b"'\ntR."
    run.frame_path("leads").write_bytes(pickle_payload)
    with pytest.raises(StagingError, match="not a staged frame"):
        RunFolder(run.root).read_frame("leads")
    assert not planted.exists()


def test_a_missing_frame_is_one_clear_error(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    with pytest.raises(StagingError, match="not staged"):
        run.read_frame("leads")


def test_a_migration_stages_bson_only_and_private(db, tmp_path):
    seed_leads(db, 150, seed=4)
    run = RunFolder(tmp_path / "run")
    migrate(db, backup_dir=tmp_path / "backups", skip_validation=True, run=run)
    staged = [p for p in run.root.rglob("*") if p.is_file()]
    assert staged and not [p for p in staged if p.suffix in (".pkl", ".pickle")]
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


def test_a_frame_written_in_this_process_is_read_back_from_memory(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    frame = messy_frame()
    run.write_frame("messy", frame)
    run.frame_path("messy").write_bytes(b"garbage")  # the file is not read again in this process
    back = run.read_frame("messy")
    assert back.equals(frame) and back is not frame


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
    assert len(handed_over.read_frame("leads")) == db.leads.count_documents({"legacy_lead_id": {"$exists": True}})
    assert handed_over.read_result("mark")["marked"] > 0
    assert [r.path for r in list_runs()] == [run.root]

    assert [r.path for r in prune(timedelta(0))] == [run.root]
    assert not run.root.exists() and list_runs() == []
