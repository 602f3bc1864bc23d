"""The joined lead: one lead (normalized or uploaded) with everything that hangs on it, as the seed app's
GET /api/leads and /api/leads/[id] serve it.

Each view is ONE aggregation, run entirely by the server. Every join is a `$lookup` by
`localField`/`foreignField` on a field the contract indexes (companies._id, personas._id,
technographics.company_id, detected_signals.lead_id, research_runs.lead_id,
citations.research_run_id, icp_scores.lead_id, icp_factor_breakdowns.icp_score_id): the form
in which a real MongoDB (5.0+, for the sub-pipelines that sort and nest) finds each joined row
through the foreign index, and the only form in which the embedded server does (its
`let`/`$expr` lookups scan the foreign collection). Citations and factor breakdowns are nested
by `$lookup`s inside the research and ICP lookups; a to-one join is a list the server turns
into its first element or null. No `$project` is used: the joined documents are returned
whole. Nothing is left to the client.

Shape: the lead's own fields, plus `company`, `persona`, `research` (with `citations`) and
`icp` (with `factor_breakdowns`), each a document or None, and `technographics` (of its
company, by name) and `detected_signals` (by detection time), each a list, `[]` when empty.
"""

from __future__ import annotations

from pymongo.database import Database

from leadnorm.contract import SOURCE_COLLECTION

# The application's leads share `leads` with the nested source: the normalized ones (with a
# `legacy_lead_id`) and the uploaded ones (status `uploaded`, from a CSV). A nested lead may
# hold any field, those too, but always has `lead_input`.
NOT_NESTED = {"lead_input": {"$exists": False}}


def lookup(collection: str, local: str, foreign: str, into: str, *pipeline: dict) -> dict:
    spec = {"from": collection, "localField": local, "foreignField": foreign, "as": into}
    if pipeline:
        spec["pipeline"] = list(pipeline)
    return {"$lookup": spec}


def _first_or_null(field: str) -> dict:
    """A to-one join: `$first` of an empty list is missing, which would drop the field; null keeps it."""
    return {"$ifNull": [{"$first": f"${field}"}, None]}


def lead_joins() -> list[dict]:
    """The stages that turn leads into joined leads; reusable after any `$match`."""
    return [
        lookup("companies", "company_id", "_id", "company"),
        lookup("personas", "persona_id", "_id", "persona"),
        lookup("technographics", "company_id", "company_id", "technographics", {"$sort": {"name": 1}}),
        lookup("detected_signals", "_id", "lead_id", "detected_signals", {"$sort": {"detected_at": 1, "_id": 1}}),
        lookup(
            "research_runs",
            "_id",
            "lead_id",
            "research",
            lookup("citations", "_id", "research_run_id", "citations", {"$sort": {"_id": 1}}),
        ),
        lookup(
            "icp_scores",
            "_id",
            "lead_id",
            "icp",
            lookup("icp_factor_breakdowns", "_id", "icp_score_id", "factor_breakdowns", {"$sort": {"category": 1}}),
        ),
        {
            "$addFields": {
                "company": _first_or_null("company"),
                "persona": _first_or_null("persona"),
                "research": _first_or_null("research"),
                "icp": _first_or_null("icp"),
            }
        },
    ]


def application_leads(match: dict | None = None) -> dict:
    """`match` restricted to the application's leads (normalized and uploaded). A flat filter
    with `match` first where the keys allow it: the embedded server's planner finds `_id`
    that way and scans under `$and`."""
    if match and match.keys() & NOT_NESTED.keys():
        return {"$and": [match, NOT_NESTED]}
    return {**(match or {}), **NOT_NESTED}


def lead_pipeline(match: dict | None = None, *, skip: int = 0, limit: int | None = None) -> list[dict]:
    """Joined leads matching `match` (on the lead's own fields), by `_id`.

    The page is cut before the joins, so only the leads returned are joined."""
    if skip < 0 or (limit is not None and limit < 1):
        raise ValueError(f"skip must be >= 0 and limit >= 1, got skip={skip}, limit={limit}")
    page = [{"$skip": skip}] if skip else []
    if limit is not None:
        page.append({"$limit": limit})
    return [{"$match": application_leads(match)}, {"$sort": {"_id": 1}}, *page, *lead_joins()]


def lead(db: Database, lead_id) -> dict | None:
    """The joined lead (normalized or uploaded) with this `_id`, or None (a nested lead's id gives None too)."""
    return next(db[SOURCE_COLLECTION].aggregate(lead_pipeline({"_id": lead_id}, limit=1)), None)


def leads(db: Database, filter: dict | None = None, limit: int = 50, skip: int = 0) -> list[dict]:
    """One page of joined leads (normalized and uploaded), filtered on the lead's own fields (`status`,
    `company_id`, ...; a joined field such as `company.name` matches nothing), by `_id`."""
    return list(db[SOURCE_COLLECTION].aggregate(lead_pipeline(filter, skip=skip, limit=limit)))
