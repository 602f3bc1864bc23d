"""Builders for nested lead documents (as the legacy application wrote them) and for
reading the normalized result, so that each test case stays a few readable lines."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pandas as pd
from bson import ObjectId

from leadnorm.steps.extract import source_frame
from leadnorm.transform.normalize import normalize, normalize_batches
from leadnorm.transform.resolve import Normalized
from leadnorm.transform.split import Mentions, split_documents

UTC = UTC
MISSING = object()  # pass as a value to leave the key out of the document
ID_EPOCH = datetime(2023, 1, 1, tzinfo=UTC)


def at(day: int, hour: int = 0) -> datetime:
    """A UTC moment in 2024: at(1) is 2024-01-01, at(32) 2024-02-01."""
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day - 1, hours=hour)


def oid(n: int) -> ObjectId:
    """A source `_id`: larger n, later generation time (one minute apart) and larger id."""
    return ObjectId.from_datetime(ID_EPOCH + timedelta(minutes=n))


def _without_missing(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if v is not MISSING}


def nested_lead(
    n: int = 1,
    *,
    name="Ann Lee",
    title="VP Sales",
    company="Acme",
    email="ann@acme.io",
    lead_input=MISSING,
    research=MISSING,
    icp=MISSING,
    **fields,
) -> dict:
    """One nested lead. `lead_input` (any value) replaces the one built from name/title/
    company/email; `research`/`icp` are left out unless given; `fields` are further
    top-level fields (created_at, updated_at, status, unknown ones). MISSING drops a key."""
    if lead_input is MISSING:
        lead_input = _without_missing({"name": name, "title": title, "company": company, "email": email})
    doc = {"_id": oid(n), "lead_input": lead_input, "research": research, "icp": icp, **fields}
    return _without_missing(doc)


def research(company=MISSING, persona=MISSING, signals=MISSING, completed_at=MISSING, **meta) -> dict:
    """A `research` object: CompanyProfile, PersonaProfile, DetectedSignals and a
    ResearchMeta built from `completed_at` and `meta` (model, citations, ...)."""
    meta = _without_missing({"completed_at_utc": completed_at, **meta})
    return _without_missing(
        {
            "CompanyProfile": company,
            "PersonaProfile": persona,
            "DetectedSignals": signals,
            "ResearchMeta": meta or MISSING,
        }
    )


def split(*docs: dict) -> Mentions:
    """split_documents() over `docs` (deep-copied): the per-lead frames and the mentions."""
    return split_documents(copy.deepcopy(list(docs)))


def mention_rows(mentions: Mentions, frame: str) -> list[dict]:
    return getattr(mentions, frame).to_dict("records")


def only_mention(mentions: Mentions, frame: str) -> dict:
    found = mention_rows(mentions, frame)
    assert len(found) == 1, f"{frame}: expected one row, got {len(found)}: {found}"
    return found[0]


def run(*docs: dict) -> Normalized:
    """normalize() over one source frame holding `docs` (deep-copied: the input stays intact)."""
    return normalize(source_frame(copy.deepcopy(list(docs))))


def run_batches(docs: list[dict], size: int) -> Normalized:
    docs = copy.deepcopy(docs)
    return normalize_batches([source_frame(docs[i : i + size]) for i in range(0, len(docs), size)])


def rows(result: Normalized, collection: str) -> list[dict]:
    return result.frames[collection].to_dict("records")


def only(result: Normalized, collection: str) -> dict:
    """The single row of `collection` (fails unless there is exactly one)."""
    found = rows(result, collection)
    assert len(found) == 1, f"{collection}: expected one row, got {len(found)}: {found}"
    return found[0]


def lead_of(result: Normalized, n: int) -> dict:
    """The normalized lead whose source `_id` is oid(n)."""
    found = [r for r in rows(result, "leads") if r["legacy_lead_id"] == oid(n)]
    assert len(found) == 1, f"lead {n}: {len(found)} rows"
    return found[0]


def by_id(result: Normalized, collection: str, _id) -> dict:
    found = [r for r in rows(result, collection) if r["_id"] == _id]
    assert len(found) == 1, f"{collection} {_id}: {len(found)} rows"
    return found[0]


def company_of(result: Normalized, n: int) -> dict:
    return by_id(result, "companies", lead_of(result, n)["company_id"])


def persona_of(result: Normalized, n: int) -> dict:
    return by_id(result, "personas", lead_of(result, n)["persona_id"])


def outcome_of(result: Normalized, n: int) -> tuple[str, str | None]:
    frame = result.outcomes
    row = frame.loc[frame["_id"] == oid(n)]
    assert len(row) == 1
    return row["outcome"].iloc[0], row["reject_reason"].iloc[0]


def canonical(value):
    """A value comparable with ==: NaN (never equal to itself) becomes a marker."""
    if isinstance(value, float) and value != value:
        return "<NaN>"
    if value is pd.NaT:
        return "<NaT>"
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def sorted_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts, in `_id` order, comparable with ==."""
    records = [canonical(r) for r in frame.to_dict("records")]
    return sorted(records, key=lambda r: str(r["_id"]))
