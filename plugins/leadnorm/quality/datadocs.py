"""Data Docs for every gate run: offline, without personal data, and a local server to read them.

Great Expectations renders its pages with scripts, styles and fonts from CDNs and a logo
from a remote host, and shows sample values of failed expectations. Reports here are read
on machines without network and must not spread personal data, so `publish` masks the
values of personal columns before rendering and `make_offline` points every page at the
copies vendored in `datadocs_assets/` (reproduced by `scripts/vendor_datadocs_assets.sh`).
The masked results stay in a results store next to the docs, so the index lists every run;
result pages show the severity of each failed expectation (`docs_renderers`).

GX's pages also carry inline scripts and `onclick` attributes, which a Content-Security-Policy
without `'unsafe-inline'` scripts (the Leads plugin's, and `serve`'s) refuses to run:
`make_offline` moves each into a script file next to its page, so the pages work under
`CONTENT_SECURITY_POLICY`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import html
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import as_file, files
from pathlib import Path

log = logging.getLogger(__name__)

SITE_NAME = "leadnorm"
RESULTS_STORE = "leadnorm_masked_results"  # the site renders from this store only
ASSETS = files("leadnorm.quality") / "datadocs_assets"  # package data
VENDOR_SUBDIR = Path("static/vendor")  # where the vendored assets go, under the docs root
GX_IMAGES_HOST = "great-expectations-web-assets.s3.us-east-2.amazonaws.com"
GX_LOGO = Path("static/images/logo-long.png")  # GX ships it; the pages fetch it remotely

EMAIL_LIKE = re.compile(r"[^\s@<>\"']+@[^\s@<>\"']+\.[a-z]{2,}", re.IGNORECASE)
_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_TAG = re.compile(r"<(?P<name>[a-zA-Z][a-zA-Z0-9]*)\b[^>]*>")
_LINK_ATTRIBUTE = re.compile(
    r"""\s(?P<attr>src|href)\s*=\s*(?P<quote>["'])(?P<url>.*?)(?P=quote)""", re.IGNORECASE | re.DOTALL
)
# Subresource integrity is for CDNs; on a local copy (and on file:// pages) it only blocks.
_SRI_ATTRIBUTE = re.compile(r"""\s(?:integrity|crossorigin)\s*=\s*(["']).*?\1""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(?P<quote>["']?)(?P<url>[^"')]*?)(?P=quote)\s*\)""")
# An inline script (not a data block such as type="application/json", which never runs) and an
# inline event handler: what a policy without 'unsafe-inline' scripts refuses.
_INLINE_SCRIPT = re.compile(r"<script(?P<attrs>(?:\s[^>]*)?)>(?P<code>.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_SCRIPT_SRC = re.compile(r"\ssrc\s*=", re.IGNORECASE)
_SCRIPT_TYPE = re.compile(r"""\stype\s*=\s*["']?\s*(?P<type>[^"'\s>]*)""", re.IGNORECASE)
_JS_TYPES = {"", "text/javascript", "application/javascript", "module"}
_EVENT_HANDLER = re.compile(
    r"""\son(?P<event>[a-z]+)\s*=\s*(?:(?P<quote>["'])(?P<code>.*?)(?P=quote)|(?P<bare>[^\s"'>]+))""",
    re.IGNORECASE | re.DOTALL,
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# An inline handler as a listener: `this` and `event` as inline, `return false` prevents the default.
_BINDING = """document.querySelectorAll('[data-leadnorm-on{event}="{n}"]').forEach(function (element) {{
  element.addEventListener("{event}", function (event) {{
    if ((function (event) {{ {code}
    }}).call(this, event) === false) event.preventDefault();
  }});
}});
"""

# What the pages are made to work under (the Leads plugin serves them with it, `serve` too):
# scripts from files of this site only; inline styles stay allowed, since GX's pages and the
# table library they use write `style` attributes.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


def results_store(results_dir: Path) -> dict:
    """The GX `stores` entry for the masked results of every run, kept as JSON in `results_dir`."""
    return {
        RESULTS_STORE: {
            "class_name": "ValidationResultsStore",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(results_dir)},
        }
    }


def site_config(docs_dir: Path) -> dict:
    """The GX `data_docs_sites` entry: one local site in `docs_dir`, without GX's tutorials.

    Result pages come from the masked results store only (profiling pages, which would read
    GX's own unmasked store, are off) and use a results table that shows severities.
    """
    table = {"module_name": "leadnorm.quality.docs_renderers", "class_name": "ResultsTableWithSeverity"}
    return {
        SITE_NAME: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "site_section_builders": {
                "validations": {
                    "source_store_name": RESULTS_STORE,
                    "renderer": {
                        "class_name": "ValidationResultsPageRenderer",
                        "column_section_renderer": {
                            "class_name": "ValidationResultsColumnSectionRenderer",
                            "table_renderer": table,
                        },
                    },
                },
                "profiling": "None",
            },
        }
    }


def publish(context, results: dict, personal_columns: dict[str, list[str]], docs_dir: Path) -> Path:
    """Render `results` (GX validation results by store key) as Data Docs; return the index.

    The results are masked in place first (see `mask_personal_data`), then added to the
    masked results store. Only this run's pages and the suites are rendered; the index is
    built from every run in the store.
    """
    key = secrets.token_bytes(16)  # per run: masked values group within a run only
    store = context.stores[RESULTS_STORE]
    for result_key, result in results.items():
        mask_personal_data(result, personal_columns.get(result.suite_name, ()), key)
        store.set(result_key, result)
    suite_keys = [result_key.expectation_suite_identifier for result_key in results]
    started = time.time_ns() - 1_000_000_000  # file times lag the clock by up to a tick
    context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=[*suite_keys, *results])
    make_offline(docs_dir, since_ns=started)
    for result_key, result in results.items():
        if warned_only(result):
            run = docs_dir / "validations" / result.suite_name / result_key.run_id.run_name
            for page in run.glob("*/*.html"):
                if page.stat().st_mtime_ns >= started:
                    page.write_text(_passed_with_warnings(page.read_text(encoding="utf-8")), encoding="utf-8")
    return docs_dir / "index.html"


