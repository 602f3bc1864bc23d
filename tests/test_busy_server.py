"""A busy server is not a dead one; a full disk is named. Against a server of this test's own:
frozen with SIGSTOP for 15 s in the middle of a migration (longer than `--server-timeout`, which
bounds only finding the server), the run waits, completes and verifies. A backup or run folder
that cannot be written fails in one line naming the folder, and leaves nothing half written."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leadnorm.devtools.seed import seed_leads
from leadnorm.devtools.server import spawn, terminate
from leadnorm.mongo import connect

FREEZE_S = 15


@pytest.fixture
def own_server(tmp_path):
    server = spawn(tmp_path / "mongo" / "data")
    yield server
    os.kill(server.pid, signal.SIGCONT)  # never leave it stopped, whatever failed
    terminate(server.pid)


def leadnorm(*args: str, env: dict, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "leadnorm", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def test_a_migration_outlives_a_server_frozen_for_15_seconds(own_server, tmp_path):
    db = connect(own_server.uri, "busy")
    seed_leads(db, 3000, seed=8)
    staging = tmp_path / "staging"
    env = {"LEADNORM_STAGING_DIR": str(staging), "LEADNORM_REPORTS_DIR": str(tmp_path / "reports")}
    args = ("migrate", "--uri", own_server.uri, "--db", "busy", "--server-timeout", "2", "--skip-validation")
    run = leadnorm(*args, "--backup-dir", str(tmp_path / "b"), env=env)
    deadline = time.monotonic() + 300
    while not list(staging.glob("*/results/normalize.json")):  # the loads come next: freeze the server now
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)
    os.kill(own_server.pid, signal.SIGSTOP)
    time.sleep(FREEZE_S)
    os.kill(own_server.pid, signal.SIGCONT)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert "verify: OK" in out
    assert db.leads.count_documents({"_migrated": True}) > 0


def file_size_limit(limit: int):
    """The child may write no file larger than `limit` bytes (Python ignores SIGXFSZ: the write fails)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("where", ["backup", "staging"])
def test_a_folder_that_cannot_be_written_is_named_and_left_clean(db, mongo_uri, tmp_path, where):
    seed_leads(db, 300, seed=8)
    backups, staging = tmp_path / "backups", tmp_path / "staging"
    env = {"LEADNORM_STAGING_DIR": str(staging), "LEADNORM_REPORTS_DIR": str(tmp_path / "reports")}
    args = ["migrate", "--uri", mongo_uri, "--db", db.name, "--backup-dir", str(backups), "--skip-validation"]
    if where == "backup":  # a file where the backup folder goes (root writes anywhere a mode forbids)
        backups.write_text("not a folder")
        run, why = leadnorm(*args, env=env), "Not a directory"
    else:
        args.append("--dry-run")  # no backup: the run folder is the first thing written
        run, why = leadnorm(*args, env=env, preexec_fn=file_size_limit(20_000)), "File too large"
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("leadnorm: error:") and why in line, err
    folder = backups if where == "backup" else staging
    assert str(folder) in line, line
    assert not list(Path(tmp_path).rglob("*.partial")) and not list(Path(tmp_path).rglob(".*.tmp"))
    assert db.leads.count_documents({"_migrated": True}) == 0
