"""Ingest a CSV of leads: find or create each row's company and persona, create its lead.

The file is read twice, a chunk of rows at a time (never whole): first to prove it readable as the
contract's columns (an unreadable file or a bad header writes nothing), then to write, chunk by
chunk. How rows are read, and which are rejected: `leadnorm.transform.upload`.

A company is found by its normalized domain, else by its name (compared as `name_key` compares
names; the smallest domain where several companies bear it, one without a domain last); a persona
by email, else LinkedIn URL, else full name (the smallest id where several bear it). Rows are
resolved in file order, each seeing the database and the rows before it, whatever the chunk size.
What is not found is created with the id the migration derives from the same key, so a later
migration of the same person or company lands on the same document. The lead (status `uploaded`)
has an id derived from its row's content; every write only inserts, and ingesting the same file
again creates nothing. Rejected rows are reported by line number and kept in `upload_rejects` with
their reason; nothing of a rejected row is written.

Speed: companies are read once, in one projected scan of their names and domains, when a row first
names one; a chunk's emails and LinkedIn URLs are looked up on their indexes, and full names in a
map made from one projected scan once a row needs one (a `$regex` per name scans the collection
each time). The maps are kept current with what the file creates. A collection still empty when
the ingest begins holds only what the ingest writes: it is not read at all, and its indexes are
built after the load, as the migration's bulk load does; the others get their missing indexes first.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import pandas as pd
from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database

from leadnorm.contract import SOURCE_COLLECTION, UPLOAD_REJECTS_COLLECTION
from leadnorm.errors import UploadError
from leadnorm.mongo import in_chunks, insert_missing
from leadnorm.schema import COLLECTIONS
from leadnorm.steps.load import build_indexes_after_load
from leadnorm.transform.clean import name_key
from leadnorm.transform.ids import derived_id
from leadnorm.transform.resolve import with_defaults
from leadnorm.transform.upload import (
    OPTIONAL,
    REQUIRED,
    Header,
    Record,
    RejectedRow,
    UploadRow,
    read_header,
    read_records,
    read_row,
)

log = logging.getLogger("leadnorm")
CHUNK_ROWS = 5000
WRITTEN = ("companies", "personas", SOURCE_COLLECTION)  # in load order: referenced collections first


@dataclass
class IngestResult:
    file: str
    rows: int = 0  # loaded or rejected; blank rows are not rows
    leads_created: int = 0
    leads_existing: int = 0
    companies_created: int = 0
    companies_reused: int = 0
    personas_created: int = 0
    personas_reused: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    def as_dict(self) -> dict:
        counts = asdict(self)
        counts["rejected"] = [f"line {r.line}: {r.reason}" for r in self.rejected]
        return counts

    def render(self) -> str:
        return (
            f"{self.file}: {self.rows} rows; leads {self.leads_created} created, {self.leads_existing} already there; "
            f"companies {self.companies_created} created, {self.companies_reused} reused; "
            f"personas {self.personas_created} created, {self.personas_reused} reused; {len(self.rejected)} rejected"
        )


def _chunks(path: Path, chunk_rows: int) -> Iterator[tuple[Header, list[Record]]]:
    """The file's header and its rows, `chunk_rows` at a time. A file that cannot be read raises
    UploadError naming it: one line, nothing of its content."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            records = read_records(stream)
            header = read_header(records)
            while chunk := list(islice(records, chunk_rows)):
                yield header, chunk
    except UploadError as exc:
        raise UploadError(f"{path.name}: {exc}") from None
    except OSError as exc:
        raise UploadError(f"{path.name}: not a readable CSV file ({exc.strerror or type(exc).__name__})") from None


def check_file(path: Path) -> int:
    """Read the whole file once without writing: its header and every row must parse. Its rows."""
    path = Path(path)
    return sum(not record.blank for _, chunk in _chunks(path, CHUNK_ROWS) for record in chunk)


def ingest_csv(db: Database, path: Path, *, chunk_rows: int = CHUNK_ROWS, checked: bool = False) -> IngestResult:
    """Load the file; `checked` when the caller ran `check_file` on it already (the command line
    does, before it connects), else that is the first of the two reads."""
    path = Path(path)
    if not checked:
        check_file(path)
    digest = file_sha256(path)
    result = IngestResult(path.name)
    empty = prepare_indexes(db)
    companies = CompanyFinder(db.companies, fresh="companies" in empty)
    personas = PersonaFinder(db.personas, fresh="personas" in empty)
    for header, records in _chunks(path, chunk_rows):
        chunk = [read_row(header, record) for record in records]
        rows = [row for row in chunk if isinstance(row, UploadRow)]
        rejected = [row for row in chunk if isinstance(row, RejectedRow)]
        result.rows += len(rows) + len(rejected)
        result.rejected += rejected
        company_ids = companies.ids_for(rows, result)
        persona_ids = personas.ids_for(rows, result)
        create_leads(db, rows, company_ids, persona_ids, result, path.name, digest)
        record_rejects(db, rejected, path.name, digest)
    for name in empty:
        build_indexes_after_load(db, name, list(COLLECTIONS[name].indexes))
    for reject in result.rejected:
        log.warning("%s line %d: rejected, %s", path.name, reject.line, reject.reason)
    return result


