"""Split one batch of nested leads into flat frames: pure, one source document at a time.

Everything that belongs to a single lead (the lead, its research run, citations,
signals, ICP score and breakdowns) is final here, with ids derived from the source
`_id`. Companies, personas and technographics are shared across leads, so they leave
as *mentions* (one per lead) that `resolve` deduplicates over all batches at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bson
import pandas as pd
import pyarrow as pa
from bson import ObjectId

from leadnorm.contract import (
    DEFAULT_LEVEL,
    MAX_DOCUMENT_BYTES,
    REJECT_NO_IDENTITY,
    REJECT_NOT_OBJECT,
    REJECT_TOO_LARGE,
)
from leadnorm.mongo import CODEC_OPTIONS
from leadnorm.schema import COLLECTIONS, KINDS
from leadnorm.transform import columns
from leadnorm.transform.clean import (
    Warnings,
    name_key,
    normalize_domain,
    normalize_email,
    normalize_linkedin,
    read_datetime,
    read_fit_tier,
    read_icp_score,
    read_level,
    read_list,
    read_number,
    read_object,
    read_text,
    unknown_fields,
)
from leadnorm.transform.documents import REFERENCES, document, halves
from leadnorm.transform.ids import derived_id, lead_id

# Source fields each part of a nested lead maps; any other field is kept under `extra`, those named
# like the migration's marks or a target field (`legacy_lead_id`, `company_id`, ...) included: the
# source reaching split never holds the marks (`leadnorm.source`), so such a field is the application's.
LEAD_FIELDS = frozenset({"_id", "lead_input", "research", "icp", "status", "created_at", "updated_at"})
LEAD_INPUT_FIELDS = frozenset({"name", "title", "company", "email", "linkedin_url"})
RESEARCH_FIELDS = frozenset({"CompanyProfile", "PersonaProfile", "DetectedSignals", "ResearchMeta"})
# A profile's fields bear their target's names (the contract maps them one to one).
COMPANY_FIELDS = frozenset(COLLECTIONS["companies"].fields) - {"extra"} | {"technographics"}
PERSONA_FIELDS = frozenset(COLLECTIONS["personas"].fields) - {"extra"}
META_FIELDS = frozenset(
    {"run_id", "model", "started_at_utc", "completed_at_utc", "duration_ms", "confidence", "citations"}
)
TECH_FIELDS = frozenset({"name", "category", "confidence"})
CITATION_FIELDS = frozenset({"source_name", "url", "accessed_at_utc"})
SIGNAL_FIELDS = frozenset({"type", "signal", "strength", "detected_at", "source_url"})
ICP_FIELDS = frozenset({"icp_score", "fit_tier", "score_breakdown", "scored_at", "model_version", "rationale"})
CATEGORY_FIELDS = frozenset({"score", "max_score", "factors"})


# What split hands on, table by table: each column and its kind (`leadnorm.transform.columns`).
# Lead-level tables carry their documents encoded (`leadnorm.transform.documents`): a lead and
# its research run as the halves around the references the dedupe adds.
_HALVES = {"head": "bytes", "tail": "bytes"}
_COMPANY_FIELDS = {c: KINDS["companies"][c] for c in COLLECTIONS["companies"].fields if c != "domain"}
TABLE_KINDS: dict[str, dict[str, str]] = {
    "outcomes": {"_id": "key", "outcome": "text", "reject_reason": "text"},
    "leads": {**{c: k for c, k in KINDS["leads"].items() if c not in REFERENCES}, **_HALVES},
    "research_runs": {
        **{c: k for c, k in KINDS["research_runs"].items() if c not in REFERENCES},
        "legacy_lead_id": "key",
        **_HALVES,
    },
    **{
        name: {**KINDS[name], "document": "bytes"}
        for name in ("citations", "detected_signals", "icp_scores", "icp_factor_breakdowns")
    },
    "company_mentions": {
        "legacy_lead_id": "key",
        "recency": "time",
        "domain": "text",
        "name_key": "text",
        **_COMPANY_FIELDS,
    },
    "tech_mentions": {
        "legacy_lead_id": "key",
        "recency": "time",
        "seq": "int",  # its place in the profile's list: among one lead's mentions, the later wins
        "name_key": "text",
        **{c: KINDS["technographics"][c] for c in ("name", "category", "confidence", "extra")},
    },
    "persona_mentions": {"legacy_lead_id": "key", "recency": "time", "name_key": "text", **KINDS["personas"]},
}
del TABLE_KINDS["persona_mentions"]["_id"]
LEAD_LEVEL = ("leads", "research_runs", "citations", "detected_signals", "icp_scores", "icp_factor_breakdowns")
MENTIONS = ("company_mentions", "tech_mentions", "persona_mentions")


@dataclass
class Mentions:
    """What one batch (or several, concatenated) yields before deduplication: one Arrow table per
    name of `TABLE_KINDS`. Each is also readable as an object frame (`mentions.leads`)."""

    tables: dict[str, pa.Table]
    warnings: Warnings = field(default_factory=Warnings)

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name in TABLE_KINDS:  # the values, not their encoded documents
            return columns.frame(self.tables[name], {c: k for c, k in TABLE_KINDS[name].items() if k != "bytes"})
        raise AttributeError(name)

    @classmethod
    def concat(cls, parts: list[Mentions]) -> Mentions:
        tables = {name: pa.concat_tables([part.tables[name] for part in parts]) for name in TABLE_KINDS}
        total = Warnings()
        for part in parts:
            total.update(part.warnings)
        return cls(tables, total)


def _or_none(mapping: dict) -> dict | None:
    return mapping or None


HEADQUARTERS_PARTS = ("city", "region", "country")

# Room under MongoDB's limit for what is added later: the mark on the source lead, the
# company_id and persona_id of its normalized lead.
SIZE_ROOM = 1024
# A target document is at most about twice the size of its source (a text factor becomes
# {name: text}), so only a source lead this large has its rows measured.
LARGE_SOURCE_BYTES = MAX_DOCUMENT_BYTES // 2
_MENTION_ONLY = ("recency", "seq", "name_key")  # columns of a mention row that no target document has


def _headquarters(value, warnings: Warnings) -> tuple[str | None, dict]:
    """One text: a string stays, {city, region, country} joins its parts with ", ";
    returns the object's other parts too, which are kept under `extra`."""
    if isinstance(value, dict):
        parts = [read_text(value.get(k), "companies.headquarters", warnings) for k in HEADQUARTERS_PARTS]
        return ", ".join(p for p in parts if p) or None, unknown_fields(value, set(HEADQUARTERS_PARTS))
    return read_text(value, "companies.headquarters", warnings), {}


