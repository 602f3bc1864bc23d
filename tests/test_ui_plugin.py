"""The Leads plugin on a running Airflow API server (scratch AIRFLOW_HOME, a free port, the
simple auth manager with an editor and a read-only user), against the real MongoDB server:
no lead data without a sign-in, the joined lead with one, only allowlisted fields in clear
for the read-only user, the Data Docs of a run, nothing served from outside its folders; the
upload triggers Airflow at its configured address only, from Airflow's own origin only, within
its size limit; security headers on every response, and a 4xx, never a 500, for malformed input."""

from __future__ import annotations

import asyncio
import html
import http.client
import json
import secrets
import socket
import stat
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest
from airflow_harness import AIRFLOW, api_server, scratch_env, scratch_home, token
from bson import ObjectId

from leadnorm.contract import NORMALIZED_LEAD
from leadnorm.devtools.seed import seed_leads
from leadnorm.mongo import connect
from leadnorm.schema import with_defaults
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


CSV = b"name,title,company,email\nAda Upload,CTO,Upload Co,ada@upload.example\n"


def upload(airflow, headers: dict, content: bytes = CSV, **options) -> httpx.Response:
    files = {"file": ("new leads.csv", content, "text/csv")}
    return httpx.post(f"{airflow[0]}/leadnorm/leads/upload", files=files, headers=headers, timeout=60, **options)


def bearer(airflow, user: str = "editor") -> dict:
    return {"Authorization": f"Bearer {airflow[1][user]}"}


def inbox_files(airflow) -> set:
    inbox = airflow[3] / "inbox"
    return set(inbox.iterdir()) if inbox.exists() else set()


def ingest_runs(airflow) -> dict:
    """The runs of leads_csv_ingest, by run id."""
    answer = httpx.get(
        f"{airflow[0]}/api/v2/dags/leads_csv_ingest/dagRuns", params={"limit": 100}, headers=bearer(airflow), timeout=30
    )
    return {run["dag_run_id"]: run for run in answer.json()["dag_runs"]}


def test_upload_stores_the_file_and_triggers_the_ingest_dag_as_the_user(airflow):
    base, tokens, _, home = airflow
    inbox = home / "inbox"
    before_files, before_runs = inbox_files(airflow), ingest_runs(airflow)

    assert upload(airflow, {}).status_code in (401, 403)
    assert upload(airflow, bearer(airflow, "reader")).status_code == 403
    assert inbox_files(airflow) == before_files

    answer = upload(airflow, bearer(airflow))
    assert answer.status_code == 200, answer.text
    (stored,) = inbox_files(airflow) - before_files
    assert stored.read_bytes() == CSV and stored.name.endswith("-new_leads.csv")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and stat.S_IMODE(inbox.stat().st_mode) == 0o700
    runs = {run_id: run for run_id, run in ingest_runs(airflow).items() if run_id not in before_runs}
    assert [run["conf"] for run in runs.values()] == [{"path": str(stored)}]
    dag = httpx.get(f"{base}/api/v2/dags/leads_csv_ingest", headers=bearer(airflow), timeout=30).json()
    assert dag["is_paused"] is False  # else the run would wait for ever
    assert next(iter(runs)) in answer.text


# --- what a read-only user sees: the allowlist -------------------------------------------

# Personal values a source may hold in fields the contract does not map, and in mapped ones
# that only editors see; none may reach a read-only user, in any form.
PERSONAL = [
    "Jane Quillfeather",
    "jane.quill@personal-test.example",
    "jane.legacy@personal-test.example",
    "linkedin.com/in/jane-quillfeather",
    "Horatio Pemberton-Oyelaran",
    "Cornelius Whitfield-Ngata",
    "Ophelia Marchetti-Lindqvist",
    "Bartholomew Okonkwo-Reyes",
    "Winifred Ashdown",
    "Ignatius Fairweather",
    "+1 415 555 0199",
    "+44 7700 900123",
    "(020) 7946 0321",
    "+351 912 345 678",
    "+49 30 901820",
    "+1 212 555 0147",
    "jane@例え.テスト",
    "221B Baker Street",
    "1984-02-29",
    "Lisbon",
    "grew up in Porto",
    "blog.personal-test.example/team",
    "owns the budget",
    "two hundred staff",
]
# What a read-only user still sees in clear.
ALLOWED = ["VP Sales", "Personal Test Co", "personal-test.example", "Salesforce", "Hiring SDRs", "Company size"]


