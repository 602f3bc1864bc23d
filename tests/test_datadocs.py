"""Data Docs: self-contained (no remote asset left anywhere) and free of personal data.

One gate run over frames broken on purpose with personal data in the failing values
provides the docs that every test here reads. Result pages also say how severe each
failed expectation is.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_validate import PERSON_NAMES, valid_frames

from leadnorm.quality import datadocs
from leadnorm.quality.validate import run_gate

EMAIL_LIKE = re.compile(r"[^\s@<>\"]+@[^\s@<>\"]+\.[a-z]{2,}")
# A reference the browser would fetch (or a link it would follow) off this machine.
REMOTE_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster)\s*=\s*\\?["']?\s*"""  # an attribute
    r"""|url\(\s*["']?\s*|@import\s+(?:url\()?\s*["']?\s*)"""  # CSS
    r"""(?:https?:)?//""",
    re.IGNORECASE,
)
LOCAL_REFERENCE = re.compile(r"""\s(?:src|href)\s*=\s*["'](?P<url>[^"'#][^"']*)["']|url\(\s*["']?(?P<css>[^"')]+)""")


@pytest.fixture(scope="module")
def gate_result(tmp_path_factory):
    reports = tmp_path_factory.mktemp("datadocs") / "reports"
    frames, source = valid_frames()
    personas, leads = frames["personas"], frames["leads"]
    personas.loc[0, "email"] = f"  {personas.loc[0, 'email'].upper()} "  # not normalized
    personas.loc[1, "email"] = personas.loc[2, "email"]  # duplicate
    personas.loc[3, "email"] = PERSON_NAMES[3]  # a name where the email belongs
    personas.loc[4, "linkedin_url"] = "https://www.linkedin.com/in/Esme-Takahashi/"
    leads.loc[1, "email"] = f"{PERSON_NAMES[1]} <bram@example.com>"
    frames["companies"].loc[0, "domain"] = "ceo@company-1.io"  # an email in a column with no person in it
    result = run_gate(frames, source, reports_dir=reports, run_name="pii")
    failed = {(finding.suite, finding.column) for finding in result.failures}
    assert {
        ("personas", "email"),
        ("personas", "linkedin_url"),
        ("leads", "email"),
        ("companies", "domain"),
    } <= failed, result.summary()
    return result


@pytest.fixture(scope="module")
def docs(gate_result) -> Path:
    return gate_result.docs_index.parent


def page_with_scripts(page: Path) -> str:
    """A page's text and that of the inline scripts publishing moved beside it (the index's table of
    runs, for one): what a reader's browser shows."""
    text = page.read_text(encoding="utf-8")
    moved = re.findall(r'<script src="([^"/]+\.inline-[0-9a-f]{16}\.js)"', text)
    return text + "".join((page.parent / name).read_text(encoding="utf-8") for name in moved)


def _text_files(docs: Path):
    return [path for path in docs.rglob("*") if path.suffix in (".html", ".css", ".js", ".json", ".svg")]


def test_no_remote_asset_reference_anywhere(docs):
    files = _text_files(docs)
    assert any(path.suffix == ".js" for path in files)  # the vendored scripts are checked too
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not REMOTE_REFERENCE.search(text), f"{path}: {REMOTE_REFERENCE.search(text).group()}"


def test_every_local_reference_exists(docs):
    """Offline also means complete: each script, style, font and image is there."""
    for path in docs.rglob("*"):
        if path.suffix not in (".html", ".css"):
            continue
        for match in LOCAL_REFERENCE.finditer(path.read_text(encoding="utf-8")):
            url = (match["url"] or match["css"]).strip()
            if url.startswith(("data:", "#")):
                continue
            target = (path.parent / url.split("?")[0].split("#")[0]).resolve()
            assert target.exists(), f"{path.relative_to(docs)} -> {url}"


def test_no_personal_data_in_the_docs(docs):
    """Neither in the pages nor in the stored results the index is built from."""
    results = _text_files(docs.parent / "gx_results")
    assert len(results) == 10  # one per suite
    pages = 0
    for path in [*_text_files(docs), *results]:
        if "vendor" not in path.parts:
            text = path.read_text(encoding="utf-8")
            assert not EMAIL_LIKE.search(text), f"{path}: {EMAIL_LIKE.search(text).group()}"
            for name in PERSON_NAMES:
                assert name.lower() not in text.lower(), f"{path}: {name}"
            assert "linkedin.com/in" not in text.lower(), path
            pages += path.suffix == ".html"
    assert pages >= 21  # index, ten suites, ten results
    assert "masked:" in _result_page(docs, "personas")  # the failing values are still shown, masked


def _result_page(docs: Path, suite: str) -> str:
    return next((docs / "validations" / suite).rglob("*.html")).read_text(encoding="utf-8")


def _severity_badges(page: str) -> list[str]:
    return re.findall(r'<span class="badge badge-(?:warning|danger)"\s*>(warning|critical)</span>', page)