class _Batch:
    """Collects the rows of one batch; one method per target shape."""

    def __init__(self) -> None:
        self.warnings = Warnings()
        self.rows: dict[str, list[dict]] = {
            name: []
            for name in (
                "outcomes",
                "leads",
                "company_mentions",
                "tech_mentions",
                "persona_mentions",
                "research_runs",
                "citations",
                "detected_signals",
                "icp_scores",
                "icp_factor_breakdowns",
            )
        }

    def add(self, doc: dict, size: int | None = None, lead: ObjectId | None = None) -> None:
        """One source lead; `size`, its encoded size when known (the raw document's length); `lead`,
        the id of its lead when that is not the one its `_id` derives (`split_for_lead`)."""
        lead_input = doc.get("lead_input")
        identity = Warnings()  # counted only if the lead is migrated: a reject has its reason
        name = email = None
        if not isinstance(lead_input, dict):
            reason = REJECT_NOT_OBJECT
        else:
            name = read_text(lead_input.get("name"), "leads.name", identity)
            email = normalize_email(lead_input.get("email"), "leads.email", identity)
            reason = None if name or email else REJECT_NO_IDENTITY
        if reason is None:
            reason = self._migrate_if_it_fits(
                doc, size or len(bson.encode(doc)), lead_input, name, email, identity, lead or lead_id(doc["_id"])
            )
        self.rows["outcomes"].append(
            {"_id": doc["_id"], "outcome": "rejected" if reason else "migrated", "reject_reason": reason}
        )

    def _migrate_if_it_fits(
        self, doc: dict, size: int, lead_input: dict, name, email, identity: Warnings, new_id: ObjectId
    ) -> str | None:
        """Split the lead, unless the source could not take its mark or one of its documents would
        not fit MongoDB's limit: then it is too large and leaves no row and no warning behind."""
        if size <= LARGE_SOURCE_BYTES:
            self._migrate(doc, lead_input, name, email, identity, new_id)
            return None
        if size > MAX_DOCUMENT_BYTES - SIZE_ROOM:
            return REJECT_TOO_LARGE
        lengths = {frame: len(rows) for frame, rows in self.rows.items()}
        warnings = Warnings(self.warnings)
        self._migrate(doc, lead_input, name, email, identity, new_id)
        added = (row for frame, rows in self.rows.items() for row in rows[lengths[frame] :])
        if all(_encoded_size(row) <= MAX_DOCUMENT_BYTES - SIZE_ROOM for row in added):
            return None
        for frame, rows in self.rows.items():
            del rows[lengths[frame] :]
        self.warnings = warnings
        return REJECT_TOO_LARGE

    def _migrate(self, doc: dict, lead_input: dict, name, email, identity: Warnings, new_id: ObjectId) -> None:
        legacy = doc["_id"]
        w = self.warnings
        w.update(identity)
        research = read_object(doc.get("research"), "research_runs", w) or None
        icp = read_object(doc.get("icp"), "icp_scores", w) or None
        meta = read_object(research.get("ResearchMeta"), "research_runs.research_meta", w) if research else {}

        created = read_datetime(doc.get("created_at"), "leads.created_at", w)
        if created is None and isinstance(legacy, ObjectId):
            created = read_datetime(legacy.generation_time, "leads.created_at", w)
        updated = read_datetime(doc.get("updated_at"), "leads.updated_at", w) or created
        completed = read_datetime(meta.get("completed_at_utc"), "research_runs.research_meta.completed_at_utc", w)
        recency = completed or updated

        extra = unknown_fields(doc, LEAD_FIELDS)
        input_extra = unknown_fields(lead_input, LEAD_INPUT_FIELDS)
        if input_extra:
            extra["lead_input"] = input_extra
        self.rows["leads"].append(
            {
                "_id": new_id,
                "name": name or "",
                "title": read_text(lead_input.get("title"), "leads.title", w) or "",
                "email": email or "",
                "status": "icp_scored" if icp else "researched" if research else "uploaded",
                "legacy_lead_id": legacy,
                "created_at": created,
                "updated_at": updated,
                "extra": _or_none(extra),
            }
        )

        profile = read_object(research.get("CompanyProfile"), "companies", w) if research else {}
        self._company(legacy, recency, profile, lead_input)
        persona = read_object(research.get("PersonaProfile"), "personas", w) if research else {}
        self._persona(legacy, recency, persona, lead_input)
        if research:
            run_id = self._research_run(legacy, new_id, research, meta, completed)
            self._signals(legacy, new_id, run_id, research.get("DetectedSignals"))
        if icp:
            self._icp(legacy, new_id, icp)

    def _company(self, legacy, recency, profile: dict, lead_input: dict) -> None:
        w = self.warnings
        name = read_text(profile.get("name"), "companies.name", w) or read_text(
            lead_input.get("company"), "companies.name", w
        )
        domain = normalize_domain(profile.get("domain"), "companies.domain", w) or normalize_domain(
            profile.get("website"), "companies.website", Warnings()
        )
        if name is None and domain is None and not profile:
            return
        headquarters, headquarters_extra = _headquarters(profile.get("headquarters"), w)
        extra = unknown_fields(profile, COMPANY_FIELDS)
        if headquarters_extra:
            extra["headquarters"] = headquarters_extra
        self.rows["company_mentions"].append(
            {
                "legacy_lead_id": legacy,
                "recency": recency,
                "domain": domain,
                "name_key": name_key(name),
                "name": name,
                "website": read_text(profile.get("website"), "companies.website", w),
                "industry": read_text(profile.get("industry"), "companies.industry", w),
                "company_size": read_text(profile.get("company_size"), "companies.company_size", w),
                "employee_count": read_number(
                    profile.get("employee_count"), "companies.employee_count", w, lo=0, integer=True
                ),
                "headquarters": headquarters,
                "founded_year": read_number(
                    profile.get("founded_year"), "companies.founded_year", w, lo=1600, hi=2100, integer=True
                ),
                "description": read_text(profile.get("description"), "companies.description", w),
                "funding_stage": read_text(profile.get("funding_stage"), "companies.funding_stage", w),
                "annual_revenue": read_text(profile.get("annual_revenue"), "companies.annual_revenue", w),
                "linkedin_url": normalize_linkedin(profile.get("linkedin_url"), "companies.linkedin_url", w),
                "extra": _or_none(extra),
            }
        )
        for seq, tech in enumerate(read_list(profile.get("technographics"), "technographics", w)):
            tech = {"name": tech} if isinstance(tech, str) else tech
            if not isinstance(tech, dict):
                w.unreadable("technographics")
                continue
            tech_name = read_text(tech.get("name"), "technographics.name", w)
            if tech_name is None:
                continue
            self.rows["tech_mentions"].append(
                {
                    "legacy_lead_id": legacy,
                    "recency": recency,
                    "seq": seq,
                    "name_key": name_key(tech_name),
                    "name": tech_name,
                    "category": read_text(tech.get("category"), "technographics.category", w),
                    "confidence": read_level(tech.get("confidence"), "technographics.confidence", w),
                    "extra": _or_none(unknown_fields(tech, TECH_FIELDS)),
                }
            )

    def _persona(self, legacy, recency, profile: dict, lead_input: dict) -> None:
        w = self.warnings

        def text(key, fallback=None):
            value = read_text(profile.get(key), f"personas.{key}", w)
            if value is None and fallback:
                value = read_text(lead_input.get(fallback), f"personas.{key}", w)
            return value

        full_name = text("full_name", "name")
        self.rows["persona_mentions"].append(
            {
                "legacy_lead_id": legacy,
                "recency": recency,
                "name_key": name_key(full_name),
                "full_name": full_name,
                "email": normalize_email(profile.get("email"), "personas.email", w)
                or normalize_email(lead_input.get("email"), "personas.email", Warnings()),
                "title": text("title", "title"),
                "seniority": text("seniority"),
                "department": text("department"),
                "decision_authority": text("decision_authority"),
                "linkedin_url": normalize_linkedin(profile.get("linkedin_url"), "personas.linkedin_url", w)
                or normalize_linkedin(lead_input.get("linkedin_url"), "personas.linkedin_url", w),
                "location": text("location"),
                "bio": text("bio"),
                "extra": _or_none(unknown_fields(profile, PERSONA_FIELDS)),
            }
        )

    def _research_run(self, legacy, new_lead_id, research: dict, meta: dict, completed) -> ObjectId:
        w = self.warnings
        run_id = derived_id("research_run", legacy)
        target = "research_runs.research_meta.{}".format
        research_meta = {
            "run_id": read_text(meta.get("run_id"), target("run_id"), w) or "",
            "model": read_text(meta.get("model"), target("model"), w) or "",
            "started_at_utc": read_datetime(meta.get("started_at_utc"), target("started_at_utc"), w),
            "completed_at_utc": completed,
            "duration_ms": read_number(meta.get("duration_ms"), target("duration_ms"), w, lo=0, integer=True) or 0,
            "confidence": read_level(meta.get("confidence"), target("confidence"), w) or DEFAULT_LEVEL,
        }
        extra = unknown_fields(research, RESEARCH_FIELDS)
        meta_extra = unknown_fields(meta, META_FIELDS)
        if meta_extra:
            extra["ResearchMeta"] = meta_extra
        self.rows["research_runs"].append(
            {
                "_id": run_id,
                "lead_id": new_lead_id,
                "legacy_lead_id": legacy,
                "research_meta": {k: v for k, v in research_meta.items() if v is not None},
                "extra": _or_none(extra),
            }
        )
        for i, citation in enumerate(read_list(meta.get("citations"), "citations", w)):
            if not isinstance(citation, dict):
                w.unreadable("citations")
                continue
            self.rows["citations"].append(
                {
                    "_id": derived_id("citation", legacy, i),
                    "research_run_id": run_id,
                    "source_name": read_text(citation.get("source_name"), "citations.source_name", w) or "",
                    "url": read_text(citation.get("url"), "citations.url", w) or "",
                    "accessed_at_utc": read_datetime(citation.get("accessed_at_utc"), "citations.accessed_at_utc", w),
                    "extra": _or_none(unknown_fields(citation, CITATION_FIELDS)),
                }
            )
        return run_id

    def _signals(self, legacy, new_lead_id, run_id, signals) -> None:
        w = self.warnings
        for i, signal in enumerate(read_list(signals, "detected_signals", w)):
            if not isinstance(signal, dict):
                w.unreadable("detected_signals")
                continue
            self.rows["detected_signals"].append(
                {
                    "_id": derived_id("detected_signal", legacy, i),
                    "lead_id": new_lead_id,
                    "research_run_id": run_id,
                    "type": read_text(signal.get("type"), "detected_signals.type", w) or "",
                    "signal": read_text(signal.get("signal"), "detected_signals.signal", w) or "",
                    "strength": read_level(signal.get("strength"), "detected_signals.strength", w) or DEFAULT_LEVEL,
                    "detected_at": read_datetime(signal.get("detected_at"), "detected_signals.detected_at", w),
                    "source_url": read_text(signal.get("source_url"), "detected_signals.source_url", w) or "",
                    "extra": _or_none(unknown_fields(signal, SIGNAL_FIELDS)),
                }
            )

    def _icp(self, legacy, new_lead_id, icp: dict) -> None:
        w = self.warnings
        score_id = derived_id("icp_score", legacy)
        breakdown = read_object(icp.get("score_breakdown"), "icp_scores.score_breakdown", w)
        scores = {}
        for category, detail in breakdown.items():
            detail = {"score": detail} if not isinstance(detail, dict) else detail
            score = read_number(detail.get("score"), "icp_factor_breakdowns.score", w, lo=0) or 0.0
            scores[category] = score
            factors = []
            for factor in read_list(detail.get("factors"), "icp_factor_breakdowns.factors", w):
                if isinstance(factor, str):
                    factors.append({"name": factor.strip()})
                elif isinstance(factor, dict):
                    factors.append(factor)
                else:
                    w.unreadable("icp_factor_breakdowns.factors")
            self.rows["icp_factor_breakdowns"].append(
                {
                    "_id": derived_id("icp_factor_breakdown", legacy, category),
                    "icp_score_id": score_id,
                    "category": category,
                    "score": score,
                    "max_score": read_number(detail.get("max_score"), "icp_factor_breakdowns.max_score", w, lo=0)
                    or 0.0,
                    "factors": factors,
                    "extra": _or_none(unknown_fields(detail, CATEGORY_FIELDS)),
                }
            )
        self.rows["icp_scores"].append(
            {
                "_id": score_id,
                "lead_id": new_lead_id,
                "icp_score": read_icp_score(icp.get("icp_score"), "icp_scores.icp_score", w) or 0.0,
                "fit_tier": read_fit_tier(icp.get("fit_tier"), "icp_scores.fit_tier", w) or "",
                "score_breakdown": scores,
                "scored_at": read_datetime(icp.get("scored_at"), "icp_scores.scored_at", w),
                "model_version": read_text(icp.get("model_version"), "icp_scores.model_version", w) or "",
                "rationale": read_text(icp.get("rationale"), "icp_scores.rationale", w) or "",
                "extra": _or_none(unknown_fields(icp, ICP_FIELDS)),
            }
        )

    def mentions(self) -> Mentions:
        r = self.rows
        for name in ("leads", "research_runs"):
            fields_ = COLLECTIONS[name].columns
            for row in r[name]:
                row["head"], row["tail"] = halves(row, fields_)
        for name in LEAD_LEVEL[2:]:
            fields_ = COLLECTIONS[name].columns
            for row in r[name]:
                row["document"] = document(row, fields_)
        return Mentions({name: columns.table(r[name], kinds) for name, kinds in TABLE_KINDS.items()}, self.warnings)