@pytest.fixture(scope="module")
def personal_lead(airflow) -> dict:
    """A lead and everything joined to it, written as the migration would, with personal values
    in every place a source may put them: unmapped fields (`extra`), and mapped ones."""
    database = airflow[2]
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    ids = {
        name: ObjectId() for name in ("lead", "company", "persona", "tech", "run", "citation", "signal", "icp", "fb")
    }
    jane, email = PERSONAL[0], PERSONAL[1]
    database.companies.insert_one(
        with_defaults(
            "companies",
            {
                "_id": ids["company"],
                "name": "Personal Test Co",
                "domain": "personal-test.example",
                "industry": "Software",
                "extra": {"ceo_name": "Cornelius Whitfield-Ngata", "headquarters": {"street": "221B Baker Street"}},
            },
        )
    )
    database.personas.insert_one(
        with_defaults(
            "personas",
            {
                "_id": ids["persona"],
                "full_name": jane,
                "email": email,
                "title": "VP Sales",
                "seniority": "VP",
                "department": "Sales",
                "linkedin_url": "linkedin.com/in/jane-quillfeather",
                "location": "Lisbon, PT",
                "bio": "Jane grew up in Porto",
                "extra": {"mobile": "+351 912 345 678"},
            },
        )
    )
    database.leads.insert_one(
        with_defaults(
            "leads",
            {
                "_id": ids["lead"],
                "name": jane,
                "title": "VP Sales",
                "email": email,
                "company_id": ids["company"],
                "persona_id": ids["persona"],
                "status": "researched",
                "legacy_lead_id": "jane.legacy@personal-test.example",
                "created_at": when,
                "updated_at": when,
                "extra": {
                    "contact_person": {"name": "Horatio Pemberton-Oyelaran"},
                    "PHONE": "+1 415 555 0199",
                    "mobile": "+44 7700 900123",
                    "phone_number": "(020) 7946 0321",
                    "email": "jane@例え.テスト",
                    "home_address": "221B Baker Street, London NW1 6XE",
                    "birthday": datetime(1984, 2, 29, tzinfo=UTC),
                    "lead_input": {"phone": "+49 30 901820"},
                },
            },
        )
    )
    database.technographics.insert_one(
        with_defaults(
            "technographics",
            {
                "_id": ids["tech"],
                "company_id": ids["company"],
                "name": "Salesforce",
                "category": "CRM",
                "confidence": "High",
                "extra": {"admin": "Ophelia Marchetti-Lindqvist"},
            },
        )
    )
    database.research_runs.insert_one(
        with_defaults(
            "research_runs",
            {
                "_id": ids["run"],
                "lead_id": ids["lead"],
                "company_id": ids["company"],
                "persona_id": ids["persona"],
                "research_meta": {
                    "run_id": "rr-777",
                    "model": "research-model-7",
                    "completed_at_utc": when,
                    "duration_ms": 1234,
                    "confidence": "High",
                    "analyst": "Bartholomew Okonkwo-Reyes",
                },
                "extra": {"notes": "called at +1 212 555 0147"},
            },
        )
    )
    database.citations.insert_one(
        with_defaults(
            "citations",
            {
                "_id": ids["citation"],
                "research_run_id": ids["run"],
                "source_name": "Company blog",
                "url": "https://blog.personal-test.example/team/jane-quillfeather",
                "accessed_at_utc": when,
                "extra": {"author": "Winifred Ashdown"},
            },
        )
    )
    database.detected_signals.insert_one(
        with_defaults(
            "detected_signals",
            {
                "_id": ids["signal"],
                "lead_id": ids["lead"],
                "research_run_id": ids["run"],
                "type": "hiring",
                "signal": "Hiring SDRs",
                "strength": "High",
                "detected_at": when,
                "source_url": "https://www.linkedin.com/in/jane-quillfeather/recent-activity",
                "extra": {"poster": jane},
            },
        )
    )
    database.icp_scores.insert_one(
        with_defaults(
            "icp_scores",
            {
                "_id": ids["icp"],
                "lead_id": ids["lead"],
                "icp_score": 81,
                "fit_tier": "B",
                "score_breakdown": {"firmographics": 30},
                "scored_at": when,
                "model_version": "icp-v9",
                "rationale": f"{jane} owns the budget",
                "extra": {"reviewer": "Ignatius Fairweather"},
            },
        )
    )
    database.icp_factor_breakdowns.insert_one(
        with_defaults(
            "icp_factor_breakdowns",
            {
                "_id": ids["fb"],
                "icp_score_id": ids["icp"],
                "category": "firmographics",
                "score": 30,
                "max_score": 40,
                "factors": [{"name": "Company size", "points": 12, "evidence": f"{email} says two hundred staff"}],
                "extra": {"reviewer": "Ignatius Fairweather"},
            },
        )
    )
    return ids


