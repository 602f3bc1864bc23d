"""What the Leads pages and API ask of MongoDB: a page of joined leads under the seed app's
filters (`status`, `fit_tier`, `q`) in the order asked (`sort`), how many match, and one joined lead.

`status` and `q` are fields of the lead; `fit_tier` lives on its ICP score, so it is resolved
first to the leads that carry it (the `fit_tier` index), in `_id` order, and the page is cut
from those. Sorting by a field of the lead's ICP score or company (`icp_score`, `fit_tier`,
`company`) joins that one document to every matching lead before the page is cut (one pass over
the matching leads, each join through an index); leads without the field come last. Only the
leads of the page are joined whole (`leadnorm.views`). Each joined lead says where it comes from
(`origin`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.database import Database

from leadnorm.contract import FIT_TIERS, SOURCE_COLLECTION, STATUSES
from leadnorm.mongo import in_chunks
from leadnorm.steps.ingest import API_SOURCE
from leadnorm.views import application_leads, lead, lead_pipeline, lookup

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


# sort -> (the field sorted on, after the join it needs; its direction; that join's stages)
SORTS: dict[str, tuple[str, int, list[dict]]] = {
    "": ("_id", 1, []),
    "icp_score": ("icp.icp_score", -1, [lookup("icp_scores", "_id", "lead_id", "icp")]),
    "fit_tier": ("icp.fit_tier", 1, [lookup("icp_scores", "_id", "lead_id", "icp")]),
    "status": ("status", 1, []),
    "company": ("company.name", 1, [lookup("companies", "company_id", "_id", "company")]),
}
ORIGINS = ("migrated", "uploaded", "created through the API", "written by the application")


@dataclass(frozen=True)
class LeadFilter:
    status: str = ""
    fit_tier: str = ""
    q: str = ""
    sort: str = ""
    limit: int = 50
    skip: int = 0

    def __post_init__(self):
        if self.sort not in SORTS:
            raise BadFilter(f"sort must be one of {', '.join(name for name in SORTS if name)}")
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
    total: int  # leads matching the filter


def find_leads(db: Database, wanted: LeadFilter, *, show_personal: bool) -> LeadPage:
    """One page of joined leads in the order asked, whether another page follows, how many match."""
    match = wanted.match(show_personal)
    collection = db[SOURCE_COLLECTION]
    if wanted.fit_tier:  # the leads of the tier, in `_id` order, 100 at a time
        tiered = sorted(
            {score["lead_id"] for score in db.icp_scores.find({"fit_tier": wanted.fit_tier}, {"lead_id": 1})}, key=str
        )
        parts = [application_leads({**match, "_id": {"$in": part}}) for part in in_chunks(tiered)]
    else:
        parts = [application_leads(match)]
    counts = [collection.count_documents(part) for part in parts]
    order = _sorted_ids if wanted.sort else _ids_in_order
    ids = order(collection, parts, counts, wanted)
    page = ids[: wanted.limit]
    joined = {lead["_id"]: lead for lead in collection.aggregate(lead_pipeline({"_id": {"$in": page}}))} if page else {}
    return LeadPage([with_origin(joined[i]) for i in page if i in joined], len(ids) > wanted.limit, sum(counts))


def _ids_in_order(collection, parts: list[dict], counts: list[int], wanted: LeadFilter) -> list:
    """The ids of the page (and one more) by `_id`: parts skipped whole by their counts."""
    ids, to_skip = [], wanted.skip
    for part, count in zip(parts, counts):
        if to_skip >= count:
            to_skip -= count
            continue
        found = collection.find(part, {"_id": 1}, sort=[("_id", 1)], skip=to_skip, limit=wanted.limit + 1 - len(ids))
        ids += [lead["_id"] for lead in found]
        to_skip = 0
        if len(ids) > wanted.limit:
            break
    return ids


def _sorted_ids(collection, parts: list[dict], counts: list[int], wanted: LeadFilter) -> list:
    """The ids of the page (and one more) in `wanted.sort`'s order, then `_id`; leads without the
    sorted field (or with it empty) last. The parts' heads are merged by the same order."""
    field, direction, joins = SORTS[wanted.sort]
    joined, _, name = field.partition(".")
    # the joined list's first document, then its field: the embedded server resolves no path through a list
    first = [{"$addFields": {joined: {"$first": f"${joined}"}}}] if name else []
    rows = []
    for part, count in zip(parts, counts):
        if count:
            stages = [
                {"$match": part},
                *joins,
                *first,
                {"$project": {"_id": 1, "key": {"$ifNull": [f"${field}", ""]}}},
                {"$addFields": {"missing": {"$cond": [{"$eq": ["$key", ""]}, 1, 0]}}},
                {"$sort": {"missing": 1, "key": direction, "_id": 1}},
                {"$limit": wanted.skip + wanted.limit + 1},
            ]
            rows += collection.aggregate(stages)
    rows.sort(key=lambda row: str(row["_id"]))  # ObjectIds: their text sorts as they do
    present = sorted((r for r in rows if not r["missing"]), key=lambda r: r["key"], reverse=direction < 0)
    ordered = present + [r for r in rows if r["missing"]]  # stable: `_id` order within equal keys
    return [row["_id"] for row in ordered[wanted.skip : wanted.skip + wanted.limit + 1]]


def with_origin(lead: dict) -> dict:
    """The joined lead with `origin`: migrated (it has a legacy id), written by the application
    (its research came through the write API), created through the API, or uploaded (a CSV)."""
    extra = lead.get("extra") or {}
    if lead.get("legacy_lead_id") is not None:
        lead["origin"] = ORIGINS[0]
    elif "application" in extra:
        lead["origin"] = ORIGINS[3]
    elif (extra.get("upload") or {}).get("file") == API_SOURCE:
        lead["origin"] = ORIGINS[2]
    else:
        lead["origin"] = ORIGINS[1]
    return lead


def find_lead(db: Database, lead_id: str) -> dict | None:
    """The joined lead with this id (24 hex digits), or None."""
    try:
        found = lead(db, ObjectId(lead_id))
    except (InvalidId, TypeError):
        return None
    return with_origin(found) if found is not None else None
