"""The seed application's pages and API inside Airflow's API server (a FastAPI app the plugin
`leadnorm.ui.plugin` mounts under /leadnorm).

Every route requires what Airflow's own API requires: a valid Airflow token, as a bearer
header or the UI's session cookie (`GetUserDep`); without one the answer is 401 or 403 and
holds no lead data. A user whom the auth manager does not allow to edit DAGs sees only the
fields `leadnorm.ui.allowlist` names in clear, every other value masked, and can search
titles only. A request that changes something must come from Airflow's own origin, every
response carries security headers (`leadnorm.ui.security`), and an upload is streamed into
the inbox within `LEADNORM_UPLOAD_MAX_MB` (`leadnorm.ui.upload`). The write API (research and ICP
scores, one lead from a CSV row's fields) is for users who may edit DAGs; its JSON bodies are read
within `LEADNORM_API_BODY_MAX_KB` and checked with pydantic (`leadnorm.ui.bodies`), and it never takes
a client's word for the id of a company or persona. Every parameter is bounded:
malformed input gets a 4xx, never a 500. Pages are rendered on the server with no script,
and every asset is served from here: the UI works with no network.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import httpx
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep
from bson import ObjectId, json_util
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from leadnorm.airflow_support import api_base_url
from leadnorm.config import inbox_dir, reports_dir
from leadnorm.contract import FIT_TIERS, STATUSES
from leadnorm.errors import LeadNotFound, ResearchRefused
from leadnorm.quality.datadocs import CONTENT_SECURITY_POLICY as DATA_DOCS_POLICY
from leadnorm.steps.ingest import ingest_one
from leadnorm.steps.research import write_research
from leadnorm.ui.allowlist import for_viewer
from leadnorm.ui.bodies import LeadBody, ResearchBody, read_body
from leadnorm.ui.queries import BadFilter, LeadFilter, find_lead, find_leads, whole_number
from leadnorm.ui.runs import run_outcome
from leadnorm.ui.security import RefuseCrossSite, SecuredApp
from leadnorm.ui.upload import UploadRefused, receive_upload

HERE = Path(__file__).parent
TEMPLATES = Environment(loader=PackageLoader("leadnorm.ui"), autoescape=select_autoescape(default=True))
TEMPLATES.filters["day"] = lambda value: value.strftime("%Y-%m-%d") if isinstance(value, datetime) else value or ""


async def viewer(user: GetUserDep) -> dict:
    """Who asks, and whether they may see personal data: the permission to edit DAGs."""
    may_edit = get_auth_manager().is_authorized_dag(method="PUT", user=user)
    return {"name": user.get_name(), "show_personal": bool(may_edit)}


Viewer = Annotated[dict, Depends(viewer)]

MAX_PATH = 1024  # characters of a file path under /docs or /static
MAX_RUN_KEY = 250  # characters of a DAG id or run id, as Airflow's database stores them


def as_seen_by(who: dict, leads):
    """Joined leads as this user may see them: whole for an editor, by the allowlist else."""
    return leads if who["show_personal"] else for_viewer(leads)


@functools.cache
def database():
    """One client per API server process (a hook per request would open a client per request);
    a changed mongo_default takes effect when the API server restarts."""
    from leadnorm.airflow_support import mongo_database

    return mongo_database()


def plain(value):
    """A document as plain JSON: ObjectIds as hex strings, dates as ISO 8601, other BSON types
    (a legacy id may be a Decimal128 or a UUID) in MongoDB's relaxed Extended JSON."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


def lead_filter(
    status: str = "", fit_tier: str = "", q: str = "", sort: str = "", limit: str = "50", skip: str = "0"
) -> LeadFilter:
    """The filter of the query string, or 400 naming the parameter in error (numbers are read
    here, so that a malformed one gets the same one-line 400 as an out-of-range one)."""
    try:
        return LeadFilter(
            status=status,
            fit_tier=fit_tier,
            q=q,
            sort=sort,
            limit=whole_number("limit", limit),
            skip=whole_number("skip", skip),
        )
    except BadFilter as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


Filter = Annotated[LeadFilter, Depends(lead_filter)]
DEFAULTED_HEADER = "X-Leadnorm-Defaulted"
SORT_LABELS = {
    "": "added (oldest first)",
    "icp_score": "ICP score",
    "fit_tier": "fit tier",
    "status": "status",
    "company": "company",
}