def _encoded_size(row: dict) -> int:
    return len(bson.encode({k: v for k, v in row.items() if k not in _MENTION_ONLY}))


def split_documents(documents) -> Mentions:
    """Flatten nested lead documents (dicts as MongoDB returns them) into mention tables."""
    batch = _Batch()
    for doc in documents:
        batch.add(doc)
    return batch.mentions()


def split_for_lead(document: dict, lead: ObjectId) -> Mentions:
    """One nested lead split for the lead `lead` (the application's write path keeps its lead's id):
    the other ids still derive from the document's `_id`."""
    batch = _Batch()
    batch.add(document, lead=lead)
    return batch.mentions()


def split_raw(raws: list[bytes]) -> Mentions:
    """The same from raw BSON documents (a staged batch): each decoded once, its size known."""
    batch = _Batch()
    for raw in raws:
        batch.add(bson.decode(raw, CODEC_OPTIONS), len(raw))
    return batch.mentions()


def split_batch(source: pd.DataFrame) -> Mentions:
    """Frames in, frames out: a source frame (one nested lead per row) into mention frames."""
    columns = list(source.columns)  # rows as tuples: to_dict would turn the pd.NA of an absent key into None
    return split_documents(
        {k: v for k, v in zip(columns, row) if not _absent(v)} for row in source.itertuples(index=False, name=None)
    )


def _absent(value) -> bool:
    """A key this row's document did not have (`source_frame` fills it with pd.NA; a NaN is a value)."""
    return value is pd.NA
