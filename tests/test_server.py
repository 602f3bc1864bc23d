"""The embedded server: start, status, stop through the command line, and the fixture's server."""

import subprocess
import sys


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "leadnorm", *args], capture_output=True, text=True, env=env)


def test_fixture_server_answers_and_keeps_data(db):
    db.probe.insert_one({"_id": 1, "name": "Zoë"})
    assert db.probe.find_one({"_id": 1})["name"] == "Zoë"


def test_mongo_start_status_stop(tmp_path):
    import os

    env = {**os.environ, "LEADNORM_STATE_DIR": str(tmp_path / "state")}
    env.pop("MONGO_URI", None)
    started = run_cli("mongo", "start", env=env)
    assert started.returncode == 0, started.stderr
    uri = started.stdout.strip()
    assert uri.startswith("mongodb://127.0.0.1:")
    try:
        assert run_cli("mongo", "start", env=env).stdout.strip() == uri  # second start: same server
        status = run_cli("mongo", "status", env=env)
        assert status.returncode == 0 and uri in status.stdout
    finally:
        stopped = run_cli("mongo", "stop", env=env)
    assert stopped.returncode == 0 and "stopped pid" in stopped.stdout
    assert run_cli("mongo", "status", env=env).returncode == 3
    restarted = run_cli("mongo", "start", env=env)  # the same address again: Airflow's Asset names keep
    try:
        assert restarted.stdout.strip() == uri, restarted.stderr
    finally:
        run_cli("mongo", "stop", env=env)