def forms_of(value: str) -> set[str]:
    """The ways a value may appear in a response: as it is, HTML-escaped, JSON-escaped."""
    return {value, html.escape(value), json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def assert_no_personal_value(text: str, where: str) -> None:
    found = [value for value in PERSONAL if any(form in text for form in forms_of(value))]
    assert not found, (where, found)


def test_a_read_only_user_sees_only_the_allowlisted_fields(airflow, personal_lead):
    lead_id = str(personal_lead["lead"])
    answers = {
        path: get(airflow, path, "reader", **params)
        for path, params in [
            ("/api/leads", {"limit": 200}),
            ("/api/leads", {"limit": 200, "status": "researched"}),
            (f"/api/leads/{lead_id}", {}),
            ("/leads", {"limit": 200}),
            (f"/leads/{lead_id}", {}),
        ]
    }
    for path, answer in answers.items():
        assert answer.status_code == 200, (path, answer.text)
        assert_no_personal_value(answer.text, path)
    page = answers[f"/leads/{lead_id}"].text
    for value in ALLOWED:
        assert html.escape(value) in page, value
    assert 'class="factor-chart"' in page  # the templates still render, masked values and all

    joined = answers[f"/api/leads/{lead_id}"].json()
    assert joined["title"] == "VP Sales" and joined["status"] == "researched"
    assert joined["company"]["name"] == "Personal Test Co" and joined["persona"]["seniority"] == "VP"
    assert joined["extra"].startswith("masked:") and joined["company"]["extra"].startswith("masked:")
    assert joined["name"] == joined["persona"]["full_name"] != joined["email"]  # equal values, equal masks
    assert joined["research"]["research_meta"]["model"] == "research-model-7"
    assert joined["research"]["research_meta"]["analyst"].startswith("masked:")
    assert joined["research"]["citations"][0]["source_name"] == "Company blog"
    assert joined["research"]["citations"][0]["url"].startswith("masked:")
    assert joined["detected_signals"][0]["source_url"].startswith("masked:")
    assert joined["icp"]["icp_score"] == 81 and joined["icp"]["rationale"].startswith("masked:")
    (factor,) = joined["icp"]["factor_breakdowns"][0]["factors"]
    assert factor["name"] == "Company size" and factor["points"] == 12 and factor["evidence"].startswith("masked:")
    # titles only: a reader cannot test whether a person is in the database
    assert get(airflow, "/api/leads", "reader", q="Quillfeather").json()["leads"] == []
    assert lead_id in get(airflow, "/api/leads", "reader", q="VP Sales", limit=200).text


def test_an_editor_sees_the_personal_lead_whole(airflow, personal_lead):
    answer = get(airflow, f"/api/leads/{personal_lead['lead']}", "editor")
    joined = answer.json()
    assert joined["name"] == PERSONAL[0] and joined["extra"]["PHONE"] == "+1 415 555 0199"
    assert joined["detected_signals"][0]["source_url"].startswith("https://www.linkedin.com/in/")
    assert "Winifred Ashdown" in answer.text


# --- the upload: Airflow's API at its configured address, same origin only, bounded size -----


@contextmanager
def listener():
    """A loopback port that records every connection made to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    connections, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connections.append(connection.recv(65536))
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], connections
    finally:
        stop.set()
        thread.join()
        server.close()


def test_the_trigger_goes_to_the_configured_api_whatever_the_host_header(airflow):
    before = ingest_runs(airflow)
    with listener() as (port, connections):
        forged = {"Host": f"127.0.0.1:{port}", "X-Forwarded-Host": f"127.0.0.1:{port}", "X-Forwarded-Proto": "http"}
        answer = upload(airflow, {**bearer(airflow), **forged})
        time.sleep(0.5)
    assert answer.status_code == 200, answer.text
    assert connections == []  # the user's token went nowhere but Airflow
    assert len(ingest_runs(airflow).keys() - before.keys()) == 1


def test_the_api_base_url_comes_from_airflows_configuration(monkeypatch):
    from leadnorm.airflow_support import api_base_url
    from leadnorm.ui.security import origin_of

    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__HOST", "0.0.0.0")
    monkeypatch.setenv("AIRFLOW__API__PORT", "8793")
    assert api_base_url() == "http://127.0.0.1:8793/"
    monkeypatch.setenv("AIRFLOW__API__HOST", "::1")
    assert api_base_url() == "http://[::1]:8793/"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/airflow/")
    assert api_base_url() == "https://airflow.example.com/airflow/"
    client = httpx.Client(base_url=api_base_url())
    assert (
        str(client.build_request("PATCH", "api/v2/dags/x").url) == "https://airflow.example.com/airflow/api/v2/dags/x"
    )
    assert origin_of(api_base_url()) == "https://airflow.example.com"
    assert origin_of("HTTP://127.0.0.1:80") == "http://127.0.0.1"


def cookie(airflow, user: str = "editor") -> dict:
    return {"Cookie": f"_token={airflow[1][user]}"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "null"},
        {},  # a cookie alone, from no browser that says where it comes from
    ],
    ids=["origin", "sec-fetch-site", "same-site", "null-origin", "cookie-only"],
)
def test_a_cross_site_form_post_is_refused(airflow, headers):
    before_files, before_runs = inbox_files(airflow), ingest_runs(airflow)
    answer = upload(airflow, {**cookie(airflow), **headers})
    assert answer.status_code == 403 and answer.json()["detail"].startswith("refused:"), answer.text
    for method in ("PUT", "DELETE", "PATCH"):  # every method that may change something
        other = httpx.request(method, f"{airflow[0]}/leadnorm/leads/upload", headers={**cookie(airflow), **headers})
        assert other.status_code == 403, method
    assert inbox_files(airflow) == before_files and ingest_runs(airflow).keys() == before_runs.keys()


@pytest.mark.parametrize(
    "credentials, headers",
    [
        ("cookie", {"Sec-Fetch-Site": "same-origin", "Origin": "{base}"}),
        ("cookie", {"Origin": "{base}"}),  # a browser without Sec-Fetch-Site
        ("bearer", {}),  # a script: no cross-site form can set Authorization
    ],
    ids=["same-origin", "own-origin", "bearer"],
)
def test_a_same_origin_post_is_accepted(airflow, credentials, headers):
    before = ingest_runs(airflow)
    auth = cookie(airflow) if credentials == "cookie" else bearer(airflow)
    answer = upload(airflow, {**auth, **{name: value.format(base=airflow[0]) for name, value in headers.items()}})
    assert answer.status_code == 200, answer.text
    assert len(ingest_runs(airflow).keys() - before.keys()) == 1


def multipart_chunks(megabytes: int, boundary: str = "leadnorm-test"):
    yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'.encode()
    row = b"name,title,company,email\n" + b"x" * (1 << 20)
    for _ in range(megabytes):
        yield row
    yield f"\r\n--{boundary}--\r\n".encode()


def announced_upload(airflow, length: int) -> httpx.Response:
    """The answer to an upload that announces `length` bytes and sends none of them: only a
    server that answers before reading the body answers at all."""
    connection = http.client.HTTPConnection(airflow[0].removeprefix("http://"), timeout=30)
    try:
        connection.putrequest("POST", "/leadnorm/leads/upload")
        for name, value in {
            **bearer(airflow),
            "Content-Type": "multipart/form-data; boundary=leadnorm-test",
            "Content-Length": str(length),
        }.items():
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())
    finally:
        connection.close()


def test_an_upload_over_the_limit_gets_413_and_leaves_nothing(airflow):
    before_files, before_runs = inbox_files(airflow), ingest_runs(airflow)
    headers = {**bearer(airflow), "Content-Type": "multipart/form-data; boundary=leadnorm-test"}
    body = b"".join(multipart_chunks(60))
    started = time.monotonic()
    sized = httpx.post(f"{airflow[0]}/leadnorm/leads/upload", content=body, headers=headers, timeout=120)
    assert sized.status_code == 413 and "LEADNORM_UPLOAD_MAX_MB" in sized.json()["detail"], sized.text
    chunked = httpx.post(  # no Content-Length: the limit is counted while the body streams in
        f"{airflow[0]}/leadnorm/leads/upload", content=multipart_chunks(30), headers=headers, timeout=120
    )
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413, chunked.text
    assert time.monotonic() - started < 60
    assert announced_upload(airflow, 26 * (1 << 20)).status_code == 413  # refused before the body is read
    assert inbox_files(airflow) == before_files and ingest_runs(airflow).keys() == before_runs.keys()


@pytest.mark.parametrize("setting", ["0", "-2", "lots", "nan", "inf"])
def test_an_upload_limit_that_is_no_positive_number_refuses_every_upload(monkeypatch, setting):
    from leadnorm.ui.upload import UploadRefused, upload_limit

    monkeypatch.setenv("LEADNORM_UPLOAD_MAX_MB", setting)
    with pytest.raises(UploadRefused, match="LEADNORM_UPLOAD_MAX_MB"):
        upload_limit()
    monkeypatch.setenv("LEADNORM_UPLOAD_MAX_MB", "0.5")
    assert upload_limit() == 512 * 1024


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body (boundary `leadnorm-test`) of (field, file name or None, content) parts."""
    body = b""
    for field, filename, content in parts:
        named = f'; filename="{filename}"' if filename else ""
        body += f'--leadnorm-test\r\nContent-Disposition: form-data; name="{field}"{named}\r\n\r\n'.encode()
        body += content + b"\r\n"
    return body + b"--leadnorm-test--\r\n"


def test_a_malformed_upload_gets_400_and_leaves_nothing(airflow):
    before = inbox_files(airflow)
    the_file = ("file", "a.csv", CSV)
    cases = {
        "two files": form(the_file, ("file", "b.csv", CSV)),
        "another field's file": form(("other", "a.csv", CSV)),
        "no file": form(("note", None, b"hello")),
        "many fields": form(*[(f"field{i}", None, b"x") for i in range(20)], the_file),
        "cut off": form(the_file)[:-30],
        "no name": form(the_file).replace(b' name="file";', b""),
    }
    multipart = {**bearer(airflow), "Content-Type": "multipart/form-data; boundary=leadnorm-test"}
    for name, body in cases.items():
        answer = httpx.post(f"{airflow[0]}/leadnorm/leads/upload", content=body, headers=multipart, timeout=60)
        assert answer.status_code == 400, (name, answer.status_code, answer.text)
    for content_type in ("text/csv", "multipart/form-data", "application/x-www-form-urlencoded"):
        headers = {**bearer(airflow), "Content-Type": content_type}
        answer = httpx.post(f"{airflow[0]}/leadnorm/leads/upload", content=CSV, headers=headers, timeout=60)
        assert answer.status_code == 400, (content_type, answer.text)
    assert inbox_files(airflow) == before


# --- every response: security headers; malformed input: 4xx, never a 500 --------------------


def test_every_response_carries_the_security_headers(airflow, personal_lead):
    lead_id = str(personal_lead["lead"])
    answers = {
        "page": get(airflow, f"/leads/{lead_id}", "reader"),
        "json": get(airflow, "/api/leads", "reader", limit=1),
        "static": get(airflow, "/static/leads.css", "reader"),
        "docs": get(airflow, "/docs/index.html", "reader"),
        "not found": get(airflow, "/no/such/route", "reader"),
        "no sign-in": get(airflow, "/leads"),
        "bad filter": get(airflow, "/api/leads", "reader", limit="many"),
        "cross-site": upload(airflow, {**cookie(airflow), "Origin": "http://evil.example"}),
        "too large": announced_upload(airflow, 10**12),
    }
    expected = {"page": 200, "json": 200, "static": 200, "docs": 200, "not found": 404, "bad filter": 400}
    for name, answer in answers.items():
        assert answer.status_code == expected.get(name, answer.status_code), (name, answer.status_code)
        assert answer.status_code < 500, name
        headers = answer.headers
        policy = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split(";") if d.strip()}
        assert policy["script-src"] == ["'self'"] and policy["default-src"] == ["'self'"], name
        assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"], name
        assert policy["frame-ancestors"] == ["'self'"] and policy["form-action"] == ["'self'"], name
        # inline styles for the Data Docs only: GX's table library writes style attributes
        assert policy["style-src"] == (["'self'", "'unsafe-inline'"] if name == "docs" else ["'self'"]), name
        assert headers["x-frame-options"] == "SAMEORIGIN" and headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "same-origin", name
    assert answers["static"].headers["content-type"].startswith("text/css")


