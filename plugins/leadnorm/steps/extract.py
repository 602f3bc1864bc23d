"""Read nested leads from MongoDB in batches: never the whole collection in memory.

A nested lead is a document of the source collection with a `lead_input` field;
normalized leads live in the same collection and are never read as source.
"""

from __future__ import annotations

from collections.abc import Iterator

import bson
import pandas as pd
from pymongo.database import Database

from leadnorm.contract import MARKERS, NESTED_LEAD, SOURCE_COLLECTION, legacy_key
from leadnorm.mongo import CODEC_OPTIONS, in_chunks, source_id, split_bson
from leadnorm.source import SourceLead


def count_nested_leads(db: Database) -> int:
    return db[SOURCE_COLLECTION].count_documents(NESTED_LEAD)


def source_frame(documents: list[dict]) -> pd.DataFrame:
    """One nested lead per row, one column per top-level field, values as MongoDB gave them.
    A field a document lacks is pd.NA, never NaN: a document may hold a NaN of its own."""
    columns = dict.fromkeys(key for document in documents for key in document)
    return pd.DataFrame(
        {c: pd.Series([d.get(c, pd.NA) for d in documents], dtype=object) for c in columns},
        index=pd.RangeIndex(len(documents)),
    )


# The source as the application wrote it, projected by a server (where its own fields of the
# markers' names do not matter): without the marks a migration adds.
WITHOUT_MARKERS = dict.fromkeys(MARKERS, 0)
# `_id` order from the `_id` index: a server may otherwise sort in memory (SecantusDB: twice the time).
ID_ORDER = {"sort": [("_id", 1)], "hint": [("_id", 1)]}


def nested_source_leads(db: Database, batch_size: int = 2000) -> Iterator[SourceLead]:
    """Every nested lead, its content and marks apart (`leadnorm.source`), from one raw scan: nothing
    else is decoded, and the server projects nothing (a projection costs SecantusDB as much as the scan)."""
    for chunk in db[SOURCE_COLLECTION].find_raw_batches(NESTED_LEAD, batch_size=batch_size):
        for raw in split_bson(chunk):
            yield SourceLead(raw)


def source_batches(db: Database, batch_size: int) -> Iterator[list[SourceLead]]:
    """Nested leads, their content and marks apart (`leadnorm.source`), `batch_size` at a time, in
    `_id` order."""
    cursor = db[SOURCE_COLLECTION].find_raw_batches(NESTED_LEAD, batch_size=batch_size, **ID_ORDER)
    pending: list[SourceLead] = []
    for chunk in cursor:
        pending.extend(SourceLead(raw) for raw in split_bson(chunk))
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            del pending[:batch_size]
    if pending:
        yield pending


def source_batches_of(db: Database, keys: list[bytes], batch_size: int) -> Iterator[list[SourceLead]]:
    """The nested leads whose `legacy_key` is one of `keys`, as `source_batches` gives them."""
    pending: list[SourceLead] = []
    for part in in_chunks(keys):
        wanted = set(part)
        ids = [source_id(key) for key in part]
        cursor = db[SOURCE_COLLECTION].find_raw_batches({**NESTED_LEAD, "_id": {"$in": ids}})
        found = (SourceLead(raw) for chunk in cursor for raw in split_bson(chunk))
        pending += [lead for lead in found if legacy_key(lead.source_id) in wanted]  # $in: 42 == 42.0
        if len(pending) >= batch_size:
            yield pending
            pending = []
    if pending:
        yield pending


def source_keys(db: Database) -> list[bytes]:
    """The `legacy_key` of every nested lead, in `_id` order: what partitions split."""
    cursor = db[SOURCE_COLLECTION].find(NESTED_LEAD, {"_id": 1}, batch_size=5000, **ID_ORDER)
    return [legacy_key(document["_id"]) for document in cursor]


def decoded_batches(db: Database, batch_size: int) -> Iterator[list[dict]]:
    """Nested leads as the application wrote them, decoded: for notebooks and other readers."""
    for leads in source_batches(db, batch_size):
        yield [bson.decode(lead.content, CODEC_OPTIONS) for lead in leads]
