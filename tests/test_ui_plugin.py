"""The Leads plugin on a running Airflow API server (scratch AIRFLOW_HOME, a free port, the
simple auth manager with an editor and a read-only user), against the real MongoDB server:
no lead data without a sign-in, the joined lead with one, personal fields masked for the
read-only user, the Data Docs of a run, and nothing served from outside its folders."""

from __future__ import annotations

import secrets
import stat
import subprocess
import uuid

import httpx
import pytest
from airflow_harness import AIRFLOW, api_server, scratch_env, scratch_home, token

from leadnorm.contract import NORMALIZED_LEAD
from leadnorm.devtools.seed import seed_leads
from leadnorm.mongo import connect
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder

pytestmark = pytest.mark.airflow
RUN_ID = "manual__2026-11-27T10:00:00+00:00"


@pytest.fixture(scope="module")
def leads_db(mongo_uri, tmp_path_factory):
    """60 leads migrated with the gate on, as if by the DAG run RUN_ID (its Data Docs too)."""
    folder = tmp_path_factory.mktemp("ui")
    database = connect(mongo_uri, f"test_ui_{uuid.uuid4().hex[:8]}")
    seed_leads(database, 60, seed=21)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEADNORM_REPORTS_DIR", str(folder / "reports"))
        migrate(database, backup_dir=folder / "b", run=RunFolder(folder / RUN_ID.replace(":", "_").replace("+", "_")))
    yield database, folder / "reports"
    database.client.drop_database(database.name)


@pytest.fixture(scope="module")
def airflow(leads_db, mongo_uri, tmp_path_factory):
    """`airflow api-server` with the plugin, and a token for each user."""
    database, reports = leads_db
    passwords = {"editor": secrets.token_urlsafe(12), "reader": secrets.token_urlsafe(12)}
    home = scratch_home(tmp_path_factory.mktemp("airflow-home"), passwords)
    env = scratch_env(
        home,
        mongo_uri,
        database.name,
        "editor:user,reader:viewer",
        LEADNORM_REPORTS_DIR=str(reports),
        LEADNORM_INBOX_DIR=str(home / "inbox"),
    )
    # what the DAG processor does: the API can then trigger leads_csv_ingest
    subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    with api_server(env) as base:
        tokens = {user: token(base, user, password) for user, password in passwords.items()}
        yield base, tokens, database, home


def get(airflow, path: str, user: str | None = None, **params) -> httpx.Response:
    base, tokens = airflow[:2]
    headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
    return httpx.get(f"{base}/leadnorm{path}", headers=headers, params=params, timeout=60)


def a_full_lead(database) -> dict:
    """A lead with a company, a persona, an ICP score and signals (the seed makes many)."""
    signalled = {signal["lead_id"] for signal in database.detected_signals.find({}, {"lead_id": 1})}
    return next(
        lead
        for lead in database.leads.find({**NORMALIZED_LEAD, "status": "icp_scored", "email": {"$nin": ["", None]}})
        if lead["_id"] in signalled and lead.get("persona_id") and lead.get("company_id")
    )


PLUGIN_PATHS = ["/api/leads", "/api/leads/{id}", "/leads", "/leads/{id}", "/docs/index.html", "/static/leads.css"]


@pytest.mark.parametrize("path", PLUGIN_PATHS + [f"/runs/leads_migration/{RUN_ID}/docs"])
def test_no_sign_in_no_data(airflow, path):
    lead = a_full_lead(airflow[2])
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Cookie": "_token=forged"}):
        answer = httpx.get(f"{airflow[0]}/leadnorm{path.format(id=lead['_id'])}", headers=headers, timeout=30)
        assert answer.status_code in (401, 403), (path, headers, answer.status_code)
        assert lead["email"] not in answer.text and lead["name"] not in answer.text


def test_the_joined_lead_for_an_editor(airflow):
    database = airflow[2]
    lead = a_full_lead(database)
    answer = get(airflow, f"/api/leads/{lead['_id']}", "editor")
    assert answer.status_code == 200, answer.text
    joined = answer.json()
    assert joined["_id"] == str(lead["_id"]) and joined["email"] == lead["email"]
    assert joined["company"]["_id"] == str(lead["company_id"])
    assert joined["persona"]["_id"] == str(lead["persona_id"])
    assert len(joined["detected_signals"]) == database.detected_signals.count_documents({"lead_id": lead["_id"]})
    score = database.icp_scores.find_one({"lead_id": lead["_id"]})
    assert joined["icp"]["fit_tier"] == score["fit_tier"]
    assert len(joined["icp"]["factor_breakdowns"]) == database.icp_factor_breakdowns.count_documents(
        {"icp_score_id": score["_id"]}
    )
    assert get(airflow, "/api/leads/0123456789abcdef01234567", "editor").status_code == 404
    assert get(airflow, "/api/leads/not-an-id", "editor").status_code == 404