API_SOURCE = "api"  # what `extra.upload.file` says of a lead created through the application's API


def ingest_one(db: Database, fields: dict[str, str]) -> tuple[ObjectId | None, IngestResult]:
    """One lead from the fields of a CSV row (`name`, `title`, `company`, `email`, optional
    `linkedin_url`, `phone`, `domain`), by the same rules as a file's rows: the design's upload for
    one lead (`POST /api/leads`). Returns its id (None when rejected: the result says why) and what
    was created; the same fields again create nothing."""
    columns = [column for column in (*REQUIRED, *OPTIONAL) if column in fields]
    text = "\n".join(f"{column}={fields[column]}" for column in columns)
    record = Record(1, 1, [fields[column] for column in columns])
    row = read_row(Header({column: i for i, column in enumerate(columns)}, len(columns)), record)
    result = IngestResult(API_SOURCE, rows=1)
    if isinstance(row, RejectedRow):
        result.rejected.append(row)
        return None, result
    empty = prepare_indexes(db)
    company_ids = CompanyFinder(db.companies, fresh="companies" in empty).ids_for([row], result)
    persona_ids = PersonaFinder(db.personas, fresh="personas" in empty).ids_for([row], result)
    digest = hashlib.sha256(text.encode()).hexdigest()
    create_leads(db, [row], company_ids, persona_ids, result, API_SOURCE, digest)
    for name in empty:
        build_indexes_after_load(db, name, list(COLLECTIONS[name].indexes))
    return row.lead_id, result


def prepare_indexes(db: Database) -> list[str]:
    """The collections written that are empty now: their indexes are built after the load (a run that
    dies first leaves them filled, and the next builds them here). The others get the contract's
    indexes they lack; one of the same name with other options is left to the migration's load."""
    empty = []
    for name in WRITTEN:
        if db[name].find_one({}, {"_id": 1}) is None:
            empty.append(name)
            continue
        held = {index["name"] for index in db[name].list_indexes()}
        missing = [model for model in COLLECTIONS[name].indexes if model.document["name"] not in held]
        if missing:
            db[name].create_indexes(missing)
    return empty


