"""Write normalized frames to their collections: bulk, and only what differs.

Ids are derived from natural keys, so a frame's rows and the stored documents line up
by `_id`. The loader walks both in `_id` order side by side (a merge join: one sorted
scan, no per-document round trip, no large `$in`), inserts what is new, replaces what
changed and leaves the rest alone. A second run therefore writes nothing, and a run
killed half way picks up where it stopped. "Changed" compares BSON bytes, not Python
values: a NaN kept under `extra` is never equal to itself, its encoding always is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import bson
import numpy as np
import pandas as pd
from bson.raw_bson import RawBSONDocument
from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from leadnorm.errors import LoadError
from leadnorm.mongo import CODEC_OPTIONS
from leadnorm.steps.progress import Progress

log = logging.getLogger("leadnorm")

# Stored documents as the server's bytes, frame documents encoded the same way (UTC datetimes).
_RAW = CODEC_OPTIONS.with_options(document_class=RawBSONDocument)


@dataclass
class LoadResult:
    collection: str
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.replaced

    def as_dict(self) -> dict:
        return asdict(self)


def scope(collection: str) -> dict:
    """The documents of `collection` this pipeline owns: normalized leads share `leads`
    with the nested source, and are the ones with a `legacy_lead_id`."""
    return {"legacy_lead_id": {"$exists": True}} if collection == "leads" else {}


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
    """Rows as MongoDB documents: a None (absent) value is no field at all."""
    for row in frame.to_dict("records"):
        yield {k: _bson_value(v) for k, v in row.items() if k in ALWAYS_STORED or not _missing(v)}


def load_collection(
    db: Database, name: str, frame: pd.DataFrame, *, dry_run: bool = False, batch_size: int = 1000
) -> LoadResult:
    """Make the stored documents of `name` equal the frame's rows (none is deleted)."""
    result = LoadResult(name)
    progress = Progress(f"load {name}", len(frame))
    ordered = frame.sort_values("_id", key=lambda ids: ids.map(str))
    stored = db[name].with_options(codec_options=_RAW).find(scope(name), sort=[("_id", 1)], batch_size=2000)
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
            current = next(stored, None)
        if current is None or str(current["_id"]) != key:
            inserts.append(document)
            result.inserted += 1
        elif bson.encode(document, codec_options=CODEC_OPTIONS) != current.raw:
            replaces.append(ReplaceOne({"_id": document["_id"]}, document))
            result.replaced += 1
        else:
            result.unchanged += 1
        flush()
        if number % batch_size == 0:
            progress.advance(batch_size)
    flush(force=True)
    progress.advance(len(frame) % batch_size)
    stored.close()
    return result


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