def warned_only(result) -> bool:
    """A suite whose failed expectations are all warnings: GX calls it "Failed", the gate passes it."""
    failed = [r for r in result.results if not r.success]
    return bool(failed) and all(r.expectation_config.severity != "critical" for r in failed)


# GX's status line of a result page (`page_renderer`) for an unsuccessful suite.
_FAILED_STATUS = re.compile(r'<i class="fas fa-times text-danger" aria-hidden="true"></i>(\s*)Failed')


def _passed_with_warnings(text: str) -> str:
    return _FAILED_STATUS.sub(
        r'<i class="fas fa-exclamation-triangle text-warning" aria-hidden="true"></i>\1Passed with warnings', text, 1
    )


KEPT_RUNS_ENV = "LEADNORM_DATA_DOCS_RUNS"
KEPT_RUNS = 100  # the runs the Data Docs keep: the index is built from every result kept


def kept_runs() -> int:
    return max(1, int(os.environ.get(KEPT_RUNS_ENV, KEPT_RUNS)))


def prune_history(results_dir: Path, docs_dir: Path, keep: int) -> list[str]:
    """Remove the results and the pages of all but the newest `keep` runs: GX builds the index from
    every result in the store, so without this each publish would take longer than the last, an
    hourly refresh's a little more every hour (`kept_runs`: `LEADNORM_DATA_DOCS_RUNS`, 100). Returns
    the runs removed."""
    runs: dict[tuple[str, str], list[Path]] = {}  # (run time, run name) -> its folders, suite by suite
    for suite in results_dir.iterdir() if results_dir.is_dir() else ():
        for name in suite.iterdir() if suite.is_dir() else ():
            for moment in name.iterdir() if name.is_dir() else ():
                runs.setdefault((moment.name, name.name), []).append(moment)
    removed = sorted(runs)[: max(0, len(runs) - keep)]
    for moment, name in removed:
        for folder in runs[(moment, name)]:
            suite = folder.parent.parent.name
            for path in (folder, docs_dir / "validations" / suite / name / moment):
                shutil.rmtree(path, ignore_errors=True)
                with contextlib.suppress(OSError):
                    path.parent.rmdir()  # the run name's folder, once it holds no run
    return [f"{name} {moment}" for moment, name in removed]


