"""The application's write path: a lead's research and ICP score saved into the normalized collections.

The design's `POST /api/leads/refresh` ("Updates: Company, Persona, Technographic, ResearchRun,
Citation, DetectedSignal, ICPScore, ICPFactorBreakdown"), one lead at a time. `write_research`
takes a lead's new research and, optionally, its ICP score in the source's shapes (section 1 of the
contract: `CompanyProfile`, `PersonaProfile`, `DetectedSignals`, `ResearchMeta` with citations;
`icp_score`, `fit_tier`, `score_breakdown`, ...), messy values and all, and reads them with the
migration's own code (`leadnorm.transform.split`): an unreadable value gets its default and is
counted, per field.

- **Company and persona** (when the research has a profile of them; else the lead keeps its own)
  are found by the contract's keys (normalized domain, else name; email or LinkedIn URL, else full
  name) or created with the id the migration derives from the same key. Where the new keys tie
  existing ones together (a domain company and one without a domain bearing its name; the email
  of one persona and the LinkedIn URL of another) they merge as a refresh merges them: the one
  with more leads survives, then the smaller id, every reference moves to it, and it takes the
  other's values where it has none. The research is the most recent: its values win, field by
  field; technographics are the union, one per name without case.
- **The lead's documents**: its research run, citations and signals are replaced; so are its ICP
  score and factor breakdowns when an ICP object is given (without one they stay). Its references
  move, and its status is `icp_scored` when it has a score, else `researched`.
- **Ownership**: the lead belongs to the application from then on, as an uploaded lead does. A
  migrated one gives up its `legacy_lead_id` (kept as `extra.application.legacy_lead_id`), its
  source lead is recorded in `migration_released` and leaves the key store: no refresh rewrites
  the lead or what hangs on it, verify counts those as kept, a rollback puts them back.
- **One transaction** where the server has them (a replica set, SecantusDB), and idempotent: the
  same call again writes nothing (the lead's `updated_at` moves only when something changed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, InsertOne, ReplaceOne
from pymongo.client_session import ClientSession
from pymongo.database import Database

from leadnorm.contract import DEFAULT_LEVEL, NESTED_FIELD, RELEASED_COLLECTION, SOURCE_COLLECTION, legacy_key
from leadnorm.errors import LeadNotFound, ResearchRefused
from leadnorm.mongo import RAW_CODEC_OPTIONS
from leadnorm.schema import COLLECTIONS, with_defaults
from leadnorm.steps.scope import forget_lead_keys
from leadnorm.transform import columns
from leadnorm.transform.clean import is_blank, name_key
from leadnorm.transform.dedupe import COMPANY_VALUES, PERSONA_VALUES, TECH_VALUES
from leadnorm.transform.documents import document, linked
from leadnorm.transform.ids import derived_id, technographic_id
from leadnorm.transform.split import TABLE_KINDS, Mentions, split_for_lead

LEAD_LEVEL = ("research_runs", "citations", "detected_signals")
SCORED = ("icp_scores", "icp_factor_breakdowns")


@dataclass
class ResearchWritten:
    lead_id: ObjectId
    company_id: ObjectId | None
    persona_id: ObjectId | None
    status: str
    written: dict[str, int] = field(default_factory=dict)  # collection -> documents inserted, replaced, deleted
    merged: dict[str, list[ObjectId]] = field(default_factory=dict)  # companies / personas merged away
    warnings: dict[str, int] = field(default_factory=dict)  # unreadable values given their defaults

    @property
    def changed(self) -> bool:
        return any(self.written.values())

    def count(self, collection: str, n: int = 1) -> None:
        self.written[collection] = self.written.get(collection, 0) + n

    def as_dict(self) -> dict:
        return {**asdict(self), "changed": self.changed}


def write_research(db: Database, lead: ObjectId, research: dict, icp: dict | None = None) -> ResearchWritten:
    """Save `research` (and `icp`) for the lead `lead` (see the module docstring). LeadNotFound when
    there is no such lead, ResearchRefused when its documents would not fit; nothing written then."""
    if not isinstance(research, dict) or not (icp is None or isinstance(icp, dict)):
        raise ResearchRefused("research and icp are objects")
    if has_transactions(db):
        with db.client.start_session() as session:
            return session.with_transaction(lambda s: _write(db, lead, research, icp, s))
    return _write(db, lead, research, icp, None)


def has_transactions(db: Database) -> bool:
    """Whether the server runs transactions: a replica set or a sharded cluster, not a standalone."""
    db.command("ping")  # the topology is known once a server answered
    return db.client.topology_description.topology_type_name in ("ReplicaSetWithPrimary", "Sharded", "LoadBalanced")


def _write(db: Database, lead_id: ObjectId, research: dict, icp: dict | None, session: ClientSession | None):
    lead = db[SOURCE_COLLECTION].find_one({"_id": lead_id}, session=session)
    if lead is None or NESTED_FIELD in lead:
        raise LeadNotFound(f"no lead {lead_id}")
    extra = dict(lead.get("extra") or {})
    application = dict(extra.get("application") or {})
    if "legacy_lead_id" in lead:  # a migrated lead: the application takes it over now
        application["legacy_lead_id"] = lead["legacy_lead_id"]
    base = application["legacy_lead_id"] if "legacy_lead_id" in application else lead_id
    split = split_for_lead(_nested(db, lead, base, research, icp, session), lead_id)
    outcome = columns.rows_of(split.tables["outcomes"], TABLE_KINDS["outcomes"])[0]
    if outcome["outcome"] != "migrated":
        raise ResearchRefused(f"the research cannot be saved: {outcome['reject_reason']}")

    result = ResearchWritten(lead_id, lead.get("company_id"), lead.get("persona_id"), lead.get("status", ""))
    result.warnings = dict(sorted(split.warnings.items()))
    if isinstance(research.get("CompanyProfile"), dict):
        result.company_id = _save_company(db, split, result, session)
    if isinstance(research.get("PersonaProfile"), dict):
        result.persona_id = _save_persona(db, split, result, session)
    desired = _lead_documents(split, result, icp is not None)
    stored = _stored_lead_documents(db, lead_id, icp is not None, session)
    for name, documents in desired.items():
        _converge(db, name, documents, stored[name], result, session)
    scored = db.icp_scores.find_one({"lead_id": lead_id}, {"_id": 1}, session=session) is not None
    result.status = "icp_scored" if scored else "researched"

    wanted = {**lead, "company_id": result.company_id, "persona_id": result.persona_id, "status": result.status}
    wanted.pop("legacy_lead_id", None)
    if wanted != lead or result.changed:
        now = datetime.now(UTC)
        extra["application"] = {**application, "written_at": now}
        _replace(db, SOURCE_COLLECTION, {**wanted, "updated_at": now, "extra": extra}, result, session)
    if "legacy_lead_id" in lead:
        _release(db, lead["legacy_lead_id"], lead_id, result, session)
    return result


def _nested(db: Database, lead: dict, base, research: dict, icp: dict | None, session) -> dict:
    """The lead as a nested lead with this research: what the migration would read. Its input is the
    lead's own name, title and email, its company's name and its persona's LinkedIn URL, which a
    profile lacking them falls back to, as a nested lead's `lead_input` does."""
    company = db.companies.find_one({"_id": lead.get("company_id")}, {"name": 1}, session=session) or {}
    persona = db.personas.find_one({"_id": lead.get("persona_id")}, {"linkedin_url": 1}, session=session) or {}
    lead_input = {
        "name": lead.get("name"),
        "title": lead.get("title"),
        "email": lead.get("email"),
        "company": company.get("name"),
        "linkedin_url": persona.get("linkedin_url"),
    }
    nested = {"_id": base, NESTED_FIELD: lead_input, "research": research, "created_at": lead.get("created_at")}
    if icp is not None:
        nested["icp"] = icp
    return nested


