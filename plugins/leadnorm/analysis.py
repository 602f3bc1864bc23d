"""Ad-hoc analysis of the normalized collections as pandas DataFrames, so notebooks stay thin.

The server counts and averages; pandas only pivots the few grouped rows it returns, picks a
category per technology and turns days into calendar periods. A to-one `$lookup` is
flattened with `$first` into a field of its own before its fields are read: the embedded
server does not follow a path through the array a `$lookup` leaves.

`mask_personal` hides emails, person names, LinkedIn URLs and phone numbers before a frame
or a joined lead is shown, so a notebook's output can be shared.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping

import pandas as pd
from pymongo.database import Database

from leadnorm.contract import FIT_TIERS, NORMALIZED_LEAD, SOURCE_COLLECTION, STATUSES
from leadnorm.mongo import in_chunks
from leadnorm.transform.clean import Warnings, read_icp_score
from leadnorm.views import application_leads

# A fit tier the migration could not read is stored as "" (the contract's default), an unreadable
# score as 0: the tables and charts here name them apart from real ones, never as a tier or a score.
NO_SCORE = "no score"  # the lead has no ICP score
UNREADABLE = "unreadable"  # a score whose tier (or value) the source held in a form that could not be read


def _to_one(collection: str, local: str, foreign: str, into: str) -> list[dict]:
    """`into` = the one joined document, or missing."""
    return [
        {"$lookup": {"from": collection, "localField": local, "foreignField": foreign, "as": into}},
        {"$addFields": {into: {"$first": f"${into}"}}},
    ]


def _or_null(field: str) -> dict:
    return {"$ifNull": [f"${field}", None]}


def _tier(value) -> str:
    """A stored fit tier as a table names it: A-D, "unreadable" (stored ""), "no score" (no ICP score)."""
    return NO_SCORE if value is None else value or UNREADABLE


def _tier_order(tiers) -> list[str]:
    """A B C D, unreadable, no score, then anything unexpected, so tables read the same every time."""
    known = [*FIT_TIERS, UNREADABLE, NO_SCORE]
    return [t for t in known if t in set(tiers)] + sorted(set(tiers) - set(known))


def leads_by_status_and_tier(db: Database) -> pd.DataFrame:
    """Leads (normalized and uploaded) counted by status (rows) and ICP fit tier (columns A-D,
    unreadable: scored, but its tier could not be read; no score)."""
    rows = db[SOURCE_COLLECTION].aggregate(
        [
            {"$match": application_leads()},
            *_to_one("icp_scores", "_id", "lead_id", "icp"),
            {"$group": {"_id": {"status": "$status", "fit_tier": _or_null("icp.fit_tier")}, "leads": {"$sum": 1}}},
        ]
    )
    counts = {(r["_id"].get("status", ""), _tier(r["_id"]["fit_tier"])): r["leads"] for r in rows}
    statuses = [*STATUSES, *sorted({s for s, _ in counts} - set(STATUSES))]
    tiers = _tier_order([*FIT_TIERS, NO_SCORE, *(t for _, t in counts)])
    return pd.DataFrame(
        [[counts.get((s, t), 0) for t in tiers] for s in statuses],
        index=pd.Index(statuses, name="status"),
        columns=pd.Index(tiers, name="fit_tier"),
    )


def companies_by_lead_count(db: Database, top: int = 20) -> pd.DataFrame:
    """The `top` companies by number of leads: name, domain ("" when none), leads."""
    rows = db[SOURCE_COLLECTION].aggregate(
        [
            {"$match": application_leads({"company_id": {"$exists": True}})},
            {"$group": {"_id": "$company_id", "leads": {"$sum": 1}}},
            {"$sort": {"leads": -1, "_id": 1}},
            {"$limit": top},
            *_to_one("companies", "_id", "_id", "company"),
            {
                "$addFields": {
                    "name": {"$ifNull": ["$company.name", ""]},
                    "domain": {"$ifNull": ["$company.domain", ""]},
                }
            },
        ]
    )
    return pd.DataFrame(
        [{k: r[k] for k in ("name", "domain", "leads")} for r in rows], columns=["name", "domain", "leads"]
    )


def signal_types_over_time(db: Database, freq: str = "M") -> pd.DataFrame:
    """Detected signals per period (rows, a pandas period alias of a day or longer: D, W, M, Q, Y)
    and signal type (columns), by `detected_at`; signals without a detection date are left out.

    The server counts per type and day, so only those counts travel; pandas makes the periods."""
    rows = db.detected_signals.aggregate(
        [
            {"$match": {"detected_at": {"$type": "date"}}},
            {
                "$group": {
                    "_id": {"type": "$type", "day": {"$dateTrunc": {"date": "$detected_at", "unit": "day"}}},
                    "signals": {"$sum": 1},
                }
            },
        ]
    )
    days = pd.DataFrame(
        [{"type": r["_id"].get("type", ""), "day": r["_id"]["day"], "signals": r["signals"]} for r in rows],
        columns=["type", "day", "signals"],
    )
    periods = pd.to_datetime(days["day"], utc=True).dt.tz_localize(None).dt.to_period(freq)
    frame = days.groupby([periods.rename("period"), days["type"].rename("signal_type")])["signals"].sum()
    return frame.unstack("signal_type", fill_value=0).sort_index().sort_index(axis="columns")


def icp_factor_contributions_by_tier(db: Database) -> pd.DataFrame:
    """Mean factor-breakdown score per fit tier (rows) and category (columns)."""
    rows = db.icp_factor_breakdowns.aggregate(
        [
            *_to_one("icp_scores", "icp_score_id", "_id", "icp"),
            {
                "$group": {
                    "_id": {"fit_tier": _or_null("icp.fit_tier"), "category": "$category"},
                    "score": {"$avg": "$score"},
                }
            },
        ]
    )
    long = pd.DataFrame(
        [
            {"fit_tier": _tier(r["_id"]["fit_tier"]), "category": r["_id"].get("category", ""), "score": r["score"]}
            for r in rows
        ],
        columns=["fit_tier", "category", "score"],
    )
    frame = long.pivot(index="fit_tier", columns="category", values="score")
    return frame.reindex(_tier_order(frame.index)).sort_index(axis="columns")


def icp_scores(db: Database) -> pd.DataFrame:
    """Every ICP score: lead_id, icp_score, fit_tier (as `leads_by_status_and_tier` names it) and
    `score_read`: False where the migration stored the default 0 because the source's score could
    not be read (the contract keeps the default; this reads the nested source again with the
    migration's own reader to tell). Plot or average the scores where `score_read` holds."""
    rows = list(
        db.icp_scores.aggregate(
            [
                *_to_one(SOURCE_COLLECTION, "lead_id", "_id", "lead"),
                {"$project": {"lead_id": 1, "icp_score": 1, "fit_tier": 1, "legacy": "$lead.legacy_lead_id"}},
            ]
        )
    )
    legacy = [row["legacy"] for row in rows if "legacy" in row]
    source = {}
    for part in in_chunks(legacy):
        for document in db[SOURCE_COLLECTION].find({"_id": {"$in": part}}, {"icp.icp_score": 1}):
            source[document["_id"]] = (document.get("icp") or {}).get("icp_score")
    return pd.DataFrame(
        [
            {
                "lead_id": row["lead_id"],
                "icp_score": row.get("icp_score"),
                "fit_tier": _tier(row.get("fit_tier", "")),
                "score_read": "legacy" not in row or readable_icp_score(source.get(row["legacy"])),
            }
            for row in rows
        ],
        columns=["lead_id", "icp_score", "fit_tier", "score_read"],
    )


def readable_icp_score(value) -> bool:
    """Whether the migration reads a source `icp.icp_score` as a score (else it stores the default 0)."""
    return read_icp_score(value, "icp_scores.icp_score", Warnings()) is not None


def technographics_frequency(db: Database, top: int = 20) -> pd.DataFrame:
    """The `top` technologies by number of companies using them: technology, category, companies.

    Names are compared without case (as the migration dedupes them per company; casefold, which
    the server's ASCII-only `$toLower` is not); the category shown is the one most of its companies
    give, a blank one only when none gives another."""
    rows = db.technographics.aggregate(
        [
            {"$group": {"_id": {"name": "$name", "category": "$category"}, "companies": {"$sum": 1}}},
        ]
    )
    pairs = pd.DataFrame(
        [
            {"technology": r["_id"]["name"], "category": r["_id"].get("category") or "", "companies": r["companies"]}
            for r in rows
        ],
        columns=["technology", "category", "companies"],
    )
    pairs["key"] = pairs["technology"].str.strip().str.casefold()
    pairs["no_category"] = pairs["category"].eq("")
    ranked = pairs.sort_values(["key", "no_category", "companies", "category"], ascending=[True, True, False, True])
    frame = ranked.groupby("key", sort=False).agg(
        technology=("technology", "min"), category=("category", "first"), companies=("companies", "sum")
    )
    frame = frame.sort_values(["companies", "technology"], ascending=[False, True]).head(top)
    return frame.reset_index(drop=True)


def dedupe_ratios(db: Database) -> pd.DataFrame:
    """How much deduplication did: per entity (companies, personas), the source mentions (each
    normalized lead stands for one migrated nested lead, those cleanup deleted included, and
    mentions one of each), the entities stored and mentions per entity."""
    mentions = db[SOURCE_COLLECTION].count_documents(NORMALIZED_LEAD)
    entities = pd.Series({name: db[name].count_documents({}) for name in ("companies", "personas")})
    frame = pd.DataFrame({"mentions": mentions, "entities": entities}).rename_axis("entity")
    frame["mentions_per_entity"] = frame["mentions"] / frame["entities"].where(frame["entities"] > 0)
    return frame


# --- masking ------------------------------------------------------------------------

PERSONAL_KEYS = frozenset({"email", "full_name", "linkedin_url", "phone"})  # hidden wherever they occur
LEAD_MARKERS = ("legacy_lead_id", "persona_id")  # a document with one is a lead: its `name` is a person's
EMAIL_TEXT = re.compile(r"[^\s@\"']+@[^\s@\"']+\.[a-z]{2,}", re.IGNORECASE)  # what tests/test_notebooks.py looks for
LINKEDIN_PROFILE_TEXT = re.compile(r"(?:https?://)?(?:[\w-]+\.)?linkedin\.com/(?:in|pub)/[^\s\"'<>]+", re.IGNORECASE)

# A key of this process (or LEADNORM_MASK_KEY, for masks stable across sessions): a published
# key would let anyone holding a list of emails recompute, and so reverse, the masks.
_MASK_KEY = os.environ.get("LEADNORM_MASK_KEY", "").encode() or secrets.token_bytes(32)


def mask(value: str) -> str:
    """`masked:1a2b3c4d`: the same value gives the same mask, so masked columns still group and join."""
    return "masked:" + hmac.new(_MASK_KEY, value.encode(), hashlib.sha256).hexdigest()[:8]


def _mask_value(value):
    """A personal value is hidden whole, inside documents and lists too; only "no value" stays."""
    if isinstance(value, Mapping):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    if value is None or value == "" or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return value
    return mask(str(value))


def _scrub(value):
    """Any other value: the emails and LinkedIn profile URLs inside its text are hidden."""
    if isinstance(value, str):
        return LINKEDIN_PROFILE_TEXT.sub(lambda m: mask(m[0]), EMAIL_TEXT.sub(lambda m: mask(m[0]), value))
    if isinstance(value, Mapping):
        return _masked_doc(value, names_person=False)
    if isinstance(value, tuple):  # a MultiIndex label
        return tuple(_scrub(v) for v in value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _masked_doc(doc: Mapping, names_person: bool) -> dict:
    """`names_person`: its `name` is a person's (a lead, a source lead's `lead_input`)."""
    names_person = names_person or any(k in doc for k in LEAD_MARKERS)
    masked = {}
    for key, value in doc.items():
        if key in PERSONAL_KEYS or (key == "name" and names_person):
            masked[key] = _mask_value(value)
        elif key == "lead_input" and isinstance(value, Mapping):
            masked[key] = _masked_doc(value, names_person=True)
        else:
            masked[key] = _scrub(value)
    return masked


def _personal_column(column, columns: set[str]) -> bool:
    """`email`, `persona.full_name`, `lead_input.name`, and `name` in a frame of leads (flattened too)."""
    path = str(column).split(".")
    prefix = path[:-1]
    is_lead = any(".".join([*prefix, marker]) in columns for marker in LEAD_MARKERS)
    return path[-1] in PERSONAL_KEYS or (path[-1] == "name" and (is_lead or prefix[-1:] == ["lead_input"]))


def _holds_text(values) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values.dtype)


def mask_personal(frame_or_docs, show_personal: bool = False):
    """The frame (or series), document or list of documents with personal values masked (unless
    `show_personal`, then it is returned as it is): emails, person names (`full_name`, a
    lead's `name`), LinkedIn and phone fields whole, and every email or LinkedIn profile URL
    inside any other text, in nested documents too. The input is not changed."""
    if show_personal:
        return frame_or_docs
    if isinstance(frame_or_docs, pd.DataFrame):
        frame = frame_or_docs.copy()
        columns = {str(c) for c in frame.columns}
        for column in frame.columns:
            if _personal_column(column, columns):
                frame[column] = frame[column].map(_mask_value)
            elif _holds_text(frame[column]):
                frame[column] = frame[column].map(_scrub)
        if _holds_text(frame.index):
            frame.index = frame.index.map(_scrub)
        return frame
    if isinstance(frame_or_docs, pd.Series):  # masked as the one column of a frame, by its name
        return mask_personal(frame_or_docs.to_frame()).iloc[:, 0]
    if isinstance(frame_or_docs, Mapping):
        return _masked_doc(frame_or_docs, names_person=False)
    return [_scrub(doc) for doc in frame_or_docs]
