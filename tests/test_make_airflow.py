"""`make airflow` as a user runs it, on a port other than 8080: the UI and the tasks' execution
API follow the port (a DAG run succeeds), mongo_default comes from config/airflow_connections.json
and shows under Admin -> Connections, and `make airflow-stop` ends every process it started."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest
from airflow_harness import ROOT, scratch_home, wait_until_healthy

from leadnorm.contract import COLLECTION_NAMES
from leadnorm.devtools.server import free_port

pytestmark = pytest.mark.airflow


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_make_airflow_on_another_port_runs_a_dag_and_stops_everything(tmp_path):
    home = tmp_path / "airflow-home"
    home.mkdir()
    scratch_home(home)
    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__API__PORT": str(port)}
    env["LEADNORM_STATE_DIR"] = str(tmp_path / "state")  # its own embedded MongoDB, stopped below
    env.pop("AIRFLOW_CONN_MONGO_DEFAULT", None)
    log = (tmp_path / "make-airflow.log").open("wb")
    make = subprocess.Popen(["make", "-s", "airflow"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=base, timeout=60)  # a busy machine answers slowly, not never
    pgid = None
    try:
        wait_until_healthy(base, make, tmp_path / "make-airflow.log", seconds=240)
        pgid = int((home / "standalone.pgid").read_text())
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = api.post("/auth/token", json={"username": "admin", "password": password}).json()
        api.headers["Authorization"] = f"Bearer {token['access_token']}"

        connection = api.get("/api/v2/connections/mongo_default").json()
        assert connection["conn_type"] == "mongo" and connection["schema"] == "jazon_ai_sdr"
        assert not connection.get("password")

        csv = tmp_path / "one.csv"
        csv.write_text("name,title,company,email\nPat Port,CTO,Port Co,pat@port.example\n")
        for _ in range(60):  # the DAG processor registers the DAG files first
            if api.patch("/api/v2/dags/leads_csv_ingest", json={"is_paused": False}).is_success:
                break
            time.sleep(2)
        run = api.post(
            "/api/v2/dags/leads_csv_ingest/dagRuns", json={"logical_date": None, "conf": {"path": str(csv)}}
        ).json()
        for _ in range(90):
            state = api.get(f"/api/v2/dags/leads_csv_ingest/dagRuns/{run['dag_run_id']}").json()["state"]
            if state in ("success", "failed"):
                break
            time.sleep(2)
        assert state == "success", (tmp_path / "make-airflow.log").read_text()[-3000:]

        # The Assets the DAGs produce or are scheduled on are named with the embedded server's real
        # address, as mongo_default has it (the copied metadata DB may hold orphans of other tests).
        assets = api.get("/api/v2/assets", params={"limit": 1000}).json()["assets"]
        uris = {a["uri"] for a in assets if a["producing_tasks"] or a["scheduled_dags"] or a["consuming_tasks"]}
        address = f"mongodb://{connection['host']}:{connection['port']}/jazon_ai_sdr"
        assert {f"{address}/{name}" for name in COLLECTION_NAMES} <= uris, uris
        assert all(uri.startswith(address) for uri in uris), uris

        refresh_follows_a_change_within_90_seconds(api, env, tmp_path)
    finally:
        stopped = subprocess.run(["make", "-s", "airflow-stop"], cwd=ROOT, env=env, capture_output=True, text=True)
        make.wait(timeout=60)
        log.close()
        api.close()
        subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "leadnorm", "mongo", "stop"], env=env, check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert pgid is not None and not group_alive(pgid), "a process make airflow started is still running"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/api/v2/monitor/health", timeout=2)


def refresh_follows_a_change_within_90_seconds(api: httpx.Client, env: dict, tmp_path) -> None:
    """On a migrated database, with leads_refresh unpaused: a nested lead inserted and another's
    email changed show in the normalized collections within 90 s, by an asset-triggered run."""
    from leadnorm.contract import NESTED_LEAD
    from leadnorm.devtools.seed import generate_leads
    from leadnorm.mongo import connect
    from leadnorm.steps.pipeline import migrate
    from leadnorm.steps.runstore import RunFolder
    from leadnorm.transform.ids import lead_id

    uri = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-m", "leadnorm", "mongo", "start"], env=env, capture_output=True, text=True
    ).stdout.strip()
    db = connect(uri, "jazon_ai_sdr")
    leads = list(generate_leads(41, seed=37))
    db.leads.insert_many(leads[:40])
    migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    assert api.patch("/api/v2/dags/leads_refresh", json={"is_paused": False}).is_success
    time.sleep(15)  # the triggerer starts the watcher of the DAG it now schedules
    for _ in range(60):  # unpaused, the DAG runs its latest hourly slot: let it end first
        before = api.get("/api/v2/dags/leads_refresh/dagRuns").json()["dag_runs"]
        if all(r["state"] in ("success", "failed") for r in before):
            break
        time.sleep(2)
    changed = db.leads.find_one({**NESTED_LEAD, "_migrated": True, "lead_input.email": {"$type": "string"}})
    started = time.monotonic()
    db.leads.insert_one(leads[40])
    db.leads.update_one({"_id": changed["_id"]}, {"$set": {"lead_input.email": "moved@follow.example"}})
    while time.monotonic() - started < 90:
        inserted = db.leads.find_one({"_id": lead_id(leads[40]["_id"])})
        updated = db.leads.find_one({"_id": lead_id(changed["_id"])}, {"email": 1})
        if inserted is not None and updated["email"] == "moved@follow.example":
            break
        time.sleep(2)
    else:
        raise AssertionError("no refresh within 90 s: " + (tmp_path / "make-airflow.log").read_text()[-3000:])
    runs = api.get("/api/v2/dags/leads_refresh/dagRuns").json()["dag_runs"]
    after = [r for r in runs if r["dag_run_id"] not in {b["dag_run_id"] for b in before}]
    assert [r["run_type"] for r in after] == ["asset_triggered"], runs
    db.client.close()