MALFORMED = [
    "/docs/%00",
    "/docs/index.html%00.png",
    "/static/leads.css%00",
    "/static/%00%2f..%2fleads.css",
    "/docs/" + "a" * 300 + ".html",  # a name longer than the file system takes
    "/docs/" + "a/" * 700 + "index.html",  # a path longer than any here
    "/static/" + "b" * 5000,
    "/docs/%ff%fe.html",
    "/api/leads?skip=1e20",
    "/api/leads?skip=100000000000000000000",
    "/api/leads?skip=99999999999999999999999999999999",
    "/api/leads?skip=10000001",
    "/api/leads?skip=-1",
    "/api/leads?limit=garbage",
    "/api/leads?limit=1e3",
    "/api/leads?limit=%00",
    "/api/leads?limit=",
    "/api/leads?q=%00",
    "/api/leads?q=" + "x" * 201,
    "/api/leads?status=%00",
    "/api/leads?fit_tier=%F0%9F%92%A5",
    "/leads?skip=1e20",
    "/leads?limit=garbage&skip=%00",
    "/api/leads/zz",
    "/api/leads/" + "f" * 5000,
    "/leads/%00",
    "/runs/leads_migration/" + "r" * 300 + "/docs",
    "/runs/" + "d" * 300 + "/run/docs",
]
ODD_RUN_IDS = ["..", ".", "%2e%2e", "[*?", "a%00b", "*", "manual__2026-11-27T10:00:00+00:00%2F..", "%C3%A9t%C3%A9"]


