"""One run at a time, as users meet it: a second command against a database in use is refused
at once, with one line naming the holder; the first one is not disturbed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from leadnorm.devtools.seed import seed_leads
from leadnorm.steps.lock import LOCKS_COLLECTION


def leadnorm(*args, env):
    return [sys.executable, "-m", "leadnorm", *args], {**os.environ, **env}


def test_two_migrations_started_together(db, mongo_uri, tmp_path):
    seed_leads(db, 1500, seed=3)
    env = {"LEADNORM_STAGING_DIR": str(tmp_path / "staging"), "LEADNORM_REPORTS_DIR": str(tmp_path / "reports")}
    command, environment = leadnorm(
        "migrate", "--uri", mongo_uri, "--db", db.name, "--backup-dir", str(tmp_path / "b"), env=env
    )
    first = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while db[LOCKS_COLLECTION].count_documents({}) == 0:
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.1)
        started = time.monotonic()
        second = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
        assert time.monotonic() - started < 15
        assert second.returncode == 1
        lines = [line for line in second.stderr.splitlines() if line.startswith("leadnorm:")]
        assert len(lines) == 1 and "is locked by migrate" in lines[0] and "pid" in lines[0], second.stderr
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-2000:]
        assert "verify: OK" in out
        assert db[LOCKS_COLLECTION].count_documents({}) == 0
    finally:
        if first.poll() is None:
            first.kill()