def create_app() -> FastAPI:
    app = SecuredApp(title="leadnorm", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(RefuseCrossSite)

    @app.get("/api/leads")
    async def api_leads(who: Viewer, wanted: Filter) -> JSONResponse:
        """The seed's GET /api/leads: a page of joined leads."""
        page = await asyncio.to_thread(find_leads, database(), wanted, show_personal=who["show_personal"])
        leads = as_seen_by(who, page.leads)
        return JSONResponse(
            {"leads": plain(leads), "has_more": page.has_more, "skip": wanted.skip, "total": page.total}
        )

    @app.get("/api/leads/{lead_id}")
    async def api_lead(who: Viewer, lead_id: str) -> JSONResponse:
        """The seed's GET /api/leads/[id]: one joined lead."""
        found = await asyncio.to_thread(find_lead, database(), lead_id)
        if found is None:
            raise HTTPException(status_code=404, detail="no such lead")
        return JSONResponse(plain(as_seen_by(who, found)))

    @app.post("/api/leads/{lead_id}/research")
    async def post_research(who: Viewer, lead_id: str, request: Request) -> JSONResponse:
        """The design's POST /api/leads/refresh, for one lead: its new research and ICP score saved
        into the normalized collections (`leadnorm.steps.research`); the joined lead as the answer."""
        editor_only(who, "writing research")
        lead = object_id(lead_id)
        _, raw = await read_body(request, ResearchBody)  # checked; the values go on as they were sent
        try:
            written = await asyncio.to_thread(write_research, database(), lead, raw["research"], raw.get("icp"))
        except LeadNotFound:
            raise HTTPException(status_code=404, detail="no such lead") from None
        except ResearchRefused as refused:
            raise HTTPException(status_code=422, detail=str(refused)) from None
        # the body is the joined lead, as GET api/leads/{id}; what could not be read and was given
        # its default is said beside it, field by field (`icp_scores.icp_score=1`)
        defaulted = ", ".join(f"{name}={count}" for name, count in written.warnings.items())
        headers = {DEFAULTED_HEADER: defaulted} if defaulted else {}
        return JSONResponse(plain(await asyncio.to_thread(find_lead, database(), lead_id)), headers=headers)

    @app.post("/api/leads")
    async def post_lead(who: Viewer, request: Request) -> JSONResponse:
        """The design's upload, for one lead: the fields of a CSV row, found or created by the same
        rules (`leadnorm.steps.ingest.ingest_one`); the joined lead as the answer (201 when created)."""
        editor_only(who, "creating leads")
        body, _ = await read_body(request, LeadBody)
        created, result = await asyncio.to_thread(ingest_one, database(), body.fields())
        if created is None:
            raise HTTPException(status_code=422, detail=result.rejected[0].reason)
        found = await asyncio.to_thread(find_lead, database(), str(created))
        return JSONResponse(plain(found), status_code=201 if result.leads_created else 200)

    @app.get("/leads", response_class=HTMLResponse)
    async def leads_page(who: Viewer, wanted: Filter) -> str:
        page = await asyncio.to_thread(find_leads, database(), wanted, show_personal=who["show_personal"])
        return TEMPLATES.get_template("leads.html").render(
            leads=as_seen_by(who, page.leads),
            has_more=page.has_more,
            total=page.total,
            sorts=SORT_LABELS,
            wanted=wanted,
            statuses=STATUSES,
            fit_tiers=FIT_TIERS,
            who=who,
            root="",
        )

    @app.get("/leads/{lead_id}", response_class=HTMLResponse)
    async def lead_page(who: Viewer, lead_id: str) -> str:
        found = await asyncio.to_thread(find_lead, database(), lead_id)
        if found is None:
            raise HTTPException(status_code=404, detail="no such lead")
        return TEMPLATES.get_template("lead.html").render(lead=as_seen_by(who, found), who=who, root="../")

    @app.post("/leads/upload", response_class=HTMLResponse)
    async def upload(who: Viewer, request: Request) -> str:
        """The seed's POST /api/leads/upload: store the CSV in the inbox, then trigger
        `leads_csv_ingest` through Airflow's API with the user's own credentials (so Airflow
        decides whether they may). The body is read here, not by FastAPI (`leadnorm.ui.upload`)."""
        editor_only(who, "uploading leads")
        try:
            received = await receive_upload(request, inbox_dir())
        except UploadRefused as refused:
            raise HTTPException(status_code=refused.status, detail=refused.reason) from None
        run = await trigger_ingest(request, received.path)
        return TEMPLATES.get_template("uploaded.html").render(
            who=who, root="../", file=received.filename, size=received.size, run=run, dag_id=INGEST_DAG
        )

    @app.get("/runs/{dag_id}/{run_id}/docs", response_class=HTMLResponse)
    async def run_page(who: Viewer, dag_id: str, run_id: str) -> str:
        """A DAG run's tab: its summary (what it wrote, or why it wrote nothing) and its gate,
        suite by suite with the severity of what failed, linking the Data Docs pages."""
        if len(dag_id) > MAX_RUN_KEY or len(run_id) > MAX_RUN_KEY:
            raise HTTPException(status_code=404, detail="no such run")
        outcome = await asyncio.to_thread(run_outcome, reports_dir(), dag_id, run_id)
        return TEMPLATES.get_template("run.html").render(run=outcome, who=who, root="../../../")

    @app.get("/docs/{path:path}")
    async def data_docs(who: Viewer, path: str) -> FileResponse:
        """The Data Docs site (masked when published), file by file, never outside its folder,
        under the policy its pages are made for (inline styles allowed, no inline script)."""
        return FileResponse(
            inside(data_docs_dir(), path or "index.html"), headers={"Content-Security-Policy": DATA_DOCS_POLICY}
        )

    @app.get("/static/{path:path}")
    async def static(who: Viewer, path: str) -> FileResponse:
        return FileResponse(inside(HERE / "static", path))

    return app


INGEST_DAG = "leads_csv_ingest"


def editor_only(who: dict, what: str) -> None:
    """403 unless the user may edit DAGs: what changes lead data is for them alone."""
    if not who["show_personal"]:
        raise HTTPException(status_code=403, detail=f"{what} needs the permission to edit DAGs")


def object_id(text: str) -> ObjectId:
    """A lead id of the path, or 404: no lead has an id that is no ObjectId."""
    if not ObjectId.is_valid(text):
        raise HTTPException(status_code=404, detail="no such lead")
    return ObjectId(text)


async def trigger_ingest(request: Request, path: Path) -> dict:
    """Unpause leads_csv_ingest and POST a run of it, as the user, on Airflow's API server at
    its configured address (`api_base_url`): the request's Host header is the caller's to
    choose, and the user's credentials must go nowhere else. No redirect is followed."""
    headers = {}
    if authorization := request.headers.get("authorization"):
        headers["Authorization"] = authorization
    cookies = {name: value for name, value in request.cookies.items() if name == "_token"}
    try:
        async with httpx.AsyncClient(base_url=api_base_url(), headers=headers, cookies=cookies, timeout=30) as client:
            # a new DAG starts paused, and a run of a paused DAG waits for ever: the upload means "run it"
            answer = await client.patch(f"api/v2/dags/{INGEST_DAG}", json={"is_paused": False})
            if answer.status_code < 300:
                answer = await client.post(
                    f"api/v2/dags/{INGEST_DAG}/dagRuns", json={"logical_date": None, "conf": {"path": str(path)}}
                )
    except httpx.HTTPError:
        path.unlink(missing_ok=True)
        raise HTTPException(status_code=502, detail="Airflow's API did not answer at [api] base_url") from None
    if answer.status_code >= 300:
        path.unlink(missing_ok=True)
        raise HTTPException(
            status_code=answer.status_code, detail=f"Airflow refused to trigger {INGEST_DAG}: {airflow_detail(answer)}"
        )
    return answer.json()


def airflow_detail(answer: httpx.Response) -> str:
    """The `detail` of an Airflow API error, "" when it has none."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


def data_docs_dir() -> Path:
    return reports_dir() / "data_docs"


def inside(root: Path, path: str) -> Path:
    """`root / path` when that is a file under `root`, else 404: no `..`, no symlink out, and
    a path the file system cannot take (a NUL, a name too long) is simply not there."""
    if len(path) > MAX_PATH or "\x00" in path:
        raise HTTPException(status_code=404, detail="not found")
    root = root.resolve()
    try:
        target = (root / path).resolve()
        if target.is_dir():
            target = target / "index.html"
        found = target.is_relative_to(root) and target.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise HTTPException(status_code=404, detail="not found")
    return target