def test_a_server_error_carries_the_security_headers_too():
    """The headers wrap even Starlette's outermost error handler (no route of the plugin fails
    on purpose, so an app of the same class shows it)."""
    from leadnorm.ui.security import SECURITY_HEADERS, SecuredApp

    app = SecuredApp()

    @app.get("/fails")
    async def fails():
        raise RuntimeError("a bug")

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://plugin") as client:
            return await client.get("/fails")

    answer = asyncio.run(ask())
    assert answer.status_code == 500
    assert {name: answer.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_malformed_input_gets_4xx_and_no_traceback(airflow):
    log = airflow[3] / "api-server.log"
    logged = log.stat().st_size
    with httpx.Client(base_url=f"{airflow[0]}/leadnorm", headers=bearer(airflow, "reader"), timeout=30) as client:
        for path in MALFORMED:
            answer = client.get(path)
            assert 400 <= answer.status_code < 500, (path[:80], answer.status_code, answer.text[:200])
        for run_id in ODD_RUN_IDS:
            answer = client.get(f"/runs/leads_migration/{run_id}/docs")
            assert answer.status_code in (200, 404), (run_id, answer.status_code)
            assert 'href="../../../docs/validations' not in answer.text, run_id  # no other run's pages
    time.sleep(0.5)
    with log.open("rb") as written:
        written.seek(logged)
        new = written.read().decode(errors="replace")
    assert "Traceback" not in new and "status_code=5" not in new, new[-3000:]


# --- the write API: research into the normalized collections, one lead from a row's fields ---------


def post(airflow, path: str, body, headers: dict | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers if headers is not None else bearer(airflow))}
    return httpx.post(f"{airflow[0]}/leadnorm{path}", content=content, headers=headers, timeout=60)


