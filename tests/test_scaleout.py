"""The scale-out profile (`scripts/scaleout.sh`: CeleryExecutor, Redis as broker, PostgreSQL as
metadata database and result backend, two Celery workers): `leads_migration` in four partitions
through it writes exactly what a one-partition run in this process writes, and both workers
take tasks. Runs with `pytest -m scaleout` (`.ci/run` does when both services answer)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from test_refresh import canonical

from leadnorm.contract import MARKERS, NESTED_LEAD
from leadnorm.devtools.seed import seed_leads
from leadnorm.devtools.server import free_port
from leadnorm.mongo import connect
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder

pytestmark = pytest.mark.scaleout
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "scripts" / "scaleout.sh")
PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/15"  # a database of its own, emptied first


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def profile(tmp_path, mongo_uri, db):
    if not (answers(5432) and answers(6379)):
        pytest.skip("PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 are needed")
    import psycopg2
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    name = f"leadnorm_scaleout_{uuid.uuid4().hex[:8]}"
    host_port = mongo_uri.split("://", 1)[1].split("/", 1)[0]
    env = {
        **os.environ,
        "SCALEOUT_HOME": str(tmp_path / "airflow"),
        "SCALEOUT_PORT": str(free_port()),
        "SCALEOUT_DB": name,
        "SCALEOUT_REDIS": REDIS,
        "AIRFLOW_CONN_MONGO_DEFAULT": f"mongo://{host_port}/{db.name}",
        "LEADNORM_STAGING_DIR": str(tmp_path / "staging"),
        "LEADNORM_BACKUP_DIR": str(tmp_path / "backups"),
        "LEADNORM_REPORTS_DIR": str(tmp_path / "reports"),
    }
    started = subprocess.run([SCRIPT, "start"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield env
    finally:
        subprocess.run([SCRIPT, "stop"], env=env, timeout=120)
        conn = psycopg2.connect(PG + "/postgres")
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def airflow(env: dict, *args: str) -> str:
    done = subprocess.run([SCRIPT, "airflow", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_four_partitions_on_two_celery_workers_equal_the_embedded_run(profile, db, mongo_uri, tmp_path):
    seed_leads(db, 400, seed=21)
    twin = connect(mongo_uri, db.name + "_twin")
    try:
        twin.leads.insert_many([{k: v for k, v in d.items() if k not in MARKERS} for d in db.leads.find(NESTED_LEAD)])
        _, report = migrate(twin, backup_dir=tmp_path / "twin-backups", run=RunFolder(tmp_path / "twin"))
        assert report.ok

        airflow(profile, "dags", "unpause", "leads_migration")
        airflow(profile, "dags", "trigger", "leads_migration", "--run-id", "scaleout", "--conf", '{"partitions": 4}')
        deadline, state = time.monotonic() + 600, "queued"
        while time.monotonic() < deadline and state not in ("success", "failed"):
            time.sleep(5)
            runs = json.loads(airflow(profile, "dags", "list-runs", "leads_migration", "-o", "json").splitlines()[-1])
            state = next(run["state"] for run in runs if run["run_id"] == "scaleout")
        assert state == "success", state

        assert canonical(db) == canonical(twin)
        home = Path(profile["SCALEOUT_HOME"])
        for worker in ("worker-1", "worker-2"):
            assert "succeeded" in (home / f"{worker}.log").read_text(), f"{worker} ran no task"
    finally:
        twin.client.drop_database(twin.name)
