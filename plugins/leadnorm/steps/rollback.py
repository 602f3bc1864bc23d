"""Rollback: the database as it was when a backup was taken, minus the bookkeeping the runs keep.

A rollback to a backup replays the chain from the newest backup of the database down to it:
each increment (`leadnorm.steps.backup`) deletes the ids its run may have written or deleted and
puts back the documents they held, newest first, so the runs are undone in reverse; a full backup
on the way restores every collection it holds whole, byte for byte with its indexes, and nothing
after it needs replaying. Every backup of the chain is checked file by file against its manifest
(size, sha256, document count), and each must name the one before it as its parent, before
anything changes: a missing, altered or truncated file, or a backup missing from the chain,
refuses the rollback with one line naming it.

Then the collections the migrations wrote that the chain does not cover are dropped, and with
them the bookkeeping (`migration_lead_keys`, `migration_feed`): the next refresh trusts neither,
resolves and scans everything, and rebuilds them. The application's own leads (uploaded ones)
survive whatever the chain holds. The backups after the one rolled back to belong to runs that
are undone: they are set aside (`<name>.undone`, pruned a day later) and belong to no chain again.
A rollback can be rerun: it starts from the chain again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from bson import json_util
from pymongo import IndexModel, ReplaceOne
from pymongo.database import Database

from leadnorm.contract import (
    APPLICATION_LEAD,
    CLEANED_COLLECTION,
    COLLECTION_NAMES,
    LOCKS_COLLECTION,
    NESTED_LEAD,
    NORMALIZED_LEAD,
    RELEASED_COLLECTION,
    ROLLBACK_STASH_COLLECTION,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.errors import BackupError
from leadnorm.mongo import in_chunks, insert_missing, source_id, split_bson
from leadnorm.steps.backup import (
    FULL,
    INCREMENT,
    MANIFEST,
    PARTIAL,
    TOUCHED,
    UNDONE,
    iter_backup_documents,
    list_backups,
    restore_collection,
)

BOOKKEEPING_PREFIX = "migration_"  # migration_rejects, migration_locks, migration_cleaned, ...
_COLLECTION_NAME = re.compile(r"(?!system\.)[A-Za-z0-9_][A-Za-z0-9_.-]*")
_READ_CHUNK = 1 << 20


def check_backup(folder: Path) -> dict:
    """The backup's manifest, once every file it lists is there with its recorded size, sha256
    and document count; otherwise BackupError, one line naming the file."""
    manifest = _read_manifest(folder)
    data = folder / manifest["database"]
    for name, recorded in manifest["collections"].items():
        _check_dump(data / f"{name}.bson", recorded)
        if manifest["kind"] == FULL and not (data / f"{name}.metadata.json").is_file():
            raise BackupError(f"{data / f'{name}.metadata.json'}: missing from the backup")
    for name, recorded in manifest.get(TOUCHED, {}).items():
        _check_dump(folder / TOUCHED / f"{name}.bson", recorded)
    return manifest


def _read_manifest(folder: Path) -> dict:
    if folder.name.endswith(PARTIAL):
        raise BackupError(f"{folder}: not a complete backup (still being written, or left by a killed run)")
    if folder.name.endswith(UNDONE):
        raise BackupError(f"{folder}: the backup of a run a rollback undid, in no chain any more")
    if not folder.is_dir():
        raise BackupError(f"{folder}: no such backup folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder}: not a complete backup ({MANIFEST} is missing)")
    try:
        manifest = json.loads(path.read_text())
        manifest.setdefault("kind", FULL)  # written before increments existed
        database, collections, kind = manifest["database"], manifest["collections"], manifest["kind"]
        records = [*collections.values(), *manifest.get(TOUCHED, {}).values()]
        recorded_ok = all(
            isinstance(r["documents"], int) and isinstance(r["bytes"], int) and isinstance(r["sha256"], str)
            for r in records
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise BackupError(f"{path}: unreadable, not a backup manifest") from None
    names = [database, *collections, *manifest.get(TOUCHED, {})]
    names_ok = isinstance(database, str) and all(map(_COLLECTION_NAME.fullmatch, names))
    shape_ok = kind == FULL or (kind == INCREMENT and manifest.get(TOUCHED, {}).keys() == collections.keys())
    if not (recorded_ok and names_ok and shape_ok):
        raise BackupError(f"{path}: not a backup manifest (unexpected names or values)")
    if kind == FULL and SOURCE_COLLECTION not in collections:
        raise BackupError(f"{path}: the backup holds no {SOURCE_COLLECTION} collection")
    return manifest


def _check_dump(path: Path, recorded: dict) -> None:
    if not path.is_file():
        raise BackupError(f"{path}: missing from the backup")
    size = path.stat().st_size
    if size != recorded["bytes"]:
        raise BackupError(f"{path}: {size} bytes, the manifest records {recorded['bytes']} (truncated or altered)")
    sha256, documents = _scan_dump(path)
    if sha256 != recorded["sha256"]:
        raise BackupError(f"{path}: sha256 differs from the manifest (altered)")
    if documents != recorded["documents"]:
        raise BackupError(f"{path}: holds {documents} documents, the manifest records {recorded['documents']}")


def _scan_dump(path: Path) -> tuple[str, int | None]:
    """The file's sha256 and its document count, None when it is not whole BSON documents;
    read one document at a time, so a large dump never sits in memory."""
    digest, documents = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while header := stream.read(4):
            size = int.from_bytes(header, "little")
            body = stream.read(max(size - 4, 0))
            digest.update(header + body)
            if size < 5 or len(body) != size - 4 or body[-1:] != b"\x00":
                while chunk := stream.read(_READ_CHUNK):
                    digest.update(chunk)
                return digest.hexdigest(), None
            documents += 1
    return digest.hexdigest(), documents


def check_chain(folder: Path) -> list[tuple[Path, dict]]:
    """The backups a rollback to `folder` replays, newest first, each checked (`check_backup`) with
    its manifest: `folder` alone when it is a full backup; else it and the backups of its database
    after it, up to the first full one (which restores everything before it alone) or the newest.
    Each must name the one before it as its parent; otherwise BackupError, one line naming the gap,
    before anything changes."""
    manifest = check_backup(folder)
    chain = [(folder, manifest)]
    if manifest["kind"] == FULL:
        return chain
    backups = list_backups(folder.parent, manifest["database"])
    if folder not in backups:
        raise BackupError(f"{folder}: an increment is restored from the folder of its chain, beside the other backups")
    for newer in backups[backups.index(folder) + 1 :]:
        found = check_backup(newer)
        if found.get("parent") != chain[-1][0].name:
            named = found.get("parent") or "not recorded (written before backups were chained)"
            raise BackupError(
                f"{newer}: a broken chain: its parent is {named}, but the backup before it is {chain[-1][0].name}"
            )
        chain.append((newer, found))
        if found["kind"] == FULL:
            break
    return chain[::-1]


def latest_backup(backup_dir: Path, db_name: str) -> Path:
    """The newest complete backup of `db_name`. Not checked here: an altered newest backup is
    refused by `rollback`, never silently passed over for an older one."""
    backups = list_backups(backup_dir, db_name)
    if not backups:
        raise BackupError(f"no complete backup of database {db_name!r} in {backup_dir}")
    return backups[-1]


@dataclass
class RollbackResult:
    folder: Path
    replayed: list[str] = field(default_factory=list)  # the chain's backups, newest first, as "name (kind)"
    restored: dict[str, int] = field(default_factory=dict)  # collection -> documents restored
    dropped: dict[str, int] = field(default_factory=dict)  # collection -> documents it held
    normalized_leads_before: int = 0
    normalized_leads_after: int = 0
    cleaned_kept: int = 0  # migration_cleaned records still true of the restored source
    application_leads_kept: int = 0  # the application's own leads (uploaded, or with research it wrote), put back
    set_aside: list[str] = field(default_factory=list)  # backups of the runs undone

    def as_dict(self) -> dict:
        return {**asdict(self), "folder": str(self.folder)}

    def render(self) -> str:
        restored = ", ".join(f"{name} {count}" for name, count in self.restored.items())
        dropped = ", ".join(f"{name} ({count})" for name, count in self.dropped.items()) or "nothing"
        replayed = f" (replayed {', '.join(self.replayed)})" if len(self.replayed) > 1 else ""
        return (
            f"rollback to {self.folder}{replayed}: restored {restored}; dropped {dropped}; "
            f"normalized leads {self.normalized_leads_before} -> {self.normalized_leads_after}; "
            f"the application's leads kept {self.application_leads_kept}"
        )


def rollback(db: Database, folder: Path, *, keep_locks: bool = False) -> RollbackResult:
    """Replay the chain down to `folder` (`check_chain`) and drop the other collections the
    migrations wrote; set aside the backups of the runs undone.

    The application's own leads (uploaded ones) and the companies and personas they reference
    are first copied into `migration_rollback_stash`, and put back from there after the restore:
    a rollback killed at any point and run again loses none of them. `keep_locks` leaves
    `migration_locks` alone: a caller holding the database's lock keeps it."""
    chain = check_chain(folder)
    database = chain[0][1]["database"]
    if database != db.name:
        raise BackupError(f"{folder}: a backup of database {database!r}, not {db.name!r}")
    result = RollbackResult(folder, normalized_leads_before=db[SOURCE_COLLECTION].count_documents(NORMALIZED_LEAD))
    stash_application_data(db)
    covered = set()
    for member, manifest in chain:
        result.replayed.append(f"{member.name} ({manifest['kind']})")
        covered |= set(manifest["collections"])
        restore = _restore_whole if manifest["kind"] == FULL else _undo_increment
        for name, count in restore(db, member, manifest).items():
            result.restored[name] = result.restored.get(name, 0) + count

    existing = set(db.list_collection_names())
    written = [name for name in COLLECTION_NAMES if name != SOURCE_COLLECTION]
    written += sorted(name for name in existing if name.startswith(BOOKKEEPING_PREFIX))
    spared = {*covered, CLEANED_COLLECTION, RELEASED_COLLECTION, ROLLBACK_STASH_COLLECTION}  # (the released: put back)
    if keep_locks:
        spared.add(LOCKS_COLLECTION)
    for name in dict.fromkeys(written):
        if name in existing and name not in spared:
            result.dropped[name] = db[name].count_documents({})
            db.drop_collection(name)
    if CLEANED_COLLECTION in existing:
        held = db[CLEANED_COLLECTION].count_documents({})
        result.cleaned_kept = _forget_undone_cleanups(db)
        if not result.cleaned_kept:
            result.dropped[CLEANED_COLLECTION] = held
            db.drop_collection(CLEANED_COLLECTION)
    result.application_leads_kept = put_back(db)
    db.drop_collection(ROLLBACK_STASH_COLLECTION)
    result.normalized_leads_after = db[SOURCE_COLLECTION].count_documents(NORMALIZED_LEAD)
    result.set_aside = [str(undone) for undone in set_aside_after(folder, database)]
    return result