def lead_state(database, lead_id) -> dict:
    """The lead and what hangs on it, as stored."""
    return {
        "lead": database.leads.find_one({"_id": lead_id}),
        **{name: list(database[name].find({"lead_id": lead_id})) for name in ("research_runs", "icp_scores")},
        "signals": sorted(map(str, database.detected_signals.find({"lead_id": lead_id}))),
    }


RESEARCH = {
    "research": {
        "CompanyProfile": {"name": "Posted Co", "domain": "{domain}"},
        "PersonaProfile": {"email": "{email}"},
        "DetectedSignals": [{"type": "hiring", "signal": "api", "strength": "high"}],
        "ResearchMeta": {"model": "m", "citations": [{"source_name": "s", "url": "https://example.com"}]},
    },
    "icp": {"icp_score": "77", "fit_tier": "b", "score_breakdown": {"fit": {"score": 30, "factors": ["x"]}}},
}


def research_for(database, lead: dict) -> dict:
    other = database.companies.find_one({"domain": {"$exists": True}, "_id": {"$ne": lead["company_id"]}})
    email = database.personas.find_one({"_id": lead["persona_id"]})["email"]
    text = (
        json.dumps(RESEARCH)
        .replace("{domain}", f"https://{other['domain'].upper()}/x")
        .replace("{email}", email.upper())
    )
    return json.loads(text), other