# --- companies and personas ------------------------------------------------------------------------


def _save_company(db: Database, split: Mentions, result: ResearchWritten, session) -> ObjectId | None:
    mentions = columns.rows_of(split.tables["company_mentions"], TABLE_KINDS["company_mentions"])
    if not mentions:
        return result.company_id
    mention = mentions[0]
    domain, key = mention["domain"], mention["name_key"]
    found = set()
    if domain:
        held = db.companies.find_one({"domain": domain}, {"_id": 1}, session=session)
        found |= {held["_id"]} if held else set()
    if key:
        bearers = [
            c
            for c in db.companies.find({}, {"name": 1, "domain": 1}, session=session)
            if name_key(c.get("name")) == key
        ]
        domains = sorted(c["domain"] for c in bearers if c.get("domain"))
        if domain is None and domains:  # a name joins the company with the smallest domain bearing it
            found |= {c["_id"] for c in bearers if c.get("domain") == domains[0]}
        elif domain is None or not domains or domain <= domains[0]:  # and the domain-less ones bearing it
            found |= {c["_id"] for c in bearers if not c.get("domain")}
    entity = (
        f"domain:{domain}"
        if domain
        else f"name:{key}"
        if key
        else f"lead:{legacy_key(mention['legacy_lead_id']).hex()}"
    )
    survivor = _merged(db, "companies", "company_id", found, derived_id("company", entity), result, session)
    values = {name: mention[name] for name in COMPANY_VALUES}
    if domain:
        values["domain"] = domain
    _update_entity(db, "companies", survivor, values, mention["extra"], result, session)
    _save_technographics(db, survivor, split, result, session)
    return survivor


