"""`cut_fields` against pymongo's own encoder: every BSON type, byte for byte."""

from __future__ import annotations

import datetime

import bson
import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from leadnorm.mongo import cut_fields

EVERY_TYPE = {
    "double": 1.5,
    "string": "ü",
    "document": {"_migrated": 1},
    "array": [1, "2", {"x": None}],
    "binary": Binary(b"ab", 0),
    "uuid": Binary(b"0" * 16, 4),
    "object_id": ObjectId(),
    "bool": True,
    "date": datetime.datetime(2020, 1, 1),
    "null": None,
    "regex": Regex("a.b", "i"),
    "code": Code("x"),
    "code_with_scope": Code("x", {"y": 1}),
    "int32": 1,
    "timestamp": Timestamp(1, 2),
    "int64": Int64(5),
    "decimal": Decimal128("1.5"),
    "min_key": MinKey(),
    "max_key": MaxKey(),
}


@pytest.mark.parametrize("position", [0, 7, len(EVERY_TYPE)])
def test_cut_fields_equals_encoding_without_them(position):
    items = list(EVERY_TYPE.items())
    document = dict(items[:position] + [("_migrated", True), ("_migrated_lead_id", ObjectId())] + items[position:])
    rest, cut = cut_fields(bson.encode(document), frozenset({b"_migrated", b"_migrated_lead_id"}))
    assert rest == bson.encode(EVERY_TYPE)
    assert bson.decode(cut) == {"_migrated": True, "_migrated_lead_id": document["_migrated_lead_id"]}


def test_a_nested_field_of_that_name_is_kept():
    """Only top-level fields are cut; a name found in a value only costs a parse."""
    raw = bson.encode({"_id": 1, "notes": {"_migrated": True}, "text": "_migrated"})
    assert cut_fields(raw, frozenset({b"_migrated"})) == (raw, bson.encode({}))


def test_a_document_handed_over_as_a_memoryview_is_cut_too():
    """pymongo hands large raw documents over as memoryviews, where `in` looks for one byte."""
    document = bson.encode({"_id": 1, "notes": "n" * 200_000, "_migrated": True})
    rest, cut = cut_fields(memoryview(document), frozenset({b"_migrated"}))
    assert rest == bson.encode({"_id": 1, "notes": "n" * 200_000}) and bson.decode(cut) == {"_migrated": True}
