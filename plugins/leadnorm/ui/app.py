"""The seed application's pages and API inside Airflow's API server (a FastAPI app the plugin
`plugins/leadnorm_ui.py` mounts under /leadnorm).

Every route requires what Airflow's own API requires: a valid Airflow token, as a bearer
header or the UI's session cookie (`GetUserDep`); without one the answer is 401 or 403 and
holds no lead data. A user whom the auth manager does not allow to edit DAGs sees personal
fields masked (`leadnorm.analysis.mask_personal`) and can search titles only. Pages are
rendered on the server with no script, and every asset is served from here: the UI works
with no network.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, BinaryIO

import httpx
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep
from bson import ObjectId, json_util
from fastapi import Depends, FastAPI, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from leadnorm.analysis import mask_personal
from leadnorm.config import inbox_dir, reports_dir
from leadnorm.contract import FIT_TIERS, STATUSES
from leadnorm.steps.runstore import private_dir
from leadnorm.ui.queries import BadFilter, LeadFilter, find_lead, find_leads

HERE = Path(__file__).parent
TEMPLATES = Environment(loader=PackageLoader("leadnorm.ui"), autoescape=select_autoescape(default=True))
TEMPLATES.filters["day"] = lambda value: value.strftime("%Y-%m-%d") if isinstance(value, datetime) else value or ""


async def viewer(user: GetUserDep) -> dict:
    """Who asks, and whether they may see personal data: the permission to edit DAGs."""
    may_edit = get_auth_manager().is_authorized_dag(method="PUT", user=user)
    return {"name": user.get_name(), "show_personal": bool(may_edit)}


Viewer = Annotated[dict, Depends(viewer)]


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
    status: str = "",
    fit_tier: str = "",
    q: str = "",
    limit: Annotated[int, Query()] = 50,
    skip: Annotated[int, Query()] = 0,
) -> LeadFilter:
    try:
        return LeadFilter(status=status, fit_tier=fit_tier, q=q, limit=limit, skip=skip)
    except BadFilter as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


Filter = Annotated[LeadFilter, Depends(lead_filter)]


def create_app() -> FastAPI:
    app = FastAPI(title="leadnorm", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/leads")
    async def api_leads(who: Viewer, wanted: Filter) -> JSONResponse:
        """The seed's GET /api/leads: a page of joined leads."""
        page = await asyncio.to_thread(find_leads, database(), wanted, show_personal=who["show_personal"])
        leads = mask_personal(page.leads, show_personal=who["show_personal"])
        return JSONResponse({"leads": plain(leads), "has_more": page.has_more, "skip": wanted.skip})

    @app.get("/api/leads/{lead_id}")
    async def api_lead(who: Viewer, lead_id: str) -> JSONResponse:
        """The seed's GET /api/leads/[id]: one joined lead."""
        found = await asyncio.to_thread(find_lead, database(), lead_id)
        if found is None:
            raise HTTPException(status_code=404, detail="no such lead")
        return JSONResponse(plain(mask_personal(found, show_personal=who["show_personal"])))

    @app.get("/leads", response_class=HTMLResponse)
    async def leads_page(who: Viewer, wanted: Filter) -> str:
        page = await asyncio.to_thread(find_leads, database(), wanted, show_personal=who["show_personal"])
        return TEMPLATES.get_template("leads.html").render(
            leads=mask_personal(page.leads, show_personal=who["show_personal"]),
            has_more=page.has_more,
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
        return TEMPLATES.get_template("lead.html").render(
            lead=mask_personal(found, show_personal=who["show_personal"]), who=who, root="../"
        )

    @app.post("/leads/upload", response_class=HTMLResponse)
    async def upload(who: Viewer, request: Request, file: UploadFile) -> str:
        """The seed's POST /api/leads/upload: store the CSV in the inbox, then trigger
        `leads_csv_ingest` through Airflow's API with the user's own credentials (so Airflow
        decides whether they may)."""
        if not who["show_personal"]:
            raise HTTPException(status_code=403, detail="uploading leads needs the permission to edit DAGs")
        stored = await asyncio.to_thread(store_upload, file.file, file.filename or "upload.csv")
        run = await trigger_ingest(request, stored)
        return TEMPLATES.get_template("uploaded.html").render(
            who=who, root="../", file=file.filename, size=stored.stat().st_size, run=run, dag_id=INGEST_DAG
        )

    @app.get("/runs/{dag_id}/{run_id}/docs", response_class=HTMLResponse)
    async def run_docs(who: Viewer, dag_id: str, run_id: str) -> str:
        """The Data Docs pages of one DAG run's gate (the run folder's name is its run id)."""
        return TEMPLATES.get_template("run_docs.html").render(
            dag_id=dag_id, run_id=run_id, pages=run_validation_pages(data_docs_dir(), run_id), who=who, root="../../../"
        )

    @app.get("/docs/{path:path}")
    async def data_docs(who: Viewer, path: str) -> FileResponse:
        """The Data Docs site (masked when published), file by file, never outside its folder."""
        return FileResponse(inside(data_docs_dir(), path or "index.html"))

    @app.get("/static/{path:path}")
    async def static(who: Viewer, path: str) -> FileResponse:
        return FileResponse(inside(HERE / "static", path))

    return app


INGEST_DAG = "leads_csv_ingest"


def store_upload(stream: BinaryIO, filename: str) -> Path:
    """The upload as an owner-only file of the inbox, copied in chunks; named by time and a
    safe form of the user's file name."""
    inbox = private_dir(inbox_dir())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[-80:] or "upload.csv"
    path = inbox / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{safe}"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        shutil.copyfileobj(stream, out, length=1 << 20)
    return path


async def trigger_ingest(request: Request, path: Path) -> dict:
    """Unpause leads_csv_ingest and POST a run of it, on this same API server, as the user."""
    headers = {}
    if authorization := request.headers.get("authorization"):
        headers["Authorization"] = authorization
    cookies = {name: value for name, value in request.cookies.items() if name == "_token"}
    base = f"{request.url.scheme}://{request.url.netloc}"
    async with httpx.AsyncClient(base_url=base, headers=headers, cookies=cookies, timeout=30) as client:
        # a new DAG starts paused, and a run of a paused DAG waits for ever: the upload means "run it"
        answer = await client.patch(f"/api/v2/dags/{INGEST_DAG}", json={"is_paused": False})
        if answer.status_code < 300:
            answer = await client.post(
                f"/api/v2/dags/{INGEST_DAG}/dagRuns", json={"logical_date": None, "conf": {"path": str(path)}}
            )
    if answer.status_code >= 300:
        path.unlink(missing_ok=True)
        detail = (
            answer.json().get("detail") if answer.headers.get("content-type", "").startswith("application/json") else ""
        )
        raise HTTPException(status_code=answer.status_code, detail=f"Airflow refused to trigger {INGEST_DAG}: {detail}")
    return answer.json()


def data_docs_dir() -> Path:
    return reports_dir() / "data_docs"


def inside(root: Path, path: str) -> Path:
    """`root / path` when that is a file under `root`, else 404: no `..`, no symlink out."""
    root = root.resolve()
    target = (root / path).resolve()
    if target.is_dir():
        target = target / "index.html"
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return target


def run_validation_pages(docs: Path, run_id: str) -> list[dict]:
    """The validation result pages of a run, by suite: GX files them under the run's name."""
    name = run_id.replace(":", "_").replace("+", "_")  # as `RunFolder.new` names the run folder
    found = []
    for page in sorted((docs / "validations").glob(f"*/{glob_literal(name)}/*/*.html")) if docs.exists() else ():
        suite = page.relative_to(docs / "validations").parts[0]
        found.append({"suite": suite, "href": page.relative_to(docs).as_posix()})
    return found


def glob_literal(text: str) -> str:
    """`text` matched literally by glob (a run id may hold `[`)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
