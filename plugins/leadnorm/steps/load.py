"""Write the staged collections to the server: bulk, and only what differs.

Ids are derived from natural keys, so the staged documents and the stored ones line up
by `_id`. The loader walks both in `_id` order side by side (a merge join: one sorted
scan, no per-document round trip, no large `$in`), inserts what is new, replaces what
changed and leaves the rest alone; stored documents the frame no longer has are reported
as stale (the prune step deletes them once every collection is loaded). A second run
therefore writes nothing, and a run killed half way picks up where it stopped.

Before writing, stored documents that hold a unique key the frame gives to another id (two
personas merged, a company's domain moved) give it up, so no unique index is violated on
the way. "Changed" compares BSON bytes, not Python
values: a NaN kept under `extra` is never equal to itself, its encoding always is. The staged
documents are read a batch at a time: the load holds no whole collection.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field

import bson
import pyarrow as pa
from bson.raw_bson import RawBSONDocument
from pymongo import IndexModel, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from leadnorm.contract import NORMALIZED_LEAD, SOURCE_COLLECTION, is_normalized_lead
from leadnorm.errors import LoadError
from leadnorm.mongo import CODEC_OPTIONS, RAW_CODEC_OPTIONS, in_chunks
from leadnorm.schema import KINDS, json_schema
from leadnorm.steps.progress import Progress
from leadnorm.transform.columns import values

log = logging.getLogger("leadnorm")


@dataclass
class LoadResult:
    collection: str
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    released: int = 0  # stored documents that gave up a unique key to another id
    stale_ids: list = field(default_factory=list)  # stored, but no longer in the frame

    @property
    def written(self) -> int:
        return self.inserted + self.replaced

    def as_dict(self) -> dict:
        counts = asdict(self)
        counts["stale"] = len(counts.pop("stale_ids"))
        return counts


def owned(collection: str) -> dict:
    """The documents of `collection` this pipeline owns: normalized leads share `leads` with the nested
    source (and uploaded leads), and are the ones with a `legacy_lead_id` and no `lead_input`."""
    return NORMALIZED_LEAD if collection == SOURCE_COLLECTION else {}


def is_owned(collection: str, document) -> bool:
    """`owned` on the client, for a document read with `legacy_lead_id` and `lead_input`."""
    return collection != SOURCE_COLLECTION or is_normalized_lead(document)


def _stored(db: Database, name: str, ids: list | None) -> Iterator[RawBSONDocument]:
    """The stored documents of `name` (only those with `ids`, when given) in `_id` order."""
    collection = db[name].with_options(codec_options=RAW_CODEC_OPTIONS)
    if ids is None:
        yield from collection.find(owned(name), sort=[("_id", 1)], batch_size=2000)
        return
    for part in in_chunks(sorted(ids, key=str)):  # owned on the client: `$exists` beside `$in` makes a server scan
        for document in collection.find({"_id": {"$in": part}}, sort=[("_id", 1)]):
            if is_owned(name, document):
                yield document


def load_collection(
    db: Database,
    name: str,
    rows: Iterable[pa.RecordBatch],
    total: int,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    ids: list | None = None,
) -> LoadResult:
    """Make the stored documents of `name` equal the staged ones (`rows`: record batches of `_id`
    and `document`, in `_id` order); report the stale ones (none is deleted). With `ids`, only
    those stored documents are compared (a refresh's scope: the frame's ids and those its leads
    held before). Documents go to the server as the bytes they were staged as."""
    result = LoadResult(name)
    progress = Progress(f"load {name}", total)
    stored = _stored(db, name, ids)
    current = next(stored, None)
    inserts: list[RawBSONDocument] = []
    replaces: list[ReplaceOne] = []

    def flush(force: bool = False) -> None:
        if inserts and (force or len(inserts) >= batch_size):
            if not dry_run:
                _write(name, lambda: db[name].insert_many(inserts, ordered=False))
            inserts.clear()
        if replaces and (force or len(replaces) >= batch_size):
            if not dry_run:
                _write(name, lambda: db[name].bulk_write(replaces, ordered=False))
            replaces.clear()

    for batch in rows:
        for _id, document in zip(batch.column("_id").to_pylist(), batch.column("document").to_pylist()):
            key = _id.hex()  # the order of `str(ObjectId)`, as the stored ones are compared
            while current is not None and str(current["_id"]) < key:
                result.stale_ids.append(current["_id"])
                current = next(stored, None)
            if current is None or str(current["_id"]) != key:
                inserts.append(RawBSONDocument(document, RAW_CODEC_OPTIONS))
                result.inserted += 1
            else:
                if document != current.raw:
                    replaces.append(ReplaceOne({"_id": current["_id"]}, RawBSONDocument(document, RAW_CODEC_OPTIONS)))
                    result.replaced += 1
                else:
                    result.unchanged += 1
                current = next(stored, None)
            flush()
        progress.advance(batch.num_rows)
    flush(force=True)
    while current is not None:
        result.stale_ids.append(current["_id"])
        current = next(stored, None)
    stored.close()
    return result


# Unique keys a stored document may have to give up: single fields in sparse indexes
# are unset (the document is then replaced or pruned); a clash on any other unique key can only
# be a stale document, which is deleted.
_RELEASED_BY_UNSET = {"companies": ("domain",), "personas": ("email", "linkedin_url")}
_RELEASED_BY_DELETE = {"technographics": ("company_id", "name")}


def _key_bytes(values: tuple) -> bytes:
    return bson.encode({"k": list(values)}, codec_options=CODEC_OPTIONS)


def release_unique_keys(db: Database, name: str, clashes: Iterable[tuple[tuple, set]], *, dry_run: bool) -> int:
    """Free every unique key the staged documents give to an id other than the one storing it now:
    `clashes`, as `key_clashes` finds them."""
    unset = _RELEASED_BY_UNSET.get(name, ())
    released = 0
    for fields, clashing in clashes:
        released += len(clashing)
        if dry_run:
            continue
        for ids in in_chunks(sorted(clashing, key=str)):
            if len(fields) == 1 and fields[0] in unset:
                db[name].update_many({"_id": {"$in": ids}}, {"$unset": {fields[0]: ""}})
            else:
                db[name].delete_many({"_id": {"$in": ids}})
    return released


def key_clashes(db: Database, name: str, keys: Iterable[pa.RecordBatch]) -> Iterator[tuple[tuple, set]]:
    """Per batch of `keys` (batches of `_id` and the natural key columns; a key is unique among the
    staged ones, so each batch is looked up alone) and unique key of `name`: the stored documents
    holding a key value that the staged documents give to another id."""
    unset, delete = _RELEASED_BY_UNSET.get(name, ()), _RELEASED_BY_DELETE.get(name)
    if not (unset or delete):
        return
    kinds = KINDS[name]
    for batch in keys:
        data = pa.Table.from_batches([batch])
        values_of = {column: values(data[column], kinds[column]) for column in data.column_names}
        for fields in [(f,) for f in unset] + ([delete] if delete else []):
            yield fields, _clashing(db, name, fields, values_of)


def _clashing(db: Database, name: str, fields: tuple, values_of: dict) -> set:
    wanted = {}  # the key's BSON (any type, hashable) -> (its values, the id the frame gives it)
    for row_id, *row in zip(values_of["_id"], *(values_of[f] for f in fields)):
        if all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in row):
            wanted[_key_bytes(tuple(row))] = (tuple(row), row_id)
    clashing = set()
    # By the key's first field (an index leads with it), each value once; a compound key is matched whole below.
    firsts = {_key_bytes(row[:1]): row[0] for row, _ in wanted.values()}
    for part in in_chunks(firsts.values()):
        query = {fields[0]: {"$in": part}}
        for doc in db[name].find(query, {f: 1 for f in fields}):  # a key field: owned documents only
            if wanted.get(_key_bytes(tuple(doc.get(f) for f in fields)), (None, doc["_id"]))[1] != doc["_id"]:
                clashing.add(doc["_id"])
    return clashing


def natural_key_columns(name: str) -> list[str]:
    """The columns `release_unique_keys` reads of a staged collection."""
    unset, delete = _RELEASED_BY_UNSET.get(name, ()), _RELEASED_BY_DELETE.get(name, ())
    return list(dict.fromkeys(["_id", *unset, *delete]))


def ensure_indexes(db: Database, name: str, indexes: list[IndexModel]) -> None:
    """Create the contract's indexes of `name`; an index of the same name with other options (one an
    earlier version made unique, say) is dropped first, as `create_indexes` would refuse it."""
    held = {index["name"]: index for index in db[name].list_indexes()}
    for model in indexes:
        wanted = model.document
        found = held.get(wanted["name"])
        if found and any(found.get(option) != wanted.get(option) for option in _INDEX_OPTIONS):
            db[name].drop_index(wanted["name"])
    db[name].create_indexes(indexes)


_INDEX_OPTIONS = ("key", "unique", "sparse", "partialFilterExpression")


def ensure_validator(db: Database, name: str) -> None:
    """The collection's `$jsonSchema` validator (`leadnorm.schema.json_schema`): it is created with
    it, or its validator is set anew (a release may have changed the contract's shape). From then on
    the server refuses a document of another shape, whoever writes it (code 121)."""
    options = {
        "validator": {"$jsonSchema": json_schema(name)},
        "validationLevel": "strict",
        "validationAction": "error",
    }
    if not db.list_collection_names(filter={"name": name}):
        with suppress(CollectionInvalid):  # created meanwhile: set it below
            db.create_collection(name, **options)
            return
    db.command("collMod", name, **options)


def build_indexes_after_load(db: Database, name: str, indexes: list) -> None:
    """A bulk-loaded collection's indexes; a unique key the load duplicated fails here, one line.
    (A run that dies before this finds the collection filled, and builds them before its load.)"""
    try:
        ensure_indexes(db, name, indexes)
    except OperationFailure as exc:
        index = re.search(r"index: (\S+)", str((exc.details or {}).get("errmsg", "")))  # never the key's value
        which = f"index {index[1]}" if index else "an index"
        raise LoadError(
            f"{name}: {which} could not be built after the bulk load (code {exc.code}"
            f"{', a duplicate key the gate did not stop' if exc.code == 11000 else ''})"
        ) from None


def _write(name: str, operation) -> None:
    try:
        operation()
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        first = errors[0] if errors else {}
        if first.get("code") == 121:
            why = "a document of another shape than the collection's validator admits"
        else:
            why = f"index {first.get('keyPattern') or '?'}"
        raise LoadError(
            f"{name}: the server refused {len(errors)} writes (first: code {first.get('code')}, {why})"
        ) from None
