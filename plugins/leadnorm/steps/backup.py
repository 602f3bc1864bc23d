"""Backups in mongodump's layout, taken before any write; and their restore.

`<backup_dir>/<db>-<UTC timestamp>/<db>/<collection>.bson` holds the documents as the
server stores them (raw BSON, `_id` order) and `<collection>.metadata.json` their
indexes, so `mongorestore` reads the folder as it reads a mongodump. `manifest.json`
records each file's document count and sha256. The folder appears under its final
name only once complete: a run killed mid-backup leaves no half backup behind.
Backups hold personal data: folders are created 0700, files 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo.database import Database

from leadnorm.config import mask_uri
from leadnorm.errors import BackupError, StagingError
from leadnorm.mongo import split_bson
from leadnorm.steps.extract import ID_ORDER
from leadnorm.steps.runstore import private_dir, write_private

MANIFEST = "manifest.json"


def _dump_collection(db: Database, name: str, folder: Path) -> dict:
    digest, count, size = hashlib.sha256(), 0, 0
    with os.fdopen(os.open(folder / f"{name}.bson", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        for chunk in db[name].find_raw_batches({}, batch_size=2000, **ID_ORDER):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            count += len(split_bson(chunk))
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
    return {"documents": count, "bytes": size, "sha256": digest.hexdigest()}


def _uuid_hex(uuid) -> str:
    """mongodump writes the collection UUID as 32 hex digits."""
    if uuid is None:
        return ""
    return uuid.hex if isinstance(uuid, UUID) else bytes(uuid).hex()


def backup(db: Database, backup_dir: Path, collections: list[str]) -> Path:
    """Dump those of `collections` that exist; returns the backup folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = backup_dir / f"{db.name}-{stamp}"
    suffix = 1
    while folder.exists():
        folder = backup_dir / f"{db.name}-{stamp}-{suffix}"
        suffix += 1
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        private_dir(partial / db.name)
        existing = set(db.list_collection_names())
        manifest = {
            "database": db.name,
            "server": mask_uri(_server_address(db)),
            "created_at": datetime.now(UTC).isoformat(),
            "collections": {
                name: _dump_collection(db, name, partial / db.name) for name in collections if name in existing
            },
        }
        write_private(partial / MANIFEST, json.dumps(manifest, indent=2).encode())
        partial.rename(folder)
    except BaseException as exc:  # nothing half written stays behind, whatever stopped it
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BackupError(f"{backup_dir}: the backup could not be written ({exc.strerror or exc})") from None
        if isinstance(exc, StagingError):  # names the folder already
            raise BackupError(f"the backup could not be written: {exc}") from None
        raise
    return folder


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
