"""Schema validation on the server: after a migration each of the nine collections carries the
`$jsonSchema` validator `leadnorm.schema.json_schema` generates from the contract, and the server
itself refuses a document of another shape, whoever writes it (code 121), while every document
the pipeline wrote, and the nested source leads as they are, pass."""

from __future__ import annotations

import pytest
from bson import ObjectId
from pymongo.errors import WriteError

from leadnorm.contract import COLLECTION_NAMES
from leadnorm.schema import COLLECTIONS, OPTIONAL, json_schema

# One document of a wrong shape per collection, and what is wrong with it.
WRONG = {
    "companies": ({"name": 5}, "a name that is no text"),
    "personas": ({"full_name": "Ann", "email": ["a@b.c"]}, "an email that is a list, fields missing"),
    "leads": ({"name": "Ann", "title": "", "email": "", "status": "qualified"}, "a status outside the set"),
    "technographics": ({"company_id": "acme", "name": "x", "category": "", "confidence": "Low"}, "a string id"),
    "research_runs": ({"lead_id": ObjectId(), "research_meta": "none"}, "research_meta no document"),
    "citations": ({"research_run_id": ObjectId(), "source_name": "", "url": "", "visited": 1}, "a field of none"),
    "detected_signals": (
        {"lead_id": ObjectId(), "research_run_id": ObjectId(), "type": "", "signal": "", "strength": "Huge"},
        "a strength outside the set, source_url missing",
    ),
    "icp_scores": (
        {
            "lead_id": ObjectId(),
            "icp_score": "high",
            "fit_tier": "A",
            "score_breakdown": {},
            "model_version": "",
            "rationale": "",
        },
        "a score that is no number",
    ),
    "icp_factor_breakdowns": (
        {"icp_score_id": ObjectId(), "category": "fit", "score": 140.0, "max_score": -1, "factors": []},
        "a negative max_score",
    ),
}


def test_each_collection_has_a_schema_of_its_contract_fields():
    assert set(WRONG) == set(COLLECTION_NAMES)
    for name, collection in COLLECTIONS.items():
        schema = json_schema(name)
        target = schema["anyOf"][1] if name == "leads" else schema
        assert set(target["properties"]) == set(collection.columns) and not target["additionalProperties"]
        assert set(target["required"]) == set(collection.columns) - OPTIONAL[name]


def test_after_a_migration_the_server_refuses_a_document_of_the_wrong_shape(migrated_db):
    db = migrated_db
    for name in COLLECTION_NAMES:
        options = db.command("listCollections", filter={"name": name})["cursor"]["firstBatch"][0]["options"]
        assert options["validator"] == {"$jsonSchema": json_schema(name)}, name
        document, why = WRONG[name]
        with pytest.raises(WriteError) as refused:
            db[name].insert_one(dict(document))
        assert refused.value.code == 121, (name, why)
        assert db[name].count_documents({"_id": document.get("_id", -1)}) == 0


def test_nested_leads_pass_as_they_are(migrated_db):
    db = migrated_db
    db.leads.insert_one({"lead_input": "not even an object", "status": 42, "anything": ["goes"]})
    assert db.leads.count_documents({"lead_input": "not even an object"}) == 1


@pytest.fixture(scope="module")
def migrated_db(mongo_uri, tmp_path_factory):
    from conftest import migrated_once

    yield from migrated_once(mongo_uri, tmp_path_factory.mktemp("validators"), seed=23)
