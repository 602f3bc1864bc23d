"""Backups, taken before a run's first write: whole (full) or of what the run may change (an increment).

A full backup, `<backup_dir>/<db>-<UTC timestamp>/<db>/<collection>.bson`, holds the documents as
the server stores them (raw BSON, `_id` order) and `<collection>.metadata.json` their indexes, so
`mongorestore` reads the folder as it reads a mongodump. A refresh that works on a scope takes an
increment instead: per collection, the documents it may replace or delete as they are before it
(`<db>/<collection>.bson` again) and every id it may write or delete (`touched/<collection>.bson`,
one `{_id: …}` document each), so a rollback deletes those ids and puts the documents back
(`leadnorm.steps.rollback`). Its cost follows the scope, not the source.

`manifest.json` records each file's document count and sha256, the backup's kind and its parent:
the backup of the database taken before it, so a rollback over several runs can tell a chain with a
backup missing from a whole one. The folder appears under its final name only once complete: a run
killed mid-backup leaves no half backup behind. Backups hold personal data: folders are created
0700, files 0600.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Generator, Iterable, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo.database import Database

from leadnorm.config import mask_uri
from leadnorm.errors import BackupError, StagingError
from leadnorm.mongo import in_chunks, source_id, split_bson
from leadnorm.steps.extract import ID_ORDER
from leadnorm.steps.runstore import private_dir, private_file, write_private

MANIFEST = "manifest.json"
FULL, INCREMENT = "full", "increment"
TOUCHED = "touched"  # an increment's folder of the ids it covers, per collection
PARTIAL = ".partial"  # a backup being written, or one a killed run left behind
UNDONE = ".undone"  # a backup of a run a rollback undid: in no chain any more (`leadnorm.steps.rollback`)


class _Dump:
    """One BSON file of a backup being written, counted and hashed as it goes."""

    def __init__(self, out) -> None:
        self.out, self.digest, self.documents, self.bytes = out, hashlib.sha256(), 0, 0

    def write(self, chunk: bytes, documents: int) -> None:
        self.out.write(chunk)
        self.digest.update(chunk)
        self.documents += documents
        self.bytes += len(chunk)

    def record(self) -> dict:
        return {"documents": self.documents, "bytes": self.bytes, "sha256": self.digest.hexdigest()}


@contextmanager
def _dump(path: Path) -> Generator[_Dump]:
    with private_file(path) as out:
        dump = _Dump(out)
        yield dump


def _dump_collection(db: Database, name: str, folder: Path) -> dict:
    with _dump(folder / f"{name}.bson") as dump:
        for chunk in db[name].find_raw_batches({}, batch_size=2000, **ID_ORDER):
            dump.write(chunk, len(split_bson(chunk)))
    info = next(db.list_collections(filter={"name": name}), {})
    metadata = {
        "indexes": list(db[name].list_indexes()),
        "uuid": _uuid_hex(info.get("info", {}).get("uuid")),
        "collectionName": name,
        "type": info.get("type", "collection"),
        "options": info.get("options", {}),
    }
    write_private(
        folder / f"{name}.metadata.json",
        json_util.dumps(metadata, json_options=json_util.CANONICAL_JSON_OPTIONS).encode(),
    )
    return dump.record()


def _uuid_hex(uuid) -> str:
    """mongodump writes the collection UUID as 32 hex digits."""
    if uuid is None:
        return ""
    return uuid.hex if isinstance(uuid, UUID) else bytes(uuid).hex()


def backup(db: Database, backup_dir: Path, collections: list[str]) -> Path:
    """A full backup: those of `collections` that exist, whole; returns the backup folder."""
    with _new_backup(db, backup_dir, FULL) as (partial, manifest):
        existing = set(db.list_collection_names())
        manifest["collections"] = {
            name: _dump_collection(db, name, partial / db.name) for name in collections if name in existing
        }
    return manifest["folder"]


def backup_increment(db: Database, backup_dir: Path, touched: Mapping[str, Iterable[bytes]]) -> Path:
    """An increment: for each collection of `touched`, the ids a run may write or delete there (as
    `legacy_key`s, the BSON `{_id: …}` of each: any id type, exactly) and the documents of those ids
    that exist now; returns the backup folder."""
    with _new_backup(db, backup_dir, INCREMENT) as (partial, manifest):
        private_dir(partial / TOUCHED)
        manifest["collections"], manifest[TOUCHED] = {}, {}
        for name, keys in touched.items():
            keys = sorted(set(keys))
            with _dump(partial / TOUCHED / f"{name}.bson") as ids:
                ids.write(b"".join(keys), len(keys))
            with _dump(partial / db.name / f"{name}.bson") as documents:
                for part in in_chunks(keys):
                    query = {"_id": {"$in": [source_id(key) for key in part]}}
                    for chunk in db[name].find_raw_batches(query):  # by the `_id` index: no sort, no hint
                        documents.write(chunk, len(split_bson(chunk)))
            manifest[TOUCHED][name], manifest["collections"][name] = ids.record(), documents.record()
    return manifest["folder"]


@contextmanager
def _new_backup(db: Database, backup_dir: Path, kind: str) -> Generator[tuple[Path, dict]]:
    """A backup folder being written (`<name>.partial`) and its manifest, which the block fills in;
    renamed to its final name once whole (`manifest["folder"]`), removed whatever stopped it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = backup_dir / f"{db.name}-{stamp}"
    suffix = 1
    while folder.exists():
        folder = backup_dir / f"{db.name}-{stamp}-{suffix}"
        suffix += 1
    partial = folder.with_name(folder.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    try:
        before = list_backups(backup_dir, db.name)
        private_dir(partial / db.name)
        manifest = {
            "database": db.name,
            "server": mask_uri(_server_address(db)),
            "created_at": datetime.now(UTC).isoformat(),
            "kind": kind,
            "parent": before[-1].name if before else None,
        }
        yield partial, manifest
        write_private(partial / MANIFEST, json.dumps(manifest, indent=2).encode())
        partial.rename(folder)
        manifest["folder"] = folder
    except BaseException as exc:  # nothing half written stays behind, whatever stopped it
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BackupError(f"{backup_dir}: the backup could not be written ({exc.strerror or exc})") from None
        if isinstance(exc, StagingError):  # names the folder already
            raise BackupError(f"the backup could not be written: {exc}") from None
        raise


def backup_name_pattern(db_name: str) -> re.Pattern:
    """`<db>-<stamp>[-n]`, anchored: database `a` does not claim the backups of `a-b`."""
    return re.compile(rf"{re.escape(db_name)}-(\d{{8}}T\d{{6}}Z)(?:-(\d+))?")


def list_backups(backup_dir: Path, db_name: str) -> list[Path]:
    """The complete backups of `db_name` (named as `backup` names them, with a manifest), oldest first."""
    pattern = backup_name_pattern(db_name)
    found = []
    for folder in backup_dir.iterdir() if backup_dir.is_dir() else ():
        match = pattern.fullmatch(folder.name)
        if match and (folder / MANIFEST).is_file():
            found.append(((match[1], int(match[2] or 0)), folder))
    return [folder for _, folder in sorted(found)]


def _server_address(db: Database) -> str:
    host, port = db.client.address or ("?", 0)
    return f"mongodb://{host}:{port}"


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def iter_backup_documents(folder: Path, collection: str):
    """The backed-up documents of `collection`, byte for byte as they were stored."""
    manifest = read_manifest(folder)
    path = folder / manifest["database"] / f"{collection}.bson"
    for document in split_bson(path.read_bytes()):
        yield RawBSONDocument(document)


def restore_collection(db: Database, folder: Path, collection: str, batch_size: int = 2000) -> int:
    """Replace `collection` with its backup, document bytes unchanged; returns the count."""
    db.drop_collection(collection)
    batch, count = [], 0
    for document in iter_backup_documents(folder, collection):
        batch.append(document)
        if len(batch) >= batch_size:
            db[collection].insert_many(batch, ordered=True)
            count, batch = count + len(batch), []
    if batch:
        db[collection].insert_many(batch, ordered=True)
        count += len(batch)
    return count
