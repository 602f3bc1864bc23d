"""Read nested leads from MongoDB in batches: never the whole collection in memory.

A nested lead is a document of the source collection with a `lead_input` field;
normalized leads live in the same collection and are never read as source.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bson
import pandas as pd
from pymongo.database import Database

from leadnorm.contract import NESTED_LEAD, SOURCE_COLLECTION
from leadnorm.mongo import CODEC_OPTIONS, split_bson


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


def iter_raw_batches(db: Database, batch_size: int) -> Iterator[bytes]:
    """Nested leads as BSON bytes, `batch_size` documents at a time, in `_id` order."""
    cursor = db[SOURCE_COLLECTION].find_raw_batches(NESTED_LEAD, sort=[("_id", 1)], batch_size=batch_size)
    pending: list[bytes] = []
    for chunk in cursor:
        pending.extend(split_bson(chunk))
        while len(pending) >= batch_size:
            yield b"".join(pending[:batch_size])
            del pending[:batch_size]
    if pending:
        yield b"".join(pending)


def decode_batch(data: bytes) -> list[dict]:
    return bson.decode_all(data, CODEC_OPTIONS)


def write_batches(db: Database, directory: Path, batch_size: int, progress=None) -> list[Path]:
    """Stage every batch of nested leads as a BSON file (lossless: types stay as stored)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("batch-*.bson"):
        old.unlink()
    paths = []
    for number, data in enumerate(iter_raw_batches(db, batch_size)):
        path = directory / f"batch-{number:05d}.bson"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths.append(path)
        if progress:
            progress.advance(len(split_bson(data)))
    return paths


def read_batch(path: Path) -> pd.DataFrame:
    return source_frame(decode_batch(path.read_bytes()))
