"""Columns as Arrow stores them, exactly: what every staged table and the engine work on.

Each column has a kind, and each kind one Arrow type and one way back to the Python value
MongoDB gave, so a value makes the round trip unchanged, type and all:

- `oid`: an ObjectId as its 12 bytes (`binary(12)`: sorts as MongoDB sorts ObjectIds);
- `key`: any source `_id` as its `legacy_key` (the BSON of `{_id: value}`): type-exact,
  comparable in bytes, the key every join of a source lead uses;
- `text`, `int`, `float`, `bool`: string, int64, float64 (NaN stays NaN), bool;
- `time`: a UTC datetime at BSON's millisecond precision (`timestamp[ms, UTC]`);
- `bson`: any other value (an embedded document, a list, a NaN inside it, a date outside
  Python's range) as the BSON of `{v: value}`;
- `bytes`: raw bytes (fingerprints, whole BSON documents).

None is null in every kind but `key`, where null is a source `_id` like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import bson
import pandas as pd
import pyarrow as pa
from bson import ObjectId
from bson.tz_util import utc

from leadnorm.contract import legacy_key
from leadnorm.mongo import CODEC_OPTIONS, source_id

TYPES = {
    "oid": pa.binary(12),
    "key": pa.binary(),
    "text": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "time": pa.timestamp("ms", tz="UTC"),
    "bson": pa.binary(),
    "bytes": pa.binary(),
}


def cell(value) -> bytes | None:
    """A value of kind `bson`, encoded."""
    return None if value is None else bson.encode({"v": value}, codec_options=CODEC_OPTIONS)


def from_cell(data: bytes | None):
    return None if data is None else bson.decode(data, CODEC_OPTIONS)["v"]


def _encode(kind: str, values: Sequence) -> list:
    if kind == "oid":
        return [None if value is None else value.binary for value in values]
    if kind == "key":  # a lead's rows share its `_id` object: encode each object once
        keys: dict[int, bytes] = {}
        return [
            keys[id(value)] if id(value) in keys else keys.setdefault(id(value), legacy_key(value)) for value in values
        ]
    if kind == "bson":
        return [cell(value) for value in values]
    return list(values)


def array(kind: str, values: Sequence) -> pa.Array:
    """`values` (Python values as MongoDB gives them) as a column of `kind`."""
    return pa.array(_encode(kind, values), TYPES[kind])


def schema(kinds: dict[str, str]) -> pa.Schema:
    return pa.schema([pa.field(name, TYPES[kind]) for name, kind in kinds.items()])


def batch(rows: list[dict], kinds: dict[str, str]) -> pa.RecordBatch:
    """Rows (dicts holding at least the columns of `kinds`) as a record batch of those columns."""
    return pa.record_batch(
        [array(kind, [row[name] for row in rows]) for name, kind in kinds.items()], schema=schema(kinds)
    )


def table(rows: Iterable[dict], kinds: dict[str, str]) -> pa.Table:
    """Rows (dicts holding at least the columns of `kinds`) as a table of those columns."""
    rows = rows if isinstance(rows, list) else list(rows)
    return pa.Table.from_arrays(
        [array(kind, [row[name] for row in rows]) for name, kind in kinds.items()], schema=schema(kinds)
    )


def values(column: pa.ChunkedArray | pa.Array, kind: str) -> list:
    """A column's Python values, as they went in."""
    raw = column.to_pylist()
    if kind == "oid":
        return [None if value is None else ObjectId(value) for value in raw]
    if kind == "key":
        return [source_id(value) for value in raw]
    if kind == "bson":
        return [from_cell(value) for value in raw]
    if kind == "time":
        return [None if value is None else _utc(value) for value in raw]
    return raw


def _utc(moment: datetime) -> datetime:
    """In MongoDB's UTC tzinfo, as every other datetime here (pyarrow hands out its own)."""
    return moment.replace(tzinfo=utc)


def rows_of(data: pa.Table, kinds: dict[str, str]) -> list[dict]:
    """A table's rows as dicts of Python values (the columns of `kinds` it has)."""
    columns = {name: values(data[name], kind) for name, kind in kinds.items() if name in data.column_names}
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def frame(data: pa.Table, kinds: dict[str, str]) -> pd.DataFrame:
    """A table as an object frame: each value the Python object MongoDB gives."""
    names = [name for name in kinds if name in data.column_names]
    out = pd.DataFrame(
        {name: pd.Series(values(data[name], kinds[name]), dtype=object) for name in names}, columns=names
    )
    return out
