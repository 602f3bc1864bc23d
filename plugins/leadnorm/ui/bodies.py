"""The bodies the application's write API takes, read within a size limit and checked with pydantic.

The shapes are the source's (section 1 of the contract): what the legacy application wrote into a
nested lead, messy values included. So the check is of structure, not of values: `research` must be
an object whose known parts are objects (or lists, for signals), an ICP score a number or a
numeric-looking text; a value that cannot be read (a score of "n/a", a date that is no date) is the
write path's to default and report, as the migration does. What fails here gets a 422 naming the
field, and nothing is written.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, ValidationError

BODY_MAX_KB_ENV = "LEADNORM_API_BODY_MAX_KB"
BODY_MAX_KB = 1024  # a research object with its citations and signals is a few KB
Json = dict[str, Any]


class Research(BaseModel):
    """`research` of a nested lead; other fields are data too (kept under `extra`)."""

    model_config = ConfigDict(extra="allow")

    CompanyProfile: Json | None = None
    PersonaProfile: Json | None = None
    DetectedSignals: list[Json | str] | Json | None = None  # older documents: one object
    ResearchMeta: Json | None = None


class Icp(BaseModel):
    """`icp` of a nested lead."""

    model_config = ConfigDict(extra="allow")

    icp_score: float | str | None = None  # older documents: a numeric string
    fit_tier: str | None = None
    score_breakdown: dict[str, Json | float | str] | None = None
    scored_at: str | None = None
    model_version: str | None = None
    rationale: str | None = None


class ResearchBody(BaseModel):
    """`POST {prefix}/api/leads/{id}/research`."""

    model_config = ConfigDict(extra="forbid")

    research: Research
    icp: Icp | None = None


class LeadBody(BaseModel):
    """`POST {prefix}/api/leads`: the fields of one CSV row."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    name: str = ""
    title: str = ""
    company: str = ""
    email: str = ""
    linkedin_url: str | None = None
    phone: str | None = None
    domain: str | None = None

    def fields(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


def body_limit() -> int:
    """Bytes a body may have: `LEADNORM_API_BODY_MAX_KB` (1024) KB."""
    try:
        kilobytes = int(os.environ.get(BODY_MAX_KB_ENV, BODY_MAX_KB))
    except ValueError:
        kilobytes = 0
    return max(kilobytes, 0) * 1024


async def read_body(request: Request, model: type[BaseModel]) -> tuple[BaseModel, Json]:
    """The request's JSON body as `model`, and as it was sent: 413 past the size limit (announced or
    not), 400 for what is no JSON object, 422 naming the first field in error."""
    limit = body_limit()
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise HTTPException(status_code=413, detail=f"the body is larger than {limit // 1024} KB")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise HTTPException(status_code=413, detail=f"the body is larger than {limit // 1024} KB")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status_code=400, detail="the body is no JSON") from None
    if not isinstance(raw, dict):
        raise HTTPException(status_code=400, detail="the body is no JSON object")
    try:
        return model.model_validate(raw), raw
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise HTTPException(status_code=422, detail=f"{where}: {error['msg']}") from None
