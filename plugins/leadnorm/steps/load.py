"""Write normalized frames to their collections: bulk, and only what differs.

Ids are derived from natural keys, so a frame's rows and the stored documents line up
by `_id`. The loader walks both in `_id` order side by side (a merge join: one sorted
scan, no per-document round trip, no large `$in`), inserts what is new, replaces what
changed and leaves the rest alone; stored documents the frame no longer has are reported
as stale (the prune step deletes them once every collection is loaded). A second run
therefore writes nothing, and a run killed half way picks up where it stopped.

Before writing, stored documents that hold a unique key the frame gives to another id (two
personas merged, a company's domain moved) give it up, so no unique index is violated on
the way. "Changed" compares BSON bytes, not Python
values: a NaN kept under `extra` is never equal to itself, its encoding always is.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import bson
import numpy as np
import pandas as pd
from bson.raw_bson import RawBSONDocument
from pymongo import IndexModel, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, OperationFailure

from leadnorm.contract import NORMALIZED_LEAD, SOURCE_COLLECTION, is_normalized_lead
from leadnorm.errors import LoadError
from leadnorm.mongo import CODEC_OPTIONS, RAW_CODEC_OPTIONS, in_chunks
from leadnorm.schema import COLLECTIONS
from leadnorm.steps.progress import Progress

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


def _bson_value(value):
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _missing(value) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


# The source `_id` is data whatever it holds: null and NaN are legacy ids too.
ALWAYS_STORED = frozenset({"legacy_lead_id"})


def to_documents(frame: pd.DataFrame) -> Iterator[dict]:
    """Rows as MongoDB documents: a None (absent) value is no field at all. Read by `itertuples`,
    which hands over the objects as stored (`to_dict` turns an Int64 legacy id into an int)."""
    columns = [str(column) for column in frame.columns]
    for row in frame.itertuples(index=False, name=None):
        yield {k: _bson_value(v) for k, v in zip(columns, row) if k in ALWAYS_STORED or not _missing(v)}


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
    frame: pd.DataFrame,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    ids: list | None = None,
) -> LoadResult:
    """Make the stored documents of `name` equal the frame's rows; report the stale ones (none is
    deleted). With `ids`, only those stored documents are compared (a refresh's scope: the frame's
    ids and those its leads held before)."""
    result = LoadResult(name)
    result.released = release_unique_keys(db, name, frame, dry_run=dry_run)
    progress = Progress(f"load {name}", len(frame))
    ordered = frame.sort_values("_id", key=lambda ids: ids.map(str))
    stored = _stored(db, name, ids)
    current = next(stored, None)
    inserts: list[dict] = []
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

    for number, document in enumerate(to_documents(ordered), start=1):
        key = str(document["_id"])
        while current is not None and str(current["_id"]) < key:
            result.stale_ids.append(current["_id"])
            current = next(stored, None)
        if current is None or str(current["_id"]) != key:
            inserts.append(document)
            result.inserted += 1
        else:
            if bson.encode(document, codec_options=CODEC_OPTIONS) != current.raw:
                replaces.append(ReplaceOne({"_id": document["_id"]}, document))
                result.replaced += 1
            else:
                result.unchanged += 1
            current = next(stored, None)
        flush()
        if number % batch_size == 0:
            progress.advance(batch_size)
    flush(force=True)
    progress.advance(len(frame) % batch_size)
    while current is not None:
        result.stale_ids.append(current["_id"])
        current = next(stored, None)
    stored.close()
    return result


# Unique keys a stored document may have to give up: single fields in sparse or partial indexes
# are unset (the document is then replaced or pruned); a clash on any other unique key can only
# be a stale document, which is deleted.
_RELEASED_BY_UNSET = {"companies": ("domain",), "personas": ("email", "linkedin_url")}
_RELEASED_BY_DELETE = {"technographics": ("company_id", "name")}


# A partial index serves only a query that repeats its filter: the unique `domain` index of companies.
_PARTIAL_FILTERS = {
    (collection.name, next(iter(index.document["key"]))): index.document["partialFilterExpression"][field]
    for collection in COLLECTIONS.values()
    for index in collection.indexes
    if "partialFilterExpression" in index.document
    for field in index.document["partialFilterExpression"]
}


def _key_bytes(values: tuple) -> bytes:
    return bson.encode({"k": list(values)}, codec_options=CODEC_OPTIONS)


def release_unique_keys(db: Database, name: str, frame: pd.DataFrame, *, dry_run: bool) -> int:
    """Free every unique key the frame gives to an id other than the one storing it now."""
    unset, delete = _RELEASED_BY_UNSET.get(name, ()), _RELEASED_BY_DELETE.get(name)
    if frame.empty or not (unset or delete) or db[name].estimated_document_count() == 0:
        return 0
    released = 0
    for fields in [(f,) for f in unset] + ([delete] if delete else []):
        wanted = {}  # the key's BSON (any type, hashable) -> (its values, the id the frame gives it)
        for row in frame[["_id", *fields]].itertuples(index=False, name=None):
            values = row[1:]
            if all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values):
                wanted[_key_bytes(values)] = (values, row[0])
        clashing = set()
        for chunk in in_chunks(wanted.values()):
            part = [values for values, _ in chunk]
            # By the key's first field (an index leads with it); a compound key is matched whole below.
            first = {"$in": list({_key_bytes(values[:1]): values[0] for values in part}.values())}
            query = {fields[0]: {**first, **_PARTIAL_FILTERS.get((name, fields[0]), {})}}
            for doc in db[name].find(query, {f: 1 for f in fields}):  # a key field: owned documents only
                if wanted.get(_key_bytes(tuple(doc.get(f) for f in fields)), (None, doc["_id"]))[1] != doc["_id"]:
                    clashing.add(doc["_id"])
        if clashing and not dry_run:
            for ids in in_chunks(sorted(clashing, key=str)):
                if len(fields) == 1 and fields[0] in unset:
                    db[name].update_many({"_id": {"$in": ids}}, {"$unset": {fields[0]: ""}})
                else:
                    db[name].delete_many({"_id": {"$in": ids}})
        released += len(clashing)
    return released


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
        index = first.get("keyPattern") or first.get("code")
        raise LoadError(
            f"{name}: the server refused {len(errors)} writes (first: code {first.get('code')}, index {index})"
        ) from None