def _restore_whole(db: Database, folder: Path, manifest: dict) -> dict[str, int]:
    """Every collection of a full backup, whole, with its indexes; `leads` first."""
    restored = {}
    for name in sorted(manifest["collections"], key=lambda n: n != SOURCE_COLLECTION):
        restored[name] = restore_collection(db, folder, name)
        _restore_indexes(db, folder / manifest["database"] / f"{name}.metadata.json", name)
    return restored


def _undo_increment(db: Database, folder: Path, manifest: dict, batch_size: int = 1000) -> dict[str, int]:
    """Each collection of an increment as it was before its run: the ids the run may have written
    or deleted deleted, the documents they held put back, byte for byte."""
    restored = {}
    for name in manifest["collections"]:
        ids = [source_id(key) for key in split_bson((folder / TOUCHED / f"{name}.bson").read_bytes())]
        for part in in_chunks(ids):
            db[name].delete_many({"_id": {"$in": part}})
        documents = iter_backup_documents(folder, name)
        restored[name] = 0
        while batch := list(islice(documents, batch_size)):
            db[name].insert_many(batch, ordered=False)
            restored[name] += len(batch)
    return restored


def set_aside_after(folder: Path, database: str) -> list[Path]:
    """Rename the backups of `database` taken after `folder` to `<name>.undone`: their runs are
    undone, and a later rollback must not replay them. Dated now, so pruning waits a day."""
    backups = list_backups(folder.parent, database)
    undone = []
    for newer in backups[backups.index(folder) + 1 :] if folder in backups else ():
        target = newer.with_name(newer.name + UNDONE)
        newer.rename(target)
        os.utime(target)
        undone.append(target)
    return undone


