"""Data Docs render completely in a real browser that can reach nothing but loopback, under
the Content-Security-Policy they are made for (no inline script).

Headless Chromium (Debian's, driven through Debian's chromedriver: Selenium Manager never
runs) opens the docs served by `datadocs.serve`, which sends that policy, as the Leads plugin
does: a script the policy blocks shows as a violation on the console and fails the test.
Every host but 127.0.0.1 is unresolvable and every proxied request goes to a closed port, so
a page that still needed a CDN would show failed requests or unrendered tables. Screenshots
go to `<reports>/screenshots/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from pathlib import Path

import pytest
from test_validate import valid_frames

from leadnorm.quality.datadocs import CONTENT_SECURITY_POLICY, serve
from leadnorm.quality.validate import run_gate

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.browser


def _require_browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if not missing:
        return
    message = (
        f"{' and '.join(missing)} not installed (Debian: apt-get install chromium "
        "chromium-driver); the Data Docs browser test needs them"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    """Docs of a run with a critical failure and a warning, so result tables have rows, then of a dry run."""
    reports = tmp_path_factory.mktemp("browser") / "reports"
    frames, source = valid_frames()
    frames["leads"].loc[2, "status"] = "qualified"
    frames["personas"].loc[3, ["email", "linkedin_url"]] = None
    result = run_gate(frames, source, reports_dir=reports, run_name="browser")
    assert not result.passed
    assert run_gate(*valid_frames(), reports_dir=reports, run_name="browser", dry_run=True).passed
    return reports


@pytest.fixture(scope="module")
def docs_url(reports):
    server, url = serve(reports)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _open(browser, url: str, screenshot: Path) -> dict:
    """Load `url`, wait for its tables to fill; return what the browser saw."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("performance")  # drop what earlier pages left
    browser.get_log("browser")
    browser.get(url)
    with contextlib.suppress(TimeoutException):  # on a time-out the logs below say why
        WebDriverWait(browser, 20).until(
            lambda driver: driver.execute_script(
                "return document.readyState === 'complete' && document.fonts.status === 'loaded'"
                " && document.querySelectorAll('table tbody tr').length > 0"
            )
        )
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(screenshot))

    requested, failed = {}, []  # request id -> URL; "URL: why" for each failed request
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            requested[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed":
            failed.append(f"{requested.get(params['requestId'])}: {params['errorText']}")
        elif message["method"] == "Network.responseReceived" and params["response"]["status"] >= 400:
            response = params["response"]
            failed.append(f"{response['url']}: HTTP {response['status']}")
    console = browser.get_log("browser")
    return {
        "requested": list(requested.values()),
        "failed": failed,
        "severe": [entry for entry in console if entry["level"] == "SEVERE"],
        "csp_violations": [entry["message"] for entry in console if "Content Security Policy" in entry["message"]],
        "rows": browser.execute_script("return document.querySelectorAll('table tbody tr').length"),
        "icon_font": browser.execute_script(
            "return document.fonts.check('900 16px \"Font Awesome 6 Free\"')"
            " && [...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded')"
        ),
        "bootstrap": browser.execute_script("return getComputedStyle(document.querySelector('.navbar')).display"),
    }


def _assert_rendered_offline(seen: dict, base: str) -> None:
    assert seen["csp_violations"] == [], seen["csp_violations"]
    assert seen["failed"] == [], seen["failed"]
    assert seen["severe"] == [], seen["severe"]
    assert seen["requested"], "the performance log recorded no request"
    assert all(url.startswith((base, "data:")) for url in seen["requested"]), seen["requested"]
    assert seen["rows"] > 0
    assert seen["icon_font"], "Font Awesome did not load"
    assert seen["bootstrap"] == "flex", "Bootstrap's styles did not apply"


def test_index_and_validation_page_render_without_network(browser, reports, docs_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = docs_url.rsplit("/data_docs/", 1)[0]
    with urllib.request.urlopen(docs_url, timeout=10) as page:
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    index = _open(browser, docs_url, reports / "screenshots" / "index.png")
    _assert_rendered_offline(index, base)
    run_names = browser.execute_script(  # all rows, not only the table's first page
        "return $('.ge-index-page-validation-results-table').bootstrapTable('getData').map(row => row.run_name)"
    )
    assert sorted(set(run_names)) == ["browser", "dry-run-browser"], run_names  # the dry one labelled as such

    page = next((reports / "data_docs" / "validations" / "leads").rglob("*.html"))
    url = f"{base}/{page.relative_to(reports).as_posix()}"
    result = _open(browser, url, reports / "screenshots" / "leads-validation.png")
    _assert_rendered_offline(result, base)
    assert "qualified" in browser.page_source  # the failed status shows as an unexpected value
    badges = browser.execute_script(
        "return [...document.querySelectorAll('td .badge-danger, td .badge-warning')].map(b => b.innerText)"
    )
    assert sorted(badges) == ["critical"]  # the failed status; the leads suite had no failed warning
    succeeded = "return $('.hide-succeeded-validation-target-child').parent().filter(':visible').length"
    shown = browser.execute_script(succeeded)
    browser.find_element(By.CSS_SELECTOR, "[data-leadnorm-onclick]:not(.active)").click()  # "Failed Only"
    WebDriverWait(browser, 10).until(lambda driver: driver.execute_script(succeeded) < shown)  # the moved handler ran

    assert [entry for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]] == []
