"""Delete what the current source no longer produces, once every collection is loaded.

The load step reports, per collection, the stored documents its frame no longer has (a
signal removed upstream, a persona merged into another, a lead whose source went). They
go, children before parents, so no reference dangles for longer than the run, with the
exceptions the contract makes: normalized leads whose nested source was deleted by cleanup
stay with everything that hangs on them, so does what hangs on the application's own leads
(research written through its write path), and a company or persona stays while a remaining
lead (an uploaded one, say) still references it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.database import Database

from leadnorm.contract import CLEANED_COLLECTION, NESTED_FIELD, SOURCE_COLLECTION
from leadnorm.mongo import in_chunks
from leadnorm.schema import COLLECTIONS
from leadnorm.steps.scope import leads_referencing

# Children first: a document is deleted before what it references.
PRUNE_ORDER = (
    "citations",
    "icp_factor_breakdowns",
    "detected_signals",
    "icp_scores",
    "research_runs",
    "technographics",
    "leads",
    "companies",
    "personas",
)


def _ids_where(db: Database, collection: str, ids: Iterable, field: str, values: set) -> set:
    """Those of `ids` in `collection` whose `field` is one of `values`."""
    if not values:
        return set()
    found = set()
    for part in in_chunks(ids):
        query = {"_id": {"$in": part}, field: {"$in": list(values)}}
        found.update(doc["_id"] for doc in db[collection].find(query, {"_id": 1}))
    return found


def kept_stale(db: Database, stale: dict[str, set]) -> dict[str, set]:
    """Of the stale documents, those that must stay (see the module docstring)."""
    stale = {name: set(stale.get(name, ())) for name in COLLECTIONS}
    cleaned = {doc["lead_id"] for doc in db[CLEANED_COLLECTION].find({}, {"lead_id": 1}) if doc.get("lead_id")}
    kept = {"leads": stale["leads"] & cleaned}
    owners = kept["leads"] | _application_leads(db, stale)
    for name in LEAD_LEVEL_OWNED:
        kept[name] = _ids_where(db, name, stale[name], "lead_id", owners)
    kept["citations"] = _ids_where(db, "citations", stale["citations"], "research_run_id", kept["research_runs"])
    kept["icp_factor_breakdowns"] = _ids_where(
        db, "icp_factor_breakdowns", stale["icp_factor_breakdowns"], "icp_score_id", kept["icp_scores"]
    )
    going = stale["leads"] - kept["leads"]
    for name, column in (("companies", "company_id"), ("personas", "persona_id")):
        kept[name] = {lead[column] for lead in leads_referencing(db, column, stale[name]) if lead["_id"] not in going}
    kept["technographics"] = _ids_where(db, "technographics", stale["technographics"], "company_id", kept["companies"])
    return kept


LEAD_LEVEL_OWNED = ("research_runs", "detected_signals", "icp_scores")  # those with a `lead_id`


def _application_leads(db: Database, stale: dict[str, set]) -> set:
    """The application's own leads (`APPLICATION_LEAD`) that stale lead-level documents hang off: their
    research was written through the application's write path, and is its own."""
    owners = set()
    for name in LEAD_LEVEL_OWNED:
        for part in in_chunks(stale[name]):
            owners.update(doc["lead_id"] for doc in db[name].find({"_id": {"$in": part}}, {"lead_id": 1}))
    found = set()
    for part in in_chunks(owners):  # `$exists` beside `$in` makes a server scan: told apart here
        for lead in db[SOURCE_COLLECTION].find({"_id": {"$in": part}}, {NESTED_FIELD: 1, "legacy_lead_id": 1}):
            if NESTED_FIELD not in lead and "legacy_lead_id" not in lead:
                found.add(lead["_id"])
    return found


def prune(db: Database, stale: dict[str, set], *, dry_run: bool = False) -> dict[str, int]:
    """Delete the stale documents that need not stay; returns how many per collection."""
    kept = kept_stale(db, stale)
    deleted = {}
    for name in PRUNE_ORDER:
        doomed = set(stale.get(name, ())) - kept[name]
        deleted[name] = len(doomed)
        if doomed and not dry_run:
            for part in in_chunks(doomed):
                db[name].delete_many({"_id": {"$in": part}})
    return deleted