def test_posted_research_is_written_and_answered_with_the_joined_lead(airflow):
    database = airflow[2]
    lead = next(
        lead
        for lead in database.leads.find({**NORMALIZED_LEAD, "company_id": {"$exists": True}})
        if lead.get("persona_id")
        and database.personas.find_one({"_id": lead["persona_id"], "email": {"$exists": True}})
    )
    body, other = research_for(database, lead)
    answer = post(airflow, f"/api/leads/{lead['_id']}/research", body)
    assert answer.status_code == 200, answer.text
    joined = answer.json()
    assert joined == get(airflow, f"/api/leads/{lead['_id']}", "editor").json()
    assert joined["company"]["_id"] == str(other["_id"]) and joined["persona"]["_id"] == str(lead["persona_id"])
    assert joined["status"] == "icp_scored" and [s["signal"] for s in joined["detected_signals"]] == ["api"]
    stored = database.leads.find_one({"_id": lead["_id"]})
    assert stored["company_id"] == other["_id"] and "legacy_lead_id" not in stored
    assert database.icp_scores.find_one({"lead_id": lead["_id"]})["icp_score"] == 77
    assert "x-leadnorm-defaulted" not in answer.headers

    unreadable = {**body, "icp": {**body["icp"], "icp_score": "n/a"}}  # given its default, and said so
    answer = post(airflow, f"/api/leads/{lead['_id']}/research", unreadable)
    assert answer.status_code == 200 and answer.headers["x-leadnorm-defaulted"] == "icp_scores.icp_score=1"
    assert answer.json()["icp"]["icp_score"] == 0


