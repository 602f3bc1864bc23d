"""What the Leads pages and API ask of MongoDB: a page of joined leads under the seed app's
filters (`status`, `fit_tier`, `q`), and one joined lead.

`status` and `q` are fields of the lead; `fit_tier` lives on its ICP score, so it is resolved
first to the leads that carry it (the `fit_tier` index), in `_id` order, and the page is cut
from those. Only the leads of the page are joined (`leadnorm.views`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.database import Database

from leadnorm.contract import FIT_TIERS, SOURCE_COLLECTION, STATUSES
from leadnorm.mongo import in_chunks
from leadnorm.views import application_leads, lead, lead_pipeline

MAX_LIMIT = 200
MAX_SKIP = 10_000_000  # far beyond any page a person reads, and well within the 64-bit skip MongoDB takes
MAX_TEXT = 200
_COUNT = re.compile(r"[+-]?[0-9]{1,20}")
# Text a viewer who may not see personal data can search: never a name or an email, which
# would let them test whether a person is in the database.
PUBLIC_TEXT_FIELDS = ("title",)
TEXT_FIELDS = ("name", "title", "email")


class BadFilter(ValueError):
    """A filter value the API refuses (HTTP 400), with a message naming it."""


@dataclass(frozen=True)
class LeadFilter:
    status: str = ""
    fit_tier: str = ""
    q: str = ""
    limit: int = 50
    skip: int = 0

    def __post_init__(self):
        if self.status and self.status not in STATUSES:
            raise BadFilter(f"status must be one of {', '.join(STATUSES)}")
        if self.fit_tier and self.fit_tier not in FIT_TIERS:
            raise BadFilter(f"fit_tier must be one of {', '.join(FIT_TIERS)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadFilter(f"limit must be between 1 and {MAX_LIMIT}")
        if not 0 <= self.skip <= MAX_SKIP:
            raise BadFilter(f"skip must be between 0 and {MAX_SKIP}")
        if len(self.q) > MAX_TEXT:
            raise BadFilter(f"q must be at most {MAX_TEXT} characters")
        if "\x00" in self.q:  # MongoDB refuses a pattern holding one
            raise BadFilter("q must not hold a NUL character")

    def match(self, show_personal: bool) -> dict:
        """The lead-level part of the filter."""
        match = {"status": self.status} if self.status else {}
        if self.q:
            pattern = {"$regex": re.escape(self.q.strip()), "$options": "i"}
            fields = TEXT_FIELDS if show_personal else PUBLIC_TEXT_FIELDS
            match["$or"] = [{field: pattern} for field in fields]
        return match


def whole_number(name: str, text: str) -> int:
    """A query parameter's whole number, or BadFilter naming it (its value is not repeated)."""
    if not _COUNT.fullmatch(text.strip()):
        raise BadFilter(f"{name} must be a whole number")
    return int(text)


@dataclass(frozen=True)
class LeadPage:
    leads: list[dict]
    has_more: bool


def find_leads(db: Database, wanted: LeadFilter, *, show_personal: bool) -> LeadPage:
    """One page of joined leads, by `_id`, and whether another page follows."""
    match = wanted.match(show_personal)
    collection = db[SOURCE_COLLECTION]
    if not wanted.fit_tier:
        found = list(collection.aggregate(lead_pipeline(match, skip=wanted.skip, limit=wanted.limit + 1)))
        return LeadPage(found[: wanted.limit], len(found) > wanted.limit)
    tiered = sorted(
        {score["lead_id"] for score in db.icp_scores.find({"fit_tier": wanted.fit_tier}, {"lead_id": 1})}, key=str
    )
    page_ids, skipped = [], 0
    for part in in_chunks(tiered):  # in `_id` order, 100 at a time, until the page is full
        query = application_leads({**match, "_id": {"$in": part}})
        for found in collection.find(query, {"_id": 1}, sort=[("_id", 1)]):
            if skipped < wanted.skip:
                skipped += 1
            else:
                page_ids.append(found["_id"])
        if len(page_ids) > wanted.limit:
            break
    page = page_ids[: wanted.limit]
    joined = list(collection.aggregate(lead_pipeline({"_id": {"$in": page}}))) if page else []
    return LeadPage(joined, len(page_ids) > wanted.limit)


def find_lead(db: Database, lead_id: str) -> dict | None:
    """The joined lead with this id (24 hex digits), or None."""
    try:
        return lead(db, ObjectId(lead_id))
    except (InvalidId, TypeError):
        return None