def test_filters_and_paging(airflow):
    database = airflow[2]
    scored = get(airflow, "/api/leads", "editor", status="icp_scored", limit=200).json()
    assert {lead["status"] for lead in scored["leads"]} == {"icp_scored"}
    assert len(scored["leads"]) == database.leads.count_documents({**NORMALIZED_LEAD, "status": "icp_scored"})
    tier_a = get(airflow, "/api/leads", "editor", fit_tier="A", limit=200).json()["leads"]
    expected = {str(score["lead_id"]) for score in database.icp_scores.find({"fit_tier": "A"})}
    assert {lead["_id"] for lead in tier_a} == expected and all(lead["icp"]["fit_tier"] == "A" for lead in tier_a)
    first, second = (get(airflow, "/api/leads", "editor", limit=7, skip=skip).json() for skip in (0, 7))
    assert first["has_more"] and len(first["leads"]) == 7
    assert not {lead["_id"] for lead in first["leads"]} & {lead["_id"] for lead in second["leads"]}
    lead = a_full_lead(database)
    found = get(airflow, "/api/leads", "editor", q=lead["email"].upper()).json()["leads"]
    assert [match["_id"] for match in found] == [str(lead["_id"])]
    assert get(airflow, "/api/leads", "editor", status="bogus").status_code == 400
    assert get(airflow, "/api/leads", "editor", limit=0).status_code == 400


def test_a_read_only_user_sees_personal_fields_masked(airflow):
    lead = a_full_lead(airflow[2])
    joined = get(airflow, f"/api/leads/{lead['_id']}", "reader").json()
    assert joined["_id"] == str(lead["_id"]) and joined["status"] == lead["status"]
    assert joined["email"].startswith("masked:") and joined["name"].startswith("masked:")
    assert joined["persona"]["full_name"].startswith("masked:")
    assert joined["company"]["name"]  # companies are not personal data
    page = get(airflow, "/api/leads", "reader", limit=200).text + get(airflow, f"/leads/{lead['_id']}", "reader").text
    assert lead["email"] not in page and lead["name"] not in page
    # a reader cannot test whether a person is in the database by searching for them
    assert get(airflow, "/api/leads", "reader", q=lead["email"]).json()["leads"] == []


def test_pages_render_the_lead_and_its_factor_chart(airflow):
    lead = a_full_lead(airflow[2])
    listing = get(airflow, "/leads", "editor", limit=200)
    assert listing.status_code == 200 and f'href="leads/{lead["_id"]}"' in listing.text
    page = get(airflow, f"/leads/{lead['_id']}", "editor")
    assert page.status_code == 200
    for part in ('class="factor-chart"', "Detected signals", "Technographics", lead["email"]):
        assert part in page.text
    assert "http://" not in page.text.split("<main>")[0] and "https://" not in page.text.split("<main>")[0]


def test_the_data_docs_of_a_run_and_nothing_outside_them(airflow):
    listing = get(airflow, f"/runs/leads_migration/{RUN_ID}/docs", "reader")
    assert listing.status_code == 200
    links = [part.split('"')[0] for part in listing.text.split('href="../../../docs/')[1:]]
    assert any(link.startswith("validations/leads/") for link in links), links
    assert get(airflow, f"/docs/{links[0]}", "reader").status_code == 200
    assert get(airflow, "/docs/index.html", "reader").status_code == 200
    # encoded: a client (httpx too) resolves a plain `..` before sending it
    for escape in (
        "/docs/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/docs/..%2f..%2f..%2fetc/passwd",
        "/static/%2e%2e/app.py",
    ):
        answer = get(airflow, escape, "editor")
        assert answer.status_code == 404 and "root:" not in answer.text, escape


def test_upload_stores_the_file_and_triggers_the_ingest_dag_as_the_user(airflow):
    base, tokens, _, home = airflow
    inbox = home / "inbox"
    content = b"name,title,company,email\nAda Upload,CTO,Upload Co,ada@upload.example\n"

    def post(headers: dict) -> httpx.Response:
        files = {"file": ("new leads.csv", content, "text/csv")}
        return httpx.post(f"{base}/leadnorm/leads/upload", files=files, headers=headers, timeout=60)

    assert post({}).status_code in (401, 403)
    assert post({"Authorization": f"Bearer {tokens['reader']}"}).status_code == 403
    assert not inbox.exists() or not list(inbox.iterdir())

    answer = post({"Authorization": f"Bearer {tokens['editor']}"})
    assert answer.status_code == 200, answer.text
    (stored,) = inbox.iterdir()
    assert stored.read_bytes() == content and stored.name.endswith("-new_leads.csv")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and stat.S_IMODE(inbox.stat().st_mode) == 0o700
    runs = httpx.get(
        f"{base}/api/v2/dags/leads_csv_ingest/dagRuns",
        headers={"Authorization": f"Bearer {tokens['editor']}"},
        timeout=30,
    ).json()["dag_runs"]
    assert [run["conf"] for run in runs] == [{"path": str(stored)}]
    dag = httpx.get(
        f"{base}/api/v2/dags/leads_csv_ingest", headers={"Authorization": f"Bearer {tokens['editor']}"}, timeout=30
    ).json()
    assert dag["is_paused"] is False  # else the run would wait for ever
    assert runs[0]["dag_run_id"] in answer.text