# What the stash keeps, in the order it is put back: referenced collections first. The companies, personas
# and technographics the application's leads hold are put back where the restore left none (a restored one
# wins: other leads share them); the leads and what hangs on them are the application's own, and win.
STASHED = (
    "companies",
    "personas",
    "technographics",
    SOURCE_COLLECTION,
    "research_runs",
    "citations",
    "detected_signals",
    "icp_scores",
    "icp_factor_breakdowns",
)
APPLICATION_OWNS = frozenset(STASHED[3:])


def stash_application_data(db: Database, batch_size: int = 1000) -> None:
    """Copy the application's own leads (uploaded, or with research it wrote: `APPLICATION_LEAD`), what
    hangs on them, and the companies (with their technographics) and personas they reference into the
    stash: data no migration wrote, so no rollback removes it. What a killed rollback stashed stays
    there (it may be gone from its collection by now); this adds what is missing."""
    stash = db[ROLLBACK_STASH_COLLECTION]
    leads = db[SOURCE_COLLECTION].find(APPLICATION_LEAD, batch_size=batch_size)
    while batch := list(islice(leads, batch_size)):
        found = {SOURCE_COLLECTION: batch}
        for collection, column in (("companies", "company_id"), ("personas", "persona_id")):
            found[collection] = _by(db, collection, "_id", {lead.get(column) for lead in batch} - {None})
        found["technographics"] = _by(db, "technographics", "company_id", {c["_id"] for c in found["companies"]})
        lead_ids = {lead["_id"] for lead in batch}
        for collection in ("research_runs", "detected_signals", "icp_scores"):
            found[collection] = _by(db, collection, "lead_id", lead_ids)
        found["citations"] = _by(db, "citations", "research_run_id", {r["_id"] for r in found["research_runs"]})
        scores = {score["_id"] for score in found["icp_scores"]}
        found["icp_factor_breakdowns"] = _by(db, "icp_factor_breakdowns", "icp_score_id", scores)
        for collection, documents in found.items():
            insert_missing(stash, _stashed(collection, documents))