def test_research_without_sign_in_or_with_a_malformed_body_changes_nothing(airflow):
    database = airflow[2]
    lead = a_full_lead(database)
    body, _ = research_for(database, lead)
    before = lead_state(database, lead["_id"])
    path = f"/api/leads/{lead['_id']}/research"
    refused = [
        (post(airflow, path, body, headers={}), (401, 403)),
        (post(airflow, path, body, headers={"Authorization": "Bearer forged"}), (401, 403)),
        (post(airflow, path, body, headers=bearer(airflow, "reader")), (403,)),
        (post(airflow, path, body, headers={**cookie(airflow), "Sec-Fetch-Site": "cross-site"}), (403,)),
        (post(airflow, f"/api/leads/{ObjectId()}/research", body), (404,)),
        (post(airflow, "/api/leads/not-an-id/research", body), (404,)),
        (post(airflow, path, b"{not json"), (400,)),
        (post(airflow, path, [1, 2]), (400,)),
        (post(airflow, path, {"icp": {}}), (422,)),
        (post(airflow, path, {"research": "text"}), (422,)),
        (post(airflow, path, {"research": {"CompanyProfile": ["a list"]}}), (422,)),
        (post(airflow, path, {**body, "icp": {"icp_score": [82]}}), (422,)),
        (post(airflow, path, {**body, "company_id": str(ObjectId())}), (422,)),
        (post(airflow, path, b'{"research": {"x": "' + b"y" * (1100 * 1024) + b'"}}'), (413,)),
    ]
    for answer, wanted in refused:
        assert answer.status_code in wanted, (answer.status_code, answer.text[:200])
    named = [answer.json()["detail"] for answer, wanted in refused if wanted == (422,)]
    assert named[0].startswith("research:") and named[3].startswith("icp.icp_score"), named
    assert named[4].startswith("company_id:"), "a client's company id is refused, never trusted"
    assert lead_state(database, lead["_id"]) == before


def test_a_lead_from_a_rows_fields_is_created_once(airflow):
    database = airflow[2]
    fields = {
        "name": "Ada Api",
        "title": "CTO",
        "company": "Api Co",
        "email": "ADA@api.example",
        "domain": "api.example",
    }
    first = post(airflow, "/api/leads", fields)
    assert first.status_code == 201, first.text
    again = post(airflow, "/api/leads", fields)
    assert again.status_code == 200 and again.json()["_id"] == first.json()["_id"]
    created = database.leads.find_one({"_id": ObjectId(first.json()["_id"])})
    assert created["status"] == "uploaded" and created["email"] == "ada@api.example"
    assert database.companies.find_one({"_id": created["company_id"]})["domain"] == "api.example"
    assert post(airflow, "/api/leads", {**fields, "email": "not an email"}).status_code == 422
    assert post(airflow, "/api/leads", {**fields, "persona_id": str(ObjectId())}).status_code == 422
    assert post(airflow, "/api/leads", fields, headers=bearer(airflow, "reader")).status_code == 403
