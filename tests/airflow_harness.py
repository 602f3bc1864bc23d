"""A scratch Airflow for the tests that run Airflow's own servers: its home, its environment,
an API server on a free port, and the wait until it answers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from leadnorm.devtools.server import free_port

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ROOT = Path(__file__).resolve().parents[1]


def scratch_home(home: Path, passwords: dict[str, str] | None = None) -> Path:
    """An AIRFLOW_HOME with the metadata DB `make setup` migrated (a copy saves a migration) and,
    given, the simple auth manager's passwords."""
    shutil.copy(ROOT / ".airflow" / "airflow.db", home / "airflow.db")
    if passwords:
        (home / "passwords.json").write_text(json.dumps(passwords))
    return home


def scratch_env(home: Path, mongo_uri: str, db_name: str, users: str, **extra: str) -> dict:
    """Airflow on 127.0.0.1 with this checkout's DAGs and plugin, `users` (`name:role,...`) with
    the passwords of `scratch_home`, and mongo_default naming `db_name` on `mongo_uri`'s server."""
    host_port = mongo_uri.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(free_port()),
        "AIRFLOW_CONN_MONGO_DEFAULT": f"mongo://{host_port}/{db_name}",
        **extra,
    }


def wait_until_healthy(base: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    """Until `base` answers its health check; fails with the log's tail if `process` ends first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"{base} did not answer within {seconds:.0f} s"
        time.sleep(1)


@contextmanager
def api_server(env: dict, command: list[str] | None = None, cwd: Path | None = None):
    """`airflow api-server` (`command`: another venv's airflow) on the environment's port; yields its base URL."""
    home, port = Path(env["AIRFLOW_HOME"]), env["AIRFLOW__API__PORT"]
    log_path = home / "api-server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*(command or [AIRFLOW]), "api-server", "--port", port], env=env, stdout=log, stderr=log, cwd=cwd
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(base, server, log_path)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def token(base: str, user: str, password: str) -> str:
    answer = httpx.post(f"{base}/auth/token", json={"username": user, "password": password}, timeout=60)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["access_token"]