def _by(db: Database, collection: str, field: str, values: set) -> list[dict]:
    return [doc for part in in_chunks(values) for doc in db[collection].find({field: {"$in": part}})]


def _stashed(collection: str, documents: list[dict]) -> list[dict]:
    return [{"_id": {"collection": collection, "id": doc["_id"]}, "document": doc} for doc in documents]


def put_back(db: Database, batch_size: int = 1000) -> int:
    """Put what the stash holds back: the application's leads and what hangs on them as they were,
    the companies, personas and technographics where the restore left none; returns the leads."""
    stash, leads = db[ROLLBACK_STASH_COLLECTION], 0
    for collection in STASHED:
        found = stash.find({"_id.collection": collection}, batch_size=batch_size)
        while batch := [record["document"] for record in islice(found, batch_size)]:
            if collection in APPLICATION_OWNS:
                db[collection].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in batch], ordered=False)
            else:
                insert_missing(db[collection], batch)
            leads += len(batch) if collection == SOURCE_COLLECTION else 0
    return leads


def _restore_indexes(db: Database, metadata: Path, collection: str) -> None:
    """The indexes the collection had when backed up (restore_collection brings only documents)."""
    indexes = json_util.loads(metadata.read_text()).get("indexes", [])
    models = [
        IndexModel(list(spec["key"].items()), **{k: v for k, v in spec.items() if k not in ("key", "v", "ns")})
        for spec in indexes
        if spec.get("name") != "_id_"
    ]
    if models:
        db[collection].create_indexes(models)


def _forget_undone_cleanups(db: Database, batch_size: int = 1000) -> int:
    """Delete the cleanup records the restore made untrue (their source lead is back, or their
    normalized lead is gone); returns how many remain."""
    cleaned, leads = db[CLEANED_COLLECTION], db[SOURCE_COLLECTION]
    records = cleaned.find({}, {"lead_id": 1}, sort=[("_id", 1)])
    stale, kept = [], 0
    while batch := list(islice(records, batch_size)):
        source_ids = [r["_id"] for r in batch]
        back = {legacy_key(d["_id"]) for d in leads.find({**NESTED_LEAD, "_id": {"$in": source_ids}}, {"_id": 1})}
        lead_ids = [r.get("lead_id") for r in batch]
        present = {d["_id"] for d in leads.find({**NORMALIZED_LEAD, "_id": {"$in": lead_ids}}, {"_id": 1})}
        for record in batch:
            if legacy_key(record["_id"]) in back or record.get("lead_id") not in present:
                stale.append(record["_id"])
            else:
                kept += 1
    for start in range(0, len(stale), batch_size):
        cleaned.delete_many({"_id": {"$in": stale[start : start + batch_size]}})
    return kept