def test_failed_expectations_show_their_severity(docs, gate_result):
    """A failed warning reads "warning", a failed critical one "critical"; passed ones get no badge."""
    for suite in ("nested_leads", "personas", "leads", "companies", "citations"):
        expected = sorted(
            ["critical"] * sum(f.suite == suite for f in gate_result.failures)
            + ["warning"] * sum(f.suite == suite for f in gate_result.warnings)
        )
        assert sorted(_severity_badges(_result_page(docs, suite))) == expected, suite
    assert _severity_badges(_result_page(docs, "nested_leads")) == ["warning"]  # the rejected lead


def _status(page: str) -> str:
    return re.search(r'<span class="h6" >Status:</span>\s*<i[^>]*></i>\s*([A-Za-z ]+)', page)[1].strip()


def test_each_result_page_states_the_gates_verdict_and_no_newsletter(docs, gate_result):
    """A suite whose failures are all warnings passed the gate, and says so ("Passed with
    warnings", where GX says "Failed"); one with a critical failure says "Failed"; GX's newsletter
    footer is gone from every page."""
    assert _status(_result_page(docs, "nested_leads")) == "Passed with warnings"
    assert _status(_result_page(docs, "personas")) == "Failed"
    assert _status(_result_page(docs, "research_runs")) == "Succeeded"
    assert not [p for p in docs.rglob("*.html") if "newsletter" in p.read_text(encoding="utf-8")]


def test_masking_keeps_duplicates_recognisable():
    expectation = SimpleNamespace(
        expectation_config=SimpleNamespace(kwargs={"column": "email"}),
        result={"partial_unexpected_list": ["a@x.io", "a@x.io", "b@x.io"], "unexpected_count": 3},
        exception_info={"exception_message": None},
    )
    datadocs.mask_personal_data(SimpleNamespace(results=[expectation]), ["email"], key=b"k")
    masked = expectation.result["partial_unexpected_list"]
    assert masked[0] == masked[1] != masked[2]
    assert all(value.startswith("masked:") for value in masked)
    assert expectation.result["unexpected_count"] == 3


def test_make_offline_is_idempotent(docs):
    before = {path: path.read_bytes() for path in docs.rglob("*.html")}
    datadocs.make_offline(docs)
    assert {path: path.read_bytes() for path in docs.rglob("*.html")} == before


def test_serve_answers_on_loopback_only(docs):
    server, url = datadocs.serve(docs.parent)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert url.startswith("http://127.0.0.1:") and url.endswith("/data_docs/index.html")
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert b"Data Docs" in response.read()
    finally:
        server.shutdown()
        server.server_close()


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc\s*=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


def test_no_inline_script_or_handler_left(docs):
    """The pages work under a policy that runs scripts from files only (`script-src 'self'`)."""
    pages = [path for path in docs.rglob("*.html") if "vendor" not in path.parts]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not INLINE_SCRIPT.search(text), f"{page}: {INLINE_SCRIPT.search(text).group()}"
        assert not INLINE_HANDLER.search(text), f"{page}: {INLINE_HANDLER.search(text).group()[:120]}"
    index = (docs / "index.html").read_text(encoding="utf-8")
    moved = re.findall(r'<script src="(index\.inline-[0-9a-f]{16}\.js)">', index)
    assert moved and all((docs / name).is_file() for name in moved)
    handlers = "".join((docs / name).read_text(encoding="utf-8") for name in moved)
    assert "clearTableFilters('" in handlers and 'addEventListener("click"' in handlers
    # a rebuilt page leaves no script of its earlier build behind
    assert {path.name for path in docs.glob("index.inline-*.js")} == set(moved)


def test_a_rebuilt_page_gets_fresh_script_files(tmp_path):
    page = tmp_path / "page.html"
    page.write_text('<html><body><script>var a = 1;</script><a onclick="go(&quot;x&quot;)">x</a></body></html>')
    datadocs.make_offline(tmp_path)
    first = {path.name for path in tmp_path.glob("page.inline-*.js")}
    assert len(first) == 2 and 'data-leadnorm-onclick="0"' in page.read_text()
    assert any('go("x")' in (tmp_path / name).read_text() for name in first)
    page.write_text("<html><body><script>var a = 2;</script></body></html>")  # as GX rebuilds it
    datadocs.make_offline(tmp_path)
    second = {path.name for path in tmp_path.glob("page.inline-*.js")}
    assert len(second) == 1 and not second & first


def test_a_publish_goes_over_the_pages_it_wrote_only(tmp_path):
    """Earlier runs' pages are offline already; going over them all at every run would make each
    publish slower than the last."""
    earlier, fresh = tmp_path / "earlier.html", tmp_path / "fresh.html"
    earlier.write_text("<html><body><script>var a = 1;</script></body></html>")
    os.utime(earlier, ns=(1_000_000_000, 1_000_000_000))
    fresh.write_text("<html><body><script>var b = 2;</script></body></html>")
    datadocs.make_offline(tmp_path, since_ns=fresh.stat().st_mtime_ns)
    assert "<script>var a = 1;</script>" in earlier.read_text()
    assert "var b" not in fresh.read_text() and len(list(tmp_path.glob("fresh.inline-*.js"))) == 1