def _save_persona(db: Database, split: Mentions, result: ResearchWritten, session) -> ObjectId | None:
    mentions = columns.rows_of(split.tables["persona_mentions"], TABLE_KINDS["persona_mentions"])
    if not mentions:
        return result.persona_id
    mention = mentions[0]
    email, linkedin, key = mention["email"], mention["linkedin_url"], mention["name_key"]
    found = set()
    for column, value in (("email", email), ("linkedin_url", linkedin)):
        held = db.personas.find_one({column: value}, {"_id": 1}, session=session) if value else None
        found |= {held["_id"]} if held else set()
    if not email and not linkedin and key:  # a name joins the persona bearing it (the smallest id)
        bearers = sorted(
            p["_id"]
            for p in db.personas.find({}, {"full_name": 1}, session=session)
            if name_key(p.get("full_name")) == key
        )
        found |= set(bearers[:1])
    nodes = sorted(f"{kind}:{value}" for kind, value in (("email", email), ("linkedin", linkedin)) if value)
    entity = nodes[0] if nodes else f"name:{key or ''}"
    survivor = _merged(db, "personas", "persona_id", found, derived_id("persona", entity), result, session)
    values = {name: mention[name] for name in PERSONA_VALUES}
    _update_entity(db, "personas", survivor, values, mention["extra"], result, session)
    return survivor


def _merged(db: Database, collection: str, column: str, found: set, new_id: ObjectId, result, session) -> ObjectId:
    """The one of `found` that survives (more leads, then the smaller id), the others merged into it;
    `new_id` when none was found."""
    if not found:
        return new_id
    held = {entity: db[SOURCE_COLLECTION].count_documents({column: entity}, session=session) for entity in found}
    survivor, *others = sorted(found, key=lambda entity: (-held[entity], entity))
    if not others:
        return survivor
    kept = db[collection].find_one({"_id": survivor}, session=session)
    for other in others:
        merged = db[collection].find_one({"_id": other}, session=session)
        for name in (SOURCE_COLLECTION, "research_runs"):  # every reference moves to the survivor
            moved = db[name].update_many({column: other}, {"$set": {column: survivor}}, session=session)
            result.count(name, moved.modified_count)
        if collection == "companies":
            _move_technographics(db, other, survivor, result, session)
        db[collection].delete_one({"_id": other}, session=session)
        result.count(collection)
        result.merged.setdefault(collection, []).append(other)
        for name, value in merged.items():  # the survivor takes the other's values where it has none
            if name != "_id" and is_blank(kept.get(name)) and not is_blank(value):
                kept[name] = value
    _replace(db, collection, kept, result, session)
    return survivor


def _update_entity(db: Database, collection: str, entity: ObjectId, values: dict, extra, result, session) -> None:
    """The company or persona `entity` with the research's values over its own (the most recent wins,
    a value the research lacks stays), created with the contract's defaults when there is none."""
    stored = db[collection].find_one({"_id": entity}, session=session) or {"_id": entity}
    row = dict(stored)
    row.update((name, value) for name, value in values.items() if not is_blank(value))
    merged_extra = {**(stored.get("extra") or {}), **{k: v for k, v in (extra or {}).items() if not is_blank(v)}}
    row["extra"] = merged_extra or None
    _replace(db, collection, with_defaults(collection, row), result, session)


def _save_technographics(db: Database, company: ObjectId, split: Mentions, result, session) -> None:
    """The research's technographics into the company's: one per name without case, its values winning."""
    techs = columns.rows_of(split.tables["tech_mentions"], TABLE_KINDS["tech_mentions"])
    for tech in sorted(techs, key=lambda t: t["seq"]):
        tech_id = technographic_id(company, tech["name_key"])
        stored = db.technographics.find_one({"_id": tech_id}, session=session) or {}
        row = {**stored, "_id": tech_id, "company_id": company}
        row.update((name, tech[name]) for name in TECH_VALUES if not is_blank(tech[name]))
        row.setdefault("category", "")
        row.setdefault("confidence", DEFAULT_LEVEL)
        extra = {**(stored.get("extra") or {}), **(tech["extra"] or {})}
        row["extra"] = extra or None
        _replace(db, "technographics", row, result, session)


