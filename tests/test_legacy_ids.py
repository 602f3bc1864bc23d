"""A legacy id keeps its exact BSON type through every store and comparison: staged tables, the
documents loaded, the marks, `migration_rejects`, the key store, backups and refreshes. An Int64
that fits 32 bits stays an Int64; `"42"`, 42, 42.5 and Decimal128 42 stay four leads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bson import Binary, Code, Decimal128, ObjectId, Timestamp
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from hypothesis import given, settings
from hypothesis import strategies as st

from leadnorm.contract import KEYS_COLLECTION, NESTED_LEAD, NORMALIZED_LEAD, REJECTS_COLLECTION, legacy_key
from leadnorm.mongo import RAW_CODEC_OPTIONS, source_id
from leadnorm.steps.backup import iter_backup_documents
from leadnorm.steps.housekeeping import list_backups
from leadnorm.steps.pipeline import migrate, refresh
from leadnorm.steps.rollback import latest_backup, rollback
from leadnorm.steps.runstore import RunFolder
from leadnorm.transform import columns
from leadnorm.transform.documents import to_documents
from leadnorm.transform.ids import lead_id
from leadnorm.transform.split import split_documents

IDS = st.one_of(
    st.builds(ObjectId),
    st.text(max_size=6),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**30), max_value=10**30).map(
        lambda d: Decimal128(str(d))
    ),
    st.booleans(),
    st.datetimes(timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
    st.builds(Timestamp, st.integers(0, 2**31 - 1), st.integers(0, 9)),
    st.none(),
    st.builds(Binary, st.binary(max_size=6), st.sampled_from([0, 3, 4, 5, 128])),
    st.dictionaries(st.sampled_from(["a", "n"]), st.integers(0, 2) | st.just(Int64(1)) | st.just(1.0), max_size=2),
    st.builds(Code, st.text(max_size=4)),
    st.just(MinKey()),
    st.just(MaxKey()),
)


def nested(source, number: int) -> dict:
    """A lead that migrates (even numbers) or is rejected (odd: no name, no email)."""
    lead_input = {"name": f"Lead {number}", "email": f"lead{number}@ids.test"} if number % 2 == 0 else {}
    return {"_id": source, "lead_input": {**lead_input, "company": "Ids Co"}}


def distinct(ids: list) -> list:
    return list({legacy_key(value): value for value in ids}.values())


@settings(max_examples=60, deadline=None)
@given(st.lists(IDS, min_size=1, max_size=8).map(distinct))
def test_every_bson_type_survives_split_staging_and_load_as_it_was(ids):
    mentions = split_documents(nested(value, number) for number, value in enumerate(ids))
    keys = {legacy_key(value) for value in ids}
    assert {legacy_key(source_id(key)) for key in keys} == keys
    for name, column in (("leads", "legacy_lead_id"), ("outcomes", "_id")):
        buffer = pa.BufferOutputStream()
        pq.write_table(mentions.tables[name], buffer)  # staged as a run stages it, and read back
        staged = pq.read_table(pa.BufferReader(buffer.getvalue()))
        back = [legacy_key(value) for value in columns.values(staged[column], "key")]
        assert back == [legacy_key(value) for value in getattr(mentions, name)[column]]
    loaded = [legacy_key(document["legacy_lead_id"]) for document in to_documents(mentions.leads)]
    assert loaded == [legacy_key(value) for value in ids[::2]]
    assert len({lead_id(value) for value in ids}) == len(ids)


# One of each type an `_id` can hold (that SecantusDB can store side by side: it takes Binary
# subtypes and code with scope for equal to their like), numbers of one value in four types.
EVERY_TYPE = [
    ObjectId("0000000000000000000000a1"),
    "42",
    42,
    Int64(43),
    Int64(2**40),
    42.5,
    -0.0,
    float("nan"),
    Decimal128("44"),
    True,
    datetime(2020, 1, 1, tzinfo=UTC),
    Timestamp(1_700_000_000, 1),
    None,
    Binary(b"\x00raw", 0),
    Binary.from_uuid(uuid.UUID("12345678-1234-5678-1234-567812345678")),
    Binary(b"user", 128),
    {"tenant": "acme", "n": Int64(1)},
    {"n": 1, "tenant": "acme"},
    Code("return 1"),
    MinKey(),
    MaxKey(),
]


def raw_source(db) -> dict[bytes, bytes]:
    raw = db.leads.with_options(codec_options=RAW_CODEC_OPTIONS)
    return {legacy_key(doc["_id"]): doc.raw for doc in raw.find(NESTED_LEAD)}


@pytest.fixture
def every_type(db):
    db.leads.insert_many([nested(value, number) for number, value in enumerate(EVERY_TYPE)])
    return db


def test_a_migration_keeps_every_legacy_id_type_in_every_store(every_type, tmp_path):
    db = every_type
    before = raw_source(db)
    _, report = migrate(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "m"), skip_validation=True)
    assert report.ok, report.problems()
    migrated = {legacy_key(value) for value in EVERY_TYPE[::2]}
    rejected = {legacy_key(value) for value in EVERY_TYPE[1::2]}

    legacy = {legacy_key(lead["legacy_lead_id"]): lead["_id"] for lead in db.leads.find(NORMALIZED_LEAD)}
    assert legacy == {key: lead_id(source_id(key)) for key in migrated}
    assert {legacy_key(doc["_id"]) for doc in db[REJECTS_COLLECTION].find()} == rejected
    assert {bytes(doc["_id"]) for doc in db[KEYS_COLLECTION].find({"_id": {"$ne": "state"}})} == migrated
    marked = {legacy_key(doc["_id"]): doc["_migrated_lead_id"] for doc in db.leads.find({"_migrated": True})}
    assert marked == legacy
    backup = latest_backup(tmp_path / "b", db.name)
    assert {legacy_key(doc["_id"]): doc.raw for doc in iter_backup_documents(backup, "leads")} == before

    quiet, _, _ = refresh(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "q"), skip_validation=True)
    assert not quiet.any, quiet.render()


def test_a_refresh_and_a_rollback_keep_every_legacy_id_type(every_type, tmp_path, mongo_uri):
    from test_refresh import canonical, from_scratch

    db = every_type
    before = raw_source(db)
    migrate(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "m"), skip_validation=True)
    touched = [value for value in EVERY_TYPE if value == value]  # SecantusDB updates no document whose _id is NaN
    for value in touched:
        db.leads.update_one({"_id": value}, {"$set": {"touched": True}})
    changes, _, report = refresh(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "r"), skip_validation=True)
    assert changes.changed == {legacy_key(value) for value in touched} and not changes.gone and not changes.new
    assert report.ok, report.problems()
    assert canonical(db) == from_scratch(db, mongo_uri, tmp_path)

    first, *_ = list_backups(tmp_path / "b", db.name)  # taken before any migration
    rollback(db, first)
    assert raw_source(db) == before
