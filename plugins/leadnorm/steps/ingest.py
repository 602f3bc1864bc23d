"""Ingest a CSV of leads: find or create each row's company and persona, create its lead.

The file is read twice, in chunks: first to prove it readable as the contract's columns
(an unreadable file or a missing column writes nothing), then to write, chunk by chunk.
A company is found by its normalized domain, else by its name (without case; the smallest
domain where several companies bear it); a persona by email, else LinkedIn URL, else full
name. What is not found is created with the id the migration derives from the same key,
so a later migration of the same person or company lands on the same document. The lead
(status `uploaded`) has an id derived from its row's content: every write is an upsert
that only inserts, and ingesting the same file again creates nothing. Rejected rows are
reported by line number and kept in `upload_rejects` with their reason.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pymongo.database import Database

from leadnorm.contract import SOURCE_COLLECTION, UPLOAD_REJECTS_COLLECTION
from leadnorm.errors import UploadError
from leadnorm.mongo import in_chunks, insert_missing
from leadnorm.schema import COLLECTIONS
from leadnorm.transform.clean import name_key
from leadnorm.transform.ids import derived_id
from leadnorm.transform.resolve import with_defaults
from leadnorm.transform.upload import RejectedRow, UploadRow, header_columns, read_rows

log = logging.getLogger("leadnorm")
CHUNK_ROWS = 5000


@dataclass
class IngestResult:
    file: str
    rows: int = 0
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


def _chunks(path: Path, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, dict[str, str]]]:
    try:
        reader = pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8-sig", skip_blank_lines=False
        )
        for chunk in reader:
            yield chunk, header_columns(list(chunk.columns))
    except UploadError:
        raise
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UploadError(f"{path.name}: not a readable CSV file ({reason})") from None


def check_file(path: Path, chunk_rows: int = CHUNK_ROWS) -> int:
    """Read the whole file once without writing: its header and every line must parse. Rows."""
    rows = 0
    for chunk, _ in _chunks(path, chunk_rows):
        rows += len(chunk)
    if rows == 0:
        header_columns(list(pd.read_csv(path, dtype=str, nrows=0, encoding="utf-8-sig").columns))
    return rows


def ingest_csv(db: Database, path: Path, *, chunk_rows: int = CHUNK_ROWS) -> IngestResult:
    path = Path(path)
    check_file(path, chunk_rows)
    digest = file_sha256(path)
    result = IngestResult(path.name)
    companies, personas = CompanyFinder(db), PersonaFinder(db)
    line = 2  # the header is line 1
    for chunk, columns in _chunks(path, chunk_rows):
        rows, rejected = read_rows(chunk, columns, first_line=line)
        line += len(chunk)
        result.rows += len(chunk)
        result.rejected += rejected
        company_ids = companies.ids_for(rows, result)
        persona_ids = personas.ids_for(rows, result)
        create_leads(db, rows, company_ids, persona_ids, result, path.name, digest)
        record_rejects(db, rejected, path.name, digest)
    for reject in result.rejected:
        log.warning("%s line %d rejected: %s", path.name, reject.line, reject.reason)
    return result


def file_sha256(path: Path) -> str:
    """The file's sha256, read 1 MB at a time (an upload may be larger than memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _new_documents(collection: str, rows: list[dict], optional: set[str]) -> list[dict]:
    """Rows as the collection's documents, with the contract's defaults for what they lack."""
    frame = with_defaults(pd.DataFrame(rows).reindex(columns=COLLECTIONS[collection].columns), optional)
    return [
        {key: value for key, value in doc.items() if value is not None or key not in optional | {"extra"}}
        for doc in frame.to_dict("records")
    ]


def _exact_name(text: str) -> dict:
    """A name compared as the contract compares names: without case and surrounding white space."""
    return {"$regex": f"^\\s*{re.escape(text.strip())}\\s*$", "$options": "i"}


class CompanyFinder:
    """Companies by normalized domain, else by name; found ones cached for the whole file."""

    def __init__(self, db: Database):
        self.db = db
        self.by_key: dict[str, object] = {}
        self.reused: set = set()  # existing companies a row of the file points at

    def ids_for(self, rows: list[UploadRow], result: IngestResult) -> dict[int, object]:
        wanted = {row.company_key for row in rows if row.company_key} - self.by_key.keys()
        domains = [key[len("domain:") :] for key in wanted if key.startswith("domain:")]
        for part in in_chunks(domains):
            for company in self.db.companies.find({"domain": {"$in": part}}, {"domain": 1}):
                self.by_key[f"domain:{company['domain']}"] = company["_id"]
        for key in wanted - self.by_key.keys():
            if key.startswith("name:"):
                named = self.db.companies.find({"name": _exact_name(key[len("name:") :])}, {"domain": 1})
                by_domain = sorted(named, key=lambda c: (c.get("domain") is None, c.get("domain") or ""))
                if by_domain:
                    self.by_key[key] = by_domain[0]["_id"]
        self.reused |= {self.by_key[key] for key in wanted if key in self.by_key}
        created = []
        for row in rows:
            key = row.company_key
            if key and key not in self.by_key:
                self.by_key[key] = derived_id("company", key)
                created.append({"_id": self.by_key[key], "name": row.company, "domain": row.domain})
        result.companies_created += insert_missing(self.db.companies, _new_documents("companies", created, {"domain"}))
        result.companies_reused = len(self.reused)
        return {row.line: self.by_key.get(row.company_key) for row in rows}


class PersonaFinder:
    """Personas by email, else LinkedIn URL, else full name; created when none is."""

    def __init__(self, db: Database):
        self.db = db
        self.created: set = set()  # made by this file: found again in a later chunk, not "reused"
        self.reused: set = set()

    def ids_for(self, rows: list[UploadRow], result: IngestResult) -> dict[int, object]:
        found: dict[str, object] = {}
        for field_name in ("email", "linkedin_url"):
            values = {getattr(row, field_name) for row in rows if getattr(row, field_name)}
            for part in in_chunks(values):
                for persona in self.db.personas.find({field_name: {"$in": part}}, {field_name: 1}):
                    found[f"{field_name}:{persona[field_name]}"] = persona["_id"]
        ids, created = {}, {}
        for row in rows:
            match = found.get(f"email:{row.email}") or found.get(f"linkedin_url:{row.linkedin_url}")
            if match is None and not row.email and not row.linkedin_url and name_key(row.name):
                named = self.db.personas.find_one({"full_name": _exact_name(row.name)}, {"_id": 1}, sort=[("_id", 1)])
                match = named["_id"] if named else None
            if match is None:
                match = derived_id("persona", row.persona_key)
                created.setdefault(
                    match,
                    {
                        "_id": match,
                        "full_name": row.name,
                        "email": row.email,
                        "title": row.title,
                        "linkedin_url": row.linkedin_url,
                    },
                )
            elif match not in self.created:
                self.reused.add(match)
            ids[row.line] = match
        documents = _new_documents("personas", list(created.values()), {"email", "linkedin_url"})
        result.personas_created += insert_missing(self.db.personas, documents)
        self.created |= created.keys()
        result.personas_reused = len(self.reused)
        return ids


def create_leads(
    db: Database,
    rows: list[UploadRow],
    company_ids: dict[int, object],
    persona_ids: dict[int, object],
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
        leads.setdefault(
            row.lead_id,
            {
                "_id": row.lead_id,
                "name": row.name,
                "title": row.title,
                "email": row.email or "",
                "company_id": company_ids.get(row.line),
                "persona_id": persona_ids.get(row.line),
                "status": "uploaded",
                "created_at": now,
                "updated_at": now,
                "extra": extra,
            },
        )
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
