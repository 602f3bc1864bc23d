"""Cleanup: delete the nested leads already migrated (the design's step 4), and only safely.

Refused, with one line, unless the operator names the database, verification passed and
a backup taken in this run checks out against its manifest; a migrated lead the backup
does not hold is kept, and so is one whose marks are not the migration's (`leadnorm.source`) or
whose content changed since it was migrated. Each deleted source lead is recorded in `migration_cleaned`
(`{_id: source _id, lead_id, cleaned_at}`) before it is deleted, so later refreshes keep
its normalized lead, a crash in between loses nothing, and a rerun finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from tempfile import TemporaryDirectory

from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, ReplaceOne
from pymongo.database import Database

from leadnorm.config import backups_dir
from leadnorm.contract import (
    CLEANED_COLLECTION,
    MIGRATED_FINGERPRINT,
    MIGRATED_LEAD_ID,
    NESTED_FIELD,
    NESTED_LEAD,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.errors import BackupError, LeadnormError
from leadnorm.mongo import require_source
from leadnorm.source import fingerprint
from leadnorm.steps.backup import backup
from leadnorm.steps.extract import nested_source_leads
from leadnorm.steps.pipeline import BACKED_UP, verify_database
from leadnorm.steps.rollback import check_backup
from leadnorm.steps.runstore import RunFolder
from leadnorm.steps.scope import forget_lead_keys
from leadnorm.steps.verify import VerifyReport


@dataclass
class CleanupResult:
    backup_folder: Path
    deleted: int = 0  # nested leads deleted, each recorded in migration_cleaned
    not_in_backup: int = 0  # migrated nested leads kept because the backup does not hold them

    def as_dict(self) -> dict:
        return {"backup_folder": str(self.backup_folder), "deleted": self.deleted, "not_in_backup": self.not_in_backup}

    def render(self) -> str:
        kept = f"; {self.not_in_backup} kept (not in the backup)" if self.not_in_backup else ""
        return f"cleanup: {self.deleted} migrated nested leads deleted{kept}; backup: {self.backup_folder}"


def check_confirm(db: Database, confirm: str) -> None:
    """Deleting source documents needs the operator to name the database: a typo or the wrong
    connection then deletes nothing."""
    if confirm != db.name:
        raise LeadnormError(
            f"cleanup deletes the migrated nested leads of database {db.name!r}: "
            f"confirm with that name (got {confirm!r})"
        )


def cleanup(
    db: Database,
    confirm: str,
    *,
    backup_folder: Path | None,
    verify_report: VerifyReport | None,
    batch_size: int = 1000,
) -> CleanupResult:
    """Delete the nested leads marked `_migrated: true`, each recorded in `migration_cleaned` first."""
    check_confirm(db, confirm)
    if verify_report is None or not verify_report.ok:
        problems = "; ".join(verify_report.problems()) if verify_report else "it was not run"
        raise LeadnormError(f"cleanup refused: verification did not pass ({problems})")
    if backup_folder is None:
        raise LeadnormError("cleanup refused: no backup was taken in this run")
    manifest = check_backup(backup_folder)
    if manifest["database"] != db.name:
        raise BackupError(f"{backup_folder}: a backup of database {manifest['database']!r}, not {db.name!r}")

    backed_up = _backed_up_nested_leads(backup_folder / db.name / f"{SOURCE_COLLECTION}.bson")
    migrated = [
        (lead.source_id, lead.marks[MIGRATED_LEAD_ID])
        for lead in nested_source_leads(db)
        if lead.migrated and fingerprint(lead.content) == lead.marks[MIGRATED_FINGERPRINT]  # unchanged since
    ]
    deletable = [(source_id, lead_id) for source_id, lead_id in migrated if legacy_key(source_id) in backed_up]
    result = CleanupResult(backup_folder, not_in_backup=len(migrated) - len(deletable))
    cleaned_at = datetime.now(UTC)
    pairs = iter(deletable)
    while batch := list(islice(pairs, batch_size)):
        db[CLEANED_COLLECTION].bulk_write(
            [
                ReplaceOne(
                    {"_id": source_id}, {"_id": source_id, "lead_id": lead_id, "cleaned_at": cleaned_at}, upsert=True
                )
                for source_id, lead_id in batch
            ],
            ordered=False,
        )
        # each by its own marks: the derived lead id is exact where `_id` equality is not (42 == 42.0)
        deletes = [
            DeleteOne({"_id": source_id, MIGRATED_LEAD_ID: lead_id, **NESTED_LEAD}) for source_id, lead_id in batch
        ]
        result.deleted += db[SOURCE_COLLECTION].bulk_write(deletes, ordered=False).deleted_count
        forget_lead_keys(db, [source_id for source_id, _ in batch])
    return result


def _backed_up_nested_leads(dump: Path) -> set[bytes]:
    """The `legacy_key`s of the nested leads a (checked) dump holds, read one document at a time."""
    keys = set()
    with dump.open("rb") as stream:
        while header := stream.read(4):
            document = RawBSONDocument(header + stream.read(int.from_bytes(header, "little") - 4))
            if NESTED_FIELD in document:
                keys.add(legacy_key(document["_id"]))
    return keys


def run_cleanup(db: Database, confirm: str, backup_dir: Path | None = None) -> CleanupResult:
    """Cleanup as one call: back up, verify against a fresh extract, then delete."""
    check_confirm(db, confirm)
    require_source(db)
    folder = backup(db, backup_dir or backups_dir(), BACKED_UP)
    with TemporaryDirectory(prefix="leadnorm-cleanup-") as tmp:
        report = verify_database(db, run=RunFolder(Path(tmp) / "run"))
    return cleanup(db, confirm, backup_folder=folder, verify_report=report)
