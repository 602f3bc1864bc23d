"""The Leads plugin in the real Airflow UI, in headless Chromium that can reach nothing but
loopback: sign in, open Leads from the navigation, upload a CSV through the page's form (the
cross-site refusal lets a same-origin form through), open a lead and see its signals and
factor chart, open the Data Docs from a DAG run's page and the Data Docs index, whose tables
its scripts fill. The plugin's Content-Security-Policy applies throughout: a violation the
console reports fails the test. Screenshots go to `<tmp>/screenshots/`.

The DAG run is a real one (`airflow dags test leads_migration` in the scratch AIRFLOW_HOME), so
its page exists and its gate wrote the Data Docs the run's tab lists.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid

import httpx
import pytest
from airflow_harness import AIRFLOW, api_server, scratch_env, scratch_home, token
from test_datadocs_browser import browser  # noqa: F401 (the fixture: Chromium with loopback only)

from leadnorm.devtools.seed import seed_leads
from leadnorm.mongo import connect

pytestmark = [pytest.mark.airflow, pytest.mark.browser]


@pytest.fixture(scope="module")
def ui(mongo_uri, tmp_path_factory):
    """An API server with the plugin over a database that `leads_migration` migrated."""
    database = connect(mongo_uri, f"test_uib_{uuid.uuid4().hex[:8]}")
    seed_leads(database, 60, seed=31)
    password = secrets.token_urlsafe(12)
    home = scratch_home(tmp_path_factory.mktemp("ui-home"), {"ada": password})
    folders = {f"LEADNORM_{name.upper()}_DIR": str(home / name) for name in ("reports", "staging", "backup")}
    env = scratch_env(home, mongo_uri, database.name, "ada:admin", **folders)
    migrated = subprocess.run(
        [AIRFLOW, "dags", "test", "leads_migration"], env=env, capture_output=True, text=True, timeout=600
    )
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    # what the DAG processor does: the upload form can then trigger leads_csv_ingest
    subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    try:
        with api_server(env) as base:
            yield {"base": base, "password": password, "db": database, "shots": home / "screenshots"}
    finally:
        database.client.drop_database(database.name)


def wait_for(browser, condition, seconds: float = 30):  # noqa: F811
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds).until(lambda driver: condition(driver))


def shot(browser, ui, name: str) -> None:  # noqa: F811
    ui["shots"].mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ui["shots"] / f"{name}.png"))


def test_sign_in_leads_lead_page_and_a_runs_data_docs(browser, ui):  # noqa: F811
    from selenium.webdriver.common.by import By

    base = ui["base"]
    browser.get_log("performance")  # what earlier tests of this browser left
    browser.get_log("browser")
    browser.get(f"{base}/leadnorm/leads")  # not signed in: no lead data
    assert "Not authenticated" in browser.page_source and "<table" not in browser.page_source

    browser.get(f"{base}/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "input[name='username']"))
    browser.find_element(By.CSS_SELECTOR, "input[name='username']").send_keys("ada")
    browser.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(ui["password"])
    browser.find_element(By.CSS_SELECTOR, "button[type='submit']").click()

    leads_link = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "a[href$='/plugin/leads']"), 60)[0]
    shot(browser, ui, "home")
    leads_link.click()
    frame = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[src*='leadnorm/leads']"))[0]
    browser.switch_to.frame(frame)
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.leads tbody tr td a"))
    browser.switch_to.default_content()
    shot(browser, ui, "leads")

    csv = ui["shots"].parent / "browser-upload.csv"
    csv.write_text("name,title,company,email\nBea Browser,CTO,Form Co,bea@form.example\n")
    browser.switch_to.frame(frame)
    browser.find_element(By.CSS_SELECTOR, "form.upload input[type='file']").send_keys(str(csv))
    browser.find_element(By.CSS_SELECTOR, "form.upload button[type='submit']").click()
    wait_for(browser, lambda d: "Upload received" in d.page_source)
    run_link = browser.find_element(By.CSS_SELECTOR, "a[data-airflow-page]")
    run_id, run_page = run_link.text, run_link.get_attribute("href")
    assert run_page.startswith(f"{base}/dags/leads_csv_ingest/runs/")
    run_link.click()  # the run's own page, in the UI around the frame (not inside it)
    browser.switch_to.default_content()
    wait_for(browser, lambda d: d.current_url == run_page)
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "iframe[src*='leadnorm']"))
    wait_for(browser, lambda d: run_id in d.find_element(By.TAG_NAME, "body").text, 60)
    shot(browser, ui, "upload-run")
    browser.get(f"{base}/plugin/leads")
    frame = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[src*='leadnorm/leads']"))[0]
    browser.switch_to.frame(frame)
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.leads tbody tr td a"))
    browser.switch_to.default_content()

    database = ui["db"]
    signalled = {s["lead_id"] for s in database.detected_signals.find({}, {"lead_id": 1})}
    scored = {s["lead_id"] for s in database.icp_scores.find({}, {"lead_id": 1})}
    lead_id = sorted(signalled & scored, key=str)[0]
    assert rows
    browser.switch_to.frame(frame)
    browser.execute_script("window.location.href = arguments[0]", f"leads/{lead_id}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.factor-chart rect.bar"))
    signals = browser.find_elements(By.CSS_SELECTOR, "section.signals tbody tr")
    assert len(signals) == database.detected_signals.count_documents({"lead_id": lead_id})
    assert browser.find_elements(By.CSS_SELECTOR, "section.company h3")
    browser.switch_to.default_content()
    shot(browser, ui, "lead")

    runs = httpx.get(
        f"{base}/api/v2/dags/leads_migration/dagRuns", params={"limit": 100}, headers=token_headers(ui), timeout=30
    ).json()["dag_runs"]
    run_id = max(runs, key=lambda run: run["start_date"] or "")["dag_run_id"]  # the copied DB may hold older ones
    browser.get(f"{base}/dags/leads_migration/runs/{run_id}")
    tab = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "a[href$='/plugin/outcome']"), 60)[0]
    tab.click()
    frame = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[src*='/docs']"))[0]
    browser.switch_to.frame(frame)
    suites = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.suites tbody tr"))
    marks = {
        row.find_element(By.CSS_SELECTOR, "td a").text: row.find_element(By.CSS_SELECTOR, ".mark").text
        for row in suites
    }
    assert set(marks) >= {"leads", "companies", "personas"} and set(marks.values()) <= {
        "passed",
        "passed with warnings",
    }
    assert "migration summary" in browser.find_element(By.CSS_SELECTOR, "section.summary pre").text
    suites[0].find_element(By.CSS_SELECTOR, "td a").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table tbody tr"))
    browser.switch_to.default_content()
    shot(browser, ui, "data-docs")
    browser.get(f"{base}/leadnorm/docs/index.html")  # its tables are filled by its scripts
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".ge-index-page-validation-results-table tbody tr"))
    shot(browser, ui, "data-docs-index")

    violations = [
        entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]
    ]
    assert violations == [], violations

    requested = set()  # every request of the session, the plugin's pages and the Data Docs included
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.add(message["params"]["request"]["url"])
    assert requested and all(url.startswith((base, "data:", "blob:", "about:")) for url in requested), sorted(
        url for url in requested if not url.startswith(base)
    )


def token_headers(ui) -> dict:
    return {"Authorization": f"Bearer {token(ui['base'], 'ada', ui['password'])}"}