def mask_personal_data(result, personal_columns, key: bytes) -> None:
    """Replace sample values that could identify a person by `masked:<digest>`.

    For expectations on a personal column every text value in the result is masked; for
    all others, values that look like email addresses. The same value gets the same digest
    within one run, so duplicates still show as duplicates.
    """
    personal = set(personal_columns)
    for expectation in result.results:
        kwargs = expectation.expectation_config.kwargs
        columns = {kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"), *kwargs.get("column_list", ())}
        expectation.result = _masked(expectation.result, key=key, everything=bool(columns & personal))
        expectation.exception_info = _masked(expectation.exception_info, key=key, everything=False)


def _masked(value, *, key: bytes, everything: bool):
    if isinstance(value, str):
        if everything:
            return _token(value, key)
        return EMAIL_LIKE.sub(lambda match: _token(match.group(), key), value)
    if isinstance(value, dict):
        return {name: _masked(item, key=key, everything=everything) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(item, key=key, everything=everything) for item in value]
    return value


def _token(value: str, key: bytes) -> str:
    return "masked:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:8]


def make_offline(docs_dir: Path, since_ns: int = 0) -> None:
    """Copy the vendored assets into `docs_dir` and point every page and style sheet at them.

    Afterwards no file under `docs_dir` refers to a remote script, style, font or image, links
    to GX's web site are plain text, and no page holds an inline script (`_without_inline_scripts`).
    Safe to run again over earlier output. `since_ns`: only pages written since then (a build
    rewrites this run's pages and the index; earlier runs' pages are done already, and going
    over all of them at every publish would make each run slower than the last).
    """
    manifest = json.loads((ASSETS / "manifest.json").read_text(encoding="utf-8"))
    with as_file(ASSETS) as assets:
        shutil.copytree(
            assets, docs_dir / VENDOR_SUBDIR, dirs_exist_ok=True, ignore=shutil.ignore_patterns("manifest.json")
        )
    local = {url: VENDOR_SUBDIR / target for url, target in manifest.items()}
    vendored = docs_dir / VENDOR_SUBDIR
    for path in [path for path in docs_dir.rglob("*") if path.suffix in (".html", ".css")]:
        if vendored not in path.parents and path.stat().st_mtime_ns >= since_ns:
            text = path.read_text(encoding="utf-8")
            rewritten = _NEWSLETTER.sub("", _rewrite(text, path, docs_dir, local))
            if path.suffix == ".html":
                rewritten = _without_inline_scripts(rewritten, path)
            if rewritten != text:
                path.write_text(rewritten, encoding="utf-8")


# GX's footer on every page (`cloud-footer.j2`): a newsletter sign-up, not part of a report.
_NEWSLETTER = re.compile(r"<footer>\s*<p>Stay current on everything GX.*?</footer>", re.DOTALL)


def _without_inline_scripts(text: str, page: Path) -> str:
    """`text` with each inline script and event handler moved into a script file next to `page`.

    A script becomes `<script src>` of a file of its own, in its place, so scripts still run
    in document order. Each handler attribute becomes a `data-leadnorm-on<event>` marker, bound
    by one file loaded at the end of the body (`this`, `event` and `return false` work as
    inline). Files are named `<page>.inline-<digest>.js` by content, so a rebuilt page never
    gets a stale one from a cache; those of the page's earlier builds are removed.
    """
    written: set[str] = set()

    def script_file(code: str) -> str:
        name = f"{page.stem}.inline-{hashlib.sha256(code.encode()).hexdigest()[:16]}.js"
        if name not in written:
            (page.parent / name).write_text(code, encoding="utf-8")
            written.add(name)
        return name

    def script(match: re.Match) -> str:
        attrs = match["attrs"]
        kind = _SCRIPT_TYPE.search(attrs)
        if _SCRIPT_SRC.search(attrs) or (kind and kind["type"].lower() not in _JS_TYPES):
            return match.group()
        return f'<script{attrs} src="{script_file(match["code"])}"></script>'

    bindings = []

    def handler(attr: re.Match) -> str:
        event = attr["event"].lower()
        code = html.unescape(attr["code"] if attr["quote"] else attr["bare"])
        bindings.append(_BINDING.format(event=event, n=len(bindings), code=code))
        return f' data-leadnorm-on{event}="{len(bindings) - 1}"'

    def tag(match: re.Match) -> str:
        return _EVENT_HANDLER.sub(handler, match.group())

    # scripts first: once in files, a handler in a script's text (markup it writes) is left alone
    rewritten = _TAG.sub(tag, _INLINE_SCRIPT.sub(script, text))
    if bindings:
        loader = f'<script src="{script_file("".join(bindings))}"></script>\n'
        end = _BODY_END.search(rewritten)
        rewritten = rewritten[: end.start()] + loader + rewritten[end.start() :] if end else rewritten + loader
    if rewritten != text:
        earlier = re.compile(re.escape(page.stem) + r"\.inline-[0-9a-f]{16}\.js")
        for old in page.parent.iterdir():
            if earlier.fullmatch(old.name) and old.name not in written:
                old.unlink()
    return rewritten


def _rewrite(text: str, page: Path, docs_dir: Path, local: dict[str, Path]) -> str:
    def reference(url: str, *, anchor: bool) -> str | None:
        """The local URL for `url`, `url` itself when it needs none, None to drop it."""
        if _REMOTE.match(url):
            target = _local_target(url, local)
            if target is None:
                if not anchor:
                    log.warning("Data Docs: dropped remote asset %s from %s", url, page)
                return None
            return os.path.relpath(docs_dir / target, page.parent)
        return _repaired(url, page, docs_dir)

    def tag(match: re.Match) -> str:
        anchor = match["name"].lower() == "a"

        def attribute(attr: re.Match) -> str:
            url = reference(attr["url"], anchor=anchor)
            if url is None:
                return ""
            return f" {attr['attr']}={attr['quote']}{url}{attr['quote']}"

        rewritten = _LINK_ATTRIBUTE.sub(attribute, match.group())
        return _SRI_ATTRIBUTE.sub("", rewritten) if rewritten != match.group() else rewritten

    def css_url(match: re.Match) -> str:
        url = reference(match["url"], anchor=False)
        return "none" if url is None else f"url({match['quote']}{url}{match['quote']})"

    return _CSS_URL.sub(css_url, _TAG.sub(tag, text))


def _local_target(url: str, local: dict[str, Path]) -> Path | None:
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    if url in local:
        return local[url]
    if GX_IMAGES_HOST in url:  # GX's logos (light and dark): the light one it ships
        return GX_LOGO
    return None


def _repaired(url: str, page: Path, docs_dir: Path) -> str:
    """GX gets the depth of some `static/` links wrong (the favicon on result pages)."""
    if url.startswith(("#", "data:", "/")) or "static/" not in url:
        return url
    path = url.split("#")[0].split("?")[0]
    if (page.parent / path).exists():
        return url
    target = docs_dir / path[path.index("static/") :]
    return os.path.relpath(target, page.parent) if target.exists() else url


class _QuietHandler(SimpleHTTPRequestHandler):
    def end_headers(self):
        """The policy the pages are made for: a page that breaks under it breaks here too."""
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format, *args):  # the base class names it `format`
        log.debug("reports server: " + format, *args)


def serve(reports_dir: Path, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve `reports_dir` on 127.0.0.1 from a daemon thread; returns (server, Data Docs URL).

    `port` 0 picks a free port. Stop it with `server.shutdown()`.
    """
    handler = functools.partial(_QuietHandler, directory=str(reports_dir))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, name="leadnorm-reports", daemon=True).start()
    host, bound_port = server.server_address[:2]
    return server, f"http://{host}:{bound_port}/data_docs/index.html"
