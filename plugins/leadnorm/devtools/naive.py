"""The yardstick: the migration the seed's design implies, one lead and one round trip at a time.

Load the nested leads, then per lead `findOrCreate` its company (by domain, else name) and
persona (by email, else LinkedIn URL, else full name), insert every derived document one
by one, and mark the lead: what `Company.findOrCreate` / `Persona.findOrCreate` and the
seed's script do, with the indexes its models declare. Values are cleaned as this project
cleans them (the same split), so the two differ in how they talk to the server, not in
what they compute. Only `leadnorm bench` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from leadnorm.contract import MIGRATED, MIGRATED_LEAD_ID, NESTED_LEAD, SOURCE_COLLECTION
from leadnorm.steps.extract import WITHOUT_MARKERS
from leadnorm.transform.documents import to_documents
from leadnorm.transform.split import split_documents

# The indexes the seed's models declare.
SEED_INDEXES = {
    "companies": [
        IndexModel([("name", ASCENDING)]),
        IndexModel([("domain", ASCENDING)], unique=True, sparse=True),
        IndexModel([("industry", ASCENDING)]),
    ],
    "personas": [
        IndexModel([("full_name", ASCENDING)]),
        IndexModel([("email", ASCENDING)], unique=True, sparse=True),
        IndexModel([("linkedin_url", ASCENDING)], unique=True, sparse=True),
    ],
    SOURCE_COLLECTION: [
        IndexModel([("company_id", ASCENDING)]),
        IndexModel([("persona_id", ASCENDING)]),
        IndexModel([("status", ASCENDING)]),
    ],
}
# Mention fields that are not stored on the company or persona document.
_MENTION_ONLY = {"legacy_lead_id", "recency", "name_key"}
# Documents hanging on a lead, inserted one by one in this order.
_CHILDREN = ("research_runs", "citations", "detected_signals", "icp_scores", "icp_factor_breakdowns")


@dataclass
class NaiveResult:
    migrated: int = 0
    round_trips: int = 0  # one per find_one, insert_one, update_one: what a remote server makes costly


def _find_or_create(db: Database, collection: str, document: dict, lookups: list[str], result: NaiveResult):
    """The seed's findOrCreate: the first lookup field with a value finds; else insert."""
    for field in lookups:
        if document.get(field):
            result.round_trips += 1
            found = db[collection].find_one({field: document[field]}, {"_id": 1})
            if found:
                return found["_id"]
            break
    result.round_trips += 1
    return db[collection].insert_one(document).inserted_id


def naive_migrate(db: Database, limit: int) -> NaiveResult:
    """Migrate the first `limit` nested leads the naive way."""
    for collection, indexes in SEED_INDEXES.items():
        db[collection].create_indexes(indexes)
    leads = list(db[SOURCE_COLLECTION].find(NESTED_LEAD, WITHOUT_MARKERS, sort=[("_id", 1)], limit=limit))
    result = NaiveResult()
    for source in leads:
        mentions = split_documents([source])
        if mentions.leads.empty:
            continue  # rejected
        company = next(to_documents(mentions.company_mentions.drop(columns=list(_MENTION_ONLY))), None)
        persona = next(to_documents(mentions.persona_mentions.drop(columns=list(_MENTION_ONLY))), None)
        company_id = company and _find_or_create(db, "companies", company, ["domain", "name"], result)
        persona_id = persona and _find_or_create(
            db, "personas", persona, ["email", "linkedin_url", "full_name"], result
        )
        for tech in to_documents(mentions.tech_mentions.drop(columns=list(_MENTION_ONLY))):
            result.round_trips += 1
            if company_id is not None and not db.technographics.find_one(
                {"company_id": company_id, "name": tech["name"]}, {"_id": 1}
            ):
                tech.pop("_id", None)
                result.round_trips += 1
                db.technographics.insert_one({**tech, "company_id": company_id})
        lead = next(to_documents(mentions.leads))
        lead.update(company_id=company_id, persona_id=persona_id)
        db[SOURCE_COLLECTION].insert_one(lead)
        result.round_trips += 1
        for collection in _CHILDREN:
            for document in to_documents(getattr(mentions, collection)):
                document.pop("legacy_lead_id", None)
                if collection == "research_runs":
                    document.update(company_id=company_id, persona_id=persona_id)
                db[collection].insert_one(document)
                result.round_trips += 1
        db[SOURCE_COLLECTION].update_one(
            {"_id": source["_id"]}, {"$set": {MIGRATED: True, MIGRATED_LEAD_ID: lead["_id"]}}
        )
        result.round_trips += 1
        result.migrated += 1
    return result