def file_sha256(path: Path) -> str:
    """The file's sha256, read 1 MB at a time (an upload may be larger than memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _new_documents(collection: str, rows: list[dict], optional: set[str]) -> list[dict]:
    """Rows as the collection's documents, with the contract's defaults for what they lack."""
    if not rows:
        return []
    frame = with_defaults(pd.DataFrame(rows).reindex(columns=COLLECTIONS[collection].columns), optional)
    return [
        {key: value for key, value in doc.items() if value is not None or key not in optional | {"extra"}}
        for doc in frame.to_dict("records")
    ]


def _look_up(collection: Collection, field_name: str, values: set, known: dict) -> None:
    """`known[value] = _id` for each of `values` a document of `collection` holds in `field_name`."""
    for part in in_chunks(values - known.keys()):
        for doc in collection.find({field_name: {"$in": part}}, {field_name: 1}):
            known[doc[field_name]] = doc["_id"]


class CompanyFinder:
    """Companies by normalized domain, else by name; created when none is found."""

    def __init__(self, collection: Collection, *, fresh: bool):
        self.collection = collection  # fresh: empty when the ingest began, all it will hold is known here
        self.by_domain: dict[str, ObjectId] = {}
        self.by_name: dict[str, tuple] = {}  # name_key -> rank (no domain, domain, _id) of the one to join
        self.read = fresh  # whether the maps hold the collection's companies
        self.created: set[ObjectId] = set()
        self.reused: set[ObjectId] = set()  # existing companies a row of the file points at

    def ids_for(self, rows: list[UploadRow], result: IngestResult) -> dict[int, ObjectId | None]:
        self._read(rows)
        ids, created = {}, []
        for row in rows:
            if row.domain:
                found = self.by_domain.get(row.domain)
            else:
                key = name_key(row.company)
                if key is None:
                    ids[row.line] = None  # no company named
                    continue
                found = self.by_name[key][-1] if key in self.by_name else None
            if found is None:
                found = self._create(row, created)
            elif found not in self.created:
                self.reused.add(found)
            ids[row.line] = found
        result.companies_created += insert_missing(self.collection, _new_documents("companies", created, {"domain"}))
        result.companies_reused = len(self.reused)
        return ids

    def _read(self, rows: list[UploadRow]) -> None:
        """The collection's domains and names, in one projected scan once a row names a company: a
        domain-less row joins by name, compared as `name_key` compares names, which no index serves."""
        if not self.read and any(row.company_key for row in rows):
            for company in self.collection.find({}, {"name": 1, "domain": 1}):
                if company.get("domain"):
                    self.by_domain[company["domain"]] = company["_id"]
                self._bear(name_key(company.get("name")), company.get("domain"), company["_id"])
            self.read = True

    def _create(self, row: UploadRow, created: list[dict]) -> ObjectId:
        company_id = derived_id("company", row.company_key)
        created.append({"_id": company_id, "name": row.company, "domain": row.domain})
        self.created.add(company_id)
        if row.domain:
            self.by_domain[row.domain] = company_id
        self._bear(name_key(row.company), row.domain, company_id)
        return company_id

    def _bear(self, key: str | None, domain: str | None, company_id: ObjectId) -> None:
        """A company bears the name `key`: the one a domain-less row of that name joins is the first
        by (no domain, domain, id)."""
        rank = (domain is None, domain or "", company_id)
        if key is not None and (key not in self.by_name or rank < self.by_name[key]):
            self.by_name[key] = rank


class PersonaFinder:
    """Personas by email, else LinkedIn URL, else full name; created when none is found."""

    def __init__(self, collection: Collection, *, fresh: bool):
        self.collection = collection
        self.fresh = fresh  # empty when the ingest began: all it will hold is known here
        self.by_email: dict[str, ObjectId] = {}
        self.by_linkedin: dict[str, ObjectId] = {}
        self.by_name: dict[str, ObjectId] = {}  # name_key -> the smallest _id bearing it
        self.names_read = fresh
        self.created: set[ObjectId] = set()  # made by this file: found again in a later row, not "reused"
        self.reused: set[ObjectId] = set()

    def ids_for(self, rows: list[UploadRow], result: IngestResult) -> dict[int, ObjectId]:
        self._read(rows)
        ids, created = {}, []
        for row in rows:
            found = self.by_email.get(row.email) if row.email else None
            if found is None and row.linkedin_url:
                found = self.by_linkedin.get(row.linkedin_url)
            if found is None and not row.email and not row.linkedin_url:
                found = self.by_name.get(name_key(row.name))
            if found is None:
                found = self._create(row, created)
            elif found not in self.created:
                self.reused.add(found)
            ids[row.line] = found
        documents = _new_documents("personas", created, {"email", "linkedin_url"})
        result.personas_created += insert_missing(self.collection, documents)
        result.personas_reused = len(self.reused)
        return ids

    def _read(self, rows: list[UploadRow]) -> None:
        """What the chunk needs of the collection, read before any row is resolved."""
        if self.fresh:
            return
        _look_up(self.collection, "email", {row.email for row in rows if row.email}, self.by_email)
        linkedin_urls = {row.linkedin_url for row in rows if row.linkedin_url}
        _look_up(self.collection, "linkedin_url", linkedin_urls, self.by_linkedin)
        if not self.names_read and any(not row.email and not row.linkedin_url for row in rows):
            for persona in self.collection.find({}, {"full_name": 1}):
                self._bear(name_key(persona.get("full_name")), persona["_id"])
            self.names_read = True

    def _create(self, row: UploadRow, created: list[dict]) -> ObjectId:
        persona_id = derived_id("persona", row.persona_key)
        created.append(
            {
                "_id": persona_id,
                "full_name": row.name,
                "email": row.email,
                "title": row.title,
                "linkedin_url": row.linkedin_url,
            }
        )
        self.created.add(persona_id)
        if row.email:
            self.by_email[row.email] = persona_id
        if row.linkedin_url:
            self.by_linkedin[row.linkedin_url] = persona_id
        self._bear(name_key(row.name), persona_id)
        return persona_id

    def _bear(self, key: str | None, persona_id: ObjectId) -> None:
        if key is not None and (key not in self.by_name or persona_id < self.by_name[key]):
            self.by_name[key] = persona_id


def create_leads(
    db: Database,
    rows: list[UploadRow],
    company_ids: dict[int, ObjectId | None],
    persona_ids: dict[int, ObjectId],
    result: IngestResult,
    file_name: str,
    digest: str,
) -> None:
    now = datetime.now(UTC)
    leads = {}
    for row in rows:
        extra = {"upload": {"file": file_name, "sha256": digest, "line": row.line}}
        if row.phone:
            extra["phone"] = row.phone
        lead = {
            "_id": row.lead_id,
            "name": row.name,
            "title": row.title,
            "email": row.email or "",
            "company_id": company_ids[row.line],
            "persona_id": persona_ids[row.line],
            "status": "uploaded",
            "created_at": now,
            "updated_at": now,
            "extra": extra,
        }
        if lead["company_id"] is None:  # a reference with no target is no field (the contract)
            del lead["company_id"]
        leads.setdefault(row.lead_id, lead)
    created = insert_missing(db[SOURCE_COLLECTION], list(leads.values()))
    result.leads_created += created
    result.leads_existing += len(rows) - created


def record_rejects(db: Database, rejected: list[RejectedRow], file_name: str, digest: str) -> None:
    now = datetime.now(UTC)
    documents = [
        {"_id": {"sha256": digest, "line": r.line}, "file": file_name, "line": r.line, "reason": r.reason, "at": now}
        for r in rejected
    ]
    insert_missing(db[UPLOAD_REJECTS_COLLECTION], documents)
