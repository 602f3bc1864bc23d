"""The target shape from the data contract: nine collections, their fields, indexes, references.

A normalized frame is a pandas DataFrame with one row per target document and exactly
the columns listed here (plus `_id`): ObjectId in id and reference columns (None where
a reference has no target), nested values (dicts, lists) as Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymongo import ASCENDING, IndexModel

from leadnorm.contract import DEFAULT_LEVEL, FIT_TIERS, LEVELS, NESTED_FIELD, STATUSES


@dataclass(frozen=True)
class Collection:
    name: str
    fields: tuple[str, ...]
    indexes: tuple[IndexModel, ...]
    references: dict[str, str] = field(default_factory=dict)  # column -> target collection
    natural_keys: tuple[tuple[str, ...], ...] = ()  # unique where every part is present

    @property
    def columns(self) -> list[str]:
        return ["_id", *self.fields]


def _index(*keys: str, **options) -> IndexModel:
    return IndexModel([(k, ASCENDING) for k in keys], **options)


COMPANIES = Collection(
    "companies",
    (
        "name",
        "domain",
        "website",
        "industry",
        "company_size",
        "employee_count",
        "headquarters",
        "founded_year",
        "description",
        "funding_stage",
        "annual_revenue",
        "linkedin_url",
        "extra",
    ),
    # `domain` unique only where a company has one: sparse (a company without one has no field, and the
    # validator admits only text), served by any server, where a partial index serves only queries
    # that repeat its filter.
    (_index("name"), _index("domain", unique=True, sparse=True), _index("industry")),
    natural_keys=(("domain",),),
)
PERSONAS = Collection(
    "personas",
    (
        "full_name",
        "email",
        "title",
        "seniority",
        "department",
        "decision_authority",
        "linkedin_url",
        "location",
        "bio",
        "extra",
    ),
    (_index("full_name"), _index("email", unique=True, sparse=True), _index("linkedin_url", unique=True, sparse=True)),
    natural_keys=(("email",), ("linkedin_url",)),
)
LEADS = Collection(
    "leads",
    (
        "name",
        "title",
        "email",
        "company_id",
        "persona_id",
        "status",
        "legacy_lead_id",
        "created_at",
        "updated_at",
        "extra",
    ),
    # Not unique on the server: nested leads share the collection and may carry a `legacy_lead_id` of their
    # own, which no partial filter can leave out ($exists: false is not allowed). A normalized lead's
    # `_id` is derived from its legacy id, so the `_id` index keeps legacy ids unique among them.
    (_index("company_id"), _index("persona_id"), _index("status"), _index("legacy_lead_id", sparse=True)),
    references={"company_id": "companies", "persona_id": "personas"},
    natural_keys=(("legacy_lead_id",),),
)
TECHNOGRAPHICS = Collection(
    "technographics",
    ("company_id", "name", "category", "confidence", "extra"),
    (_index("company_id"), _index("company_id", "name", unique=True)),
    references={"company_id": "companies"},
    natural_keys=(("company_id", "name"),),
)
RESEARCH_RUNS = Collection(
    "research_runs",
    ("lead_id", "company_id", "persona_id", "research_meta", "extra"),
    (_index("lead_id"), _index("company_id")),
    references={"lead_id": "leads", "company_id": "companies", "persona_id": "personas"},
)
CITATIONS = Collection(
    "citations",
    ("research_run_id", "source_name", "url", "accessed_at_utc", "extra"),
    (_index("research_run_id"),),
    references={"research_run_id": "research_runs"},
)
DETECTED_SIGNALS = Collection(
    "detected_signals",
    ("lead_id", "research_run_id", "type", "signal", "strength", "detected_at", "source_url", "extra"),
    (_index("lead_id"), _index("research_run_id"), _index("type")),
    references={"lead_id": "leads", "research_run_id": "research_runs"},
)
ICP_SCORES = Collection(
    "icp_scores",
    ("lead_id", "icp_score", "fit_tier", "score_breakdown", "scored_at", "model_version", "rationale", "extra"),
    (_index("lead_id"), _index("fit_tier")),
    references={"lead_id": "leads"},
)
ICP_FACTOR_BREAKDOWNS = Collection(
    "icp_factor_breakdowns",
    ("icp_score_id", "category", "score", "max_score", "factors", "extra"),
    (_index("icp_score_id"),),
    references={"icp_score_id": "icp_scores"},
)

# In the contract's load order (COLLECTION_NAMES): referenced collections first.
COLLECTIONS: dict[str, Collection] = {
    c.name: c
    for c in (
        COMPANIES,
        PERSONAS,
        LEADS,
        TECHNOGRAPHICS,
        RESEARCH_RUNS,
        CITATIONS,
        DETECTED_SIGNALS,
        ICP_SCORES,
        ICP_FACTOR_BREAKDOWNS,
    )
}

# How each field is typed (`leadnorm.transform.columns`): what staged tables store, what the engine
# works on. Every `*_id` is an ObjectId but the source's own `legacy_lead_id`, which may be anything.
_TIMES = frozenset({"created_at", "updated_at", "accessed_at_utc", "detected_at", "scored_at"})
_INTEGERS = frozenset({"employee_count", "founded_year"})
_FLOATS = frozenset({"icp_score", "score", "max_score"})
_NESTED = frozenset({"extra", "research_meta", "score_breakdown", "factors"})


def field_kind(name: str) -> str:
    if name == "legacy_lead_id":
        return "key"
    if name.endswith("_id"):
        return "oid"
    if name in _TIMES:
        return "time"
    if name in _INTEGERS:
        return "int"
    if name in _FLOATS:
        return "float"
    return "bson" if name in _NESTED else "text"


KINDS: dict[str, dict[str, str]] = {c.name: {f: field_kind(f) for f in c.columns} for c in COLLECTIONS.values()}


# --- the server's own check: a `$jsonSchema` validator per collection ---------------------------

# What a document may lack: the contract leaves a field without a value out (a reference with no
# target, a date that is no date, an optional key, an empty `extra`); every other field has a value
# or its default. `leads` also holds the application's own leads (uploaded, or written through
# `leadnorm.steps.research`), which have no `legacy_lead_id`.
OPTIONAL: dict[str, frozenset[str]] = {
    "companies": frozenset({"domain", "extra"}),
    "personas": frozenset({"email", "linkedin_url", "extra"}),
    "leads": frozenset({"company_id", "persona_id", "legacy_lead_id", "created_at", "updated_at", "extra"}),
    "technographics": frozenset({"extra"}),
    "research_runs": frozenset({"company_id", "persona_id", "extra"}),
    "citations": frozenset({"accessed_at_utc", "extra"}),
    "detected_signals": frozenset({"detected_at", "extra"}),
    "icp_scores": frozenset({"scored_at", "extra"}),
    "icp_factor_breakdowns": frozenset({"extra"}),
}
_DEFAULTS = {"int": 0, "text": ""}


def with_defaults(collection: str, row: dict) -> dict:
    """`row` with the contract's default in each field that has no value and may not be left out
    (text "", number 0, confidence "Low"); references and nested fields are not defaulted."""
    kinds = KINDS[collection]
    for name in COLLECTIONS[collection].fields:
        if row.get(name) is None and name not in OPTIONAL[collection] and kinds[name] in ("int", "text"):
            row[name] = DEFAULT_LEVEL if name == "confidence" else _DEFAULTS[kinds[name]]
    return row


_BSON_TYPES = {
    "oid": "objectId",
    "text": "string",
    "int": ["int", "long"],
    "float": ["double", "int", "long", "decimal"],
    "time": "date",
}
_NESTED_TYPES = {"factors": "array"}  # the other nested fields are documents
# Values the contract allows, by (collection, field); a number's bounds.
VALUE_SETS: dict[tuple[str, str], tuple] = {
    ("leads", "status"): STATUSES,
    ("icp_scores", "fit_tier"): (*FIT_TIERS, ""),  # "": unreadable in the source, the text default
    ("technographics", "confidence"): LEVELS,
    ("detected_signals", "strength"): LEVELS,
}
BOUNDS: dict[tuple[str, str], tuple[float, float | None]] = {
    ("icp_scores", "icp_score"): (0, 100),
    ("icp_factor_breakdowns", "score"): (0, None),
    ("icp_factor_breakdowns", "max_score"): (0, None),
    ("companies", "employee_count"): (0, None),
}


def _property(collection: str, name: str) -> dict:
    kind = field_kind(name)
    rule: dict = {}
    if kind in _BSON_TYPES:
        rule["bsonType"] = _BSON_TYPES[kind]
    elif kind == "bson":
        rule["bsonType"] = _NESTED_TYPES.get(name, "object")
    if (collection, name) in VALUE_SETS:
        rule["enum"] = list(VALUE_SETS[collection, name])
    if (collection, name) in BOUNDS:
        low, high = BOUNDS[collection, name]
        rule["minimum"] = low
        if high is not None:
            rule["maximum"] = high
    return rule  # `legacy_lead_id` (a key: any BSON value) has none


def json_schema(name: str) -> dict:
    """The `$jsonSchema` of a collection's documents as the contract shapes them: the required fields,
    each field's BSON type, the value sets and bounds, no other field. `leads` admits the nested
    source leads besides, as they are (a document with `lead_input`)."""
    collection = COLLECTIONS[name]
    target = {
        "bsonType": "object",
        "required": [c for c in collection.columns if c not in OPTIONAL[name]],
        "properties": {c: _property(name, c) for c in collection.columns},
        "additionalProperties": False,
    }
    if name == "leads":
        return {"anyOf": [{"bsonType": "object", "required": [NESTED_FIELD]}, target]}
    return target