def _move_technographics(db: Database, source: ObjectId, target: ObjectId, result, session) -> None:
    """A merged company's technographics to the survivor (re-keyed: their ids follow the company's);
    the survivor's own win where both have one."""
    for tech in list(db.technographics.find({"company_id": source}, session=session)):
        tech_id = technographic_id(target, name_key(tech.get("name")))
        if db.technographics.find_one({"_id": tech_id}, {"_id": 1}, session=session) is None:
            _replace(db, "technographics", {**tech, "_id": tech_id, "company_id": target}, result, session)
        db.technographics.delete_one({"_id": tech["_id"]}, session=session)
        result.count("technographics")


# --- the lead's own documents ------------------------------------------------------------------------


def _lead_documents(split: Mentions, result: ResearchWritten, scored: bool) -> dict[str, dict[ObjectId, bytes]]:
    """The documents the lead should have, by collection and id, as bytes: its research run linked to
    its company and persona, citations, signals, and (`scored`) its ICP score and breakdowns."""
    wanted: dict[str, dict[ObjectId, bytes]] = {}
    runs = split.tables["research_runs"]
    wanted["research_runs"] = {
        ObjectId(i): linked(head, tail, result.company_id, result.persona_id)
        for i, head, tail in zip(*(runs[c].to_pylist() for c in ("_id", "head", "tail")))
    }
    for name in (*LEAD_LEVEL[1:], *(SCORED if scored else ())):
        table = split.tables[name]
        wanted[name] = {ObjectId(i): doc for i, doc in zip(table["_id"].to_pylist(), table["document"].to_pylist())}
    return wanted


def _stored_lead_documents(db: Database, lead: ObjectId, scored: bool, session) -> dict[str, dict[ObjectId, bytes]]:
    def raw(name: str, query: dict) -> dict[ObjectId, bytes]:
        found = db[name].with_options(codec_options=RAW_CODEC_OPTIONS).find(query, session=session)
        return {doc["_id"]: bytes(doc.raw) for doc in found}

    stored = {"research_runs": raw("research_runs", {"lead_id": lead})}
    stored["citations"] = raw("citations", {"research_run_id": {"$in": list(stored["research_runs"])}})
    stored["detected_signals"] = raw("detected_signals", {"lead_id": lead})
    if scored:
        stored["icp_scores"] = raw("icp_scores", {"lead_id": lead})
        stored["icp_factor_breakdowns"] = raw(
            "icp_factor_breakdowns", {"icp_score_id": {"$in": list(stored["icp_scores"])}}
        )
    return stored


def _converge(db: Database, name: str, wanted: dict, stored: dict, result: ResearchWritten, session) -> None:
    """Make the stored documents `stored` (id -> bytes) the `wanted` ones: only what differs is written."""
    writes = [DeleteOne({"_id": i}) for i in stored.keys() - wanted.keys()]
    for i, data in wanted.items():
        if i not in stored:
            writes.append(InsertOne(RawBSONDocument(data, RAW_CODEC_OPTIONS)))
        elif stored[i] != data:
            writes.append(ReplaceOne({"_id": i}, RawBSONDocument(data, RAW_CODEC_OPTIONS)))
    if writes:
        db[name].bulk_write(writes, ordered=True, session=session)
        result.count(name, len(writes))


def _replace(db: Database, collection: str, row: dict, result: ResearchWritten, session) -> None:
    """Store `row` as the collection's document of its id, in the contract's field order, when it differs."""
    data = document(row, COLLECTIONS[collection].columns)
    found = db[collection].with_options(codec_options=RAW_CODEC_OPTIONS).find_one({"_id": row["_id"]}, session=session)
    if found is not None and bytes(found.raw) == data:
        return
    db[collection].replace_one(
        {"_id": row["_id"]}, RawBSONDocument(data, RAW_CODEC_OPTIONS), upsert=True, session=session
    )
    result.count(collection)


def _release(db: Database, source_id, lead: ObjectId, result: ResearchWritten, session) -> None:
    """The lead's source lead leaves the pipeline: recorded as released, out of the key store."""
    released = db[RELEASED_COLLECTION]
    if released.find_one({"_id": source_id}, {"_id": 1}, session=session) is None:
        released.insert_one({"_id": source_id, "lead_id": lead, "at": datetime.now(UTC)}, session=session)
        result.count(RELEASED_COLLECTION)
    forget_lead_keys(db, [source_id], session=session)
