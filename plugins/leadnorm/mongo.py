"""Connections: one place that turns a URI and a database name into a pymongo Database."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator

import bson
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    NetworkTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from leadnorm.config import database_from_uri, mask_uri, uri_hosts
from leadnorm.contract import (
    DEFAULT_DB,
    KEYS_COLLECTION,
    NESTED_FIELD,
    NESTED_LEAD,
    NORMALIZED_LEAD,
    RELEASED_COLLECTION,
    SOURCE_COLLECTION,
    STATE_ID,
    is_normalized_lead,
    legacy_key,
)
from leadnorm.errors import ConfigError, ServerUnreachable, SourceError

log = logging.getLogger("leadnorm")

# Timezone-aware UTC datetimes both ways, so values compare equal after a round trip; a date
# outside Python's range decodes as bson.DatetimeMS instead of failing the whole batch.
CODEC_OPTIONS = CodecOptions(tz_aware=True, datetime_conversion=DatetimeConversion.DATETIME_AUTO)
# The same for documents kept as the server's bytes (fields decoded only when read).
RAW_CODEC_OPTIONS = CODEC_OPTIONS.with_options(document_class=RawBSONDocument)


def resolve_uri(uri: str | None = None) -> str:
    """--uri, else $MONGO_URI, else the embedded server this checkout started."""
    if uri:
        return uri
    if os.environ.get("MONGO_URI"):
        return os.environ["MONGO_URI"]
    from leadnorm.devtools.server import running_server

    server = running_server()
    if server is None:
        raise ConfigError(
            "no MongoDB given: pass --uri, set MONGO_URI, or start the embedded one "
            "with `python -m leadnorm mongo start`"
        )
    return server.uri


def resolve_db(db: str | None, uri: str) -> str:
    """--db, else the database named in the URI's path, else jazon_ai_sdr; checked before anything connects."""
    return check_db_name(db if db is not None else database_from_uri(uri) or DEFAULT_DB)


_DB_NAME_FORBIDDEN = set('/\\. "$*<>:|?\0')
DB_NAME_MAX_BYTES = 63


def check_db_name(name: str) -> str:
    """`name` when MongoDB accepts it as a database name; a typo caught here creates nothing on the server."""
    if not name:
        raise ConfigError("the database name is empty")
    if len(name.encode()) > DB_NAME_MAX_BYTES:
        raise ConfigError(f"database name {name!r} is longer than {DB_NAME_MAX_BYTES} bytes")
    forbidden = sorted(_DB_NAME_FORBIDDEN.intersection(name))
    if forbidden:
        raise ConfigError(f"database name {name!r} contains {''.join(forbidden)!r}, which MongoDB does not allow")
    return name


SERVER_TIMEOUT_S = 5.0
# Once found, the server may be busy rather than gone: a big bulk write, an index build, a pause of
# the embedded server or a failover all answer late. Only this long a silence counts as an outage.
MIN_OUTAGE_S = 120.0


def outage_limit(server_timeout: float) -> float:
    """Seconds the server may stay silent during a run before the run fails: at least 120, or 24
    times the time allowed for finding it at the start."""
    return max(MIN_OUTAGE_S, 24 * server_timeout)


def connect(uri: str | None = None, db: str | None = None, server_timeout: float = SERVER_TIMEOUT_S) -> Database:
    """The database to work on. A server that is not there, or does not answer, raises ServerUnreachable
    (one line naming host and port) within `server_timeout` seconds; any other refusal a ConfigError.

    That bound is for finding the server: the client the run gets waits up to `outage_limit` for a
    reply, a new connection or a server to select, so a busy or paused server only slows the run.
    (A short connect timeout would also cut the heartbeat short, and pymongo then cancels every
    operation in flight.)"""
    uri = resolve_uri(uri)
    name = resolve_db(db, uri)
    probe(uri, server_timeout)
    outage_ms = int(outage_limit(server_timeout) * 1000)
    client = MongoClient(
        uri,
        serverSelectionTimeoutMS=outage_ms,
        connectTimeoutMS=outage_ms,
        socketTimeoutMS=outage_ms,
        tz_aware=True,
    )
    return database(client, name)


def probe(uri: str, server_timeout: float) -> None:
    """Ping the server with a client of its own whose every timeout is `server_timeout`."""
    timeout_ms = int(server_timeout * 1000)
    client = None
    try:
        client = MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms
        )
        client.admin.command("ping")
    except PyMongoError as exc:
        error = ServerUnreachable if isinstance(exc, ConnectionFailure) else ConfigError
        raise error(describe_error(exc, uri, server_timeout)) from exc
    finally:
        if client is not None:
            client.close()


def retry_transient(db: Database, operation, what: str):
    """`operation()` (idempotent: a step of a run), run again after a transient network error (a
    dropped connection, a failover) until the client's outage limit has passed. A timeout is no
    transient error: it already waited that long."""
    deadline = time.monotonic() + db.client.options.server_selection_timeout
    while True:
        try:
            return operation()
        except AutoReconnect as exc:
            if isinstance(exc, NetworkTimeout | ServerSelectionTimeoutError) or time.monotonic() > deadline:
                raise
            log.warning("%s: %s; trying again", what, describe_error(exc))
            time.sleep(1.0)


# pymongo names each failed server as "host:port: <socket error> (configured timeouts: socketTimeoutMS: Nms, ...)",
# and a failed server selection then appends ", Timeout: 5s, Topology Description: ..." repeating them.
_SERVER_FAILURE = re.compile(
    r"(?:^|,\s*)(?P<address>[\w.\-\[\]:%]+:\d+): (?P<reason>[^()]+?) "
    r"\(configured timeouts: socketTimeoutMS: (?P<timeout_ms>[\d.]+)ms"
)
_TOPOLOGY_DUMP = ", Timeout: "
_SOCKET_ERROR = re.compile(r"\[Errno (?P<errno>-?\d+)\] (?P<text>.+)")


def _reason(text: str, timeout_s: float) -> str:
    """A socket error as an operator reads it: `connection refused`, `unknown host`, `no reply within 5 s`."""
    if "timed out" in text:
        return f"no reply within {timeout_s:g} s"
    error = _SOCKET_ERROR.fullmatch(text)
    if error is None:
        return text
    return "unknown host" if int(error["errno"]) < 0 else error["text"].lower()  # negative: a failed name lookup


def describe_error(exc: PyMongoError, uri: str | None = None, server_timeout: float = SERVER_TIMEOUT_S) -> str:
    """Any pymongo error as one masked line saying where and what, without pymongo's topology dump;
    `uri` names the server when the error does not."""
    text = mask_uri(str(exc)).split(_TOPOLOGY_DUMP)[0]
    failures = list(_SERVER_FAILURE.finditer(text))
    where = ", ".join(dict.fromkeys(f["address"] for f in failures)) or (uri_hosts(uri) if uri else "the server")
    reasons = {f["address"]: _reason(f["reason"], float(f["timeout_ms"]) / 1000) for f in failures}
    if isinstance(exc, ServerSelectionTimeoutError):
        if len(set(reasons.values())) > 1:
            return "cannot reach MongoDB at " + ", ".join(f"{host} ({why})" for host, why in reasons.items())
        if reasons:
            why = next(iter(reasons.values()))
        elif text.startswith("No servers found yet"):  # the selection ended before the first connect attempt did
            why = f"no reply within {server_timeout:g} s"
        else:
            why = text.splitlines()[0]
        return f"cannot reach MongoDB at {where}: {why}"
    if isinstance(exc, NetworkTimeout) or (isinstance(exc, AutoReconnect) and "cancelled" in text):
        # a cancelled operation: the server's heartbeat went unanswered for the connect timeout
        limit = float(failures[0]["timeout_ms"]) / 1000 if failures else server_timeout
        return f"MongoDB at {where} stopped answering (no reply within {limit:g} s)"
    if isinstance(exc, ConnectionFailure):
        why = next(iter(reasons.values()), None) or text.splitlines()[0]
        return f"lost the connection to MongoDB at {where}: {why}"
    return text.splitlines()[0].split(", full error:")[0] if text else type(exc).__name__


def require_source(db: Database) -> None:
    """Raise SourceError unless `db` holds leads to work on, nested or migrated: a mistyped database
    name then fails before any backup or write, instead of creating nine empty collections."""
    if not db.list_collection_names(filter={"name": SOURCE_COLLECTION}):
        raise SourceError(f"database {db.name!r} has no {SOURCE_COLLECTION} collection: check the database name (--db)")
    if db[KEYS_COLLECTION].find_one({"_id": STATE_ID}, {"_id": 1}) is not None:
        return  # a run of ours finished or started here: no need to look for a lead (after cleanup, a long scan)
    leads = db[SOURCE_COLLECTION]
    if leads.find_one(NESTED_LEAD, {"_id": 1}) is None and leads.find_one(NORMALIZED_LEAD, {"_id": 1}) is None:
        raise SourceError(
            f"database {db.name!r}: its {SOURCE_COLLECTION} collection holds no nested or migrated lead: "
            "check the database name (--db)"
        )


def database(client: MongoClient, name: str) -> Database:
    """`name` on `client`, reading datetimes as UTC whatever the client's own options."""
    return client.get_database(name, codec_options=CODEC_OPTIONS)


def split_bson(data: bytes) -> list[bytes]:
    """The documents of a concatenated BSON stream (a raw batch, a .bson dump), still encoded."""
    documents, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "little")
        documents.append(data[offset : offset + size])
        offset += size
    return documents


# `$in` lists stay short: a server walks the list for each candidate document (SecantusDB's cost
# grows with the list: 100 ids at a time fetch 2,000 documents 6x faster than 1,000 at a time),
# and a real MongoDB loses nothing by it.
IN_LIST = 100


def insert_missing(collection: Collection, documents: list[dict]) -> int:
    """Insert the documents whose `_id` the collection does not hold yet; returns how many were
    inserted. The ids held are looked up first (`$in`, on the `_id` index) and the rest go in one
    unordered `insert_many`: inserts cost a server far less than upserts. A document another
    writer inserted meanwhile fails on `_id` alone and counts as there."""
    if not documents:
        return 0
    by_key = {legacy_key(doc["_id"]): doc for doc in documents}
    for part in in_chunks([doc["_id"] for doc in by_key.values()]):
        for held in collection.find({"_id": {"$in": part}}, {"_id": 1}):
            by_key.pop(legacy_key(held["_id"]), None)
    if not by_key:
        return 0
    try:
        return len(collection.insert_many(list(by_key.values()), ordered=False).inserted_ids)
    except BulkWriteError as exc:
        if not all(_duplicate_id(error) for error in exc.details.get("writeErrors", [])):
            raise
        return exc.details["nInserted"]


DUPLICATE_KEY = 11000


def _duplicate_id(error: dict) -> bool:
    """A write error that only says the `_id` is taken."""
    if error.get("code") != DUPLICATE_KEY:
        return False
    pattern = error.get("keyPattern")
    return pattern == {"_id": 1} if pattern else "index: _id_ " in error.get("errmsg", "")


def in_chunks(items: Iterable) -> Iterator[list]:
    """`items` in lists of at most IN_LIST, for `$in` queries."""
    items = list(items)
    for start in range(0, len(items), IN_LIST):
        yield items[start : start + IN_LIST]


def raw_id(document: bytes):
    """The `_id` of a raw BSON document, decoding no other field's value."""
    return RawBSONDocument(document, RAW_CODEC_OPTIONS)["_id"]


def source_id(key: bytes):
    """The source `_id` a `legacy_key` encodes (its inverse), any BSON type, odd dates included."""
    return bson.decode(key, CODEC_OPTIONS)["_id"]


def find_exactly(collection, field: str, keys: Iterable[bytes], projection: dict | None = None, **extra) -> Iterator:
    """Documents whose `field` holds one of the source ids `keys`, type-exact: `$in` matches 42
    and 42.0 alike, `legacy_key` does not."""
    keys = set(keys)
    null = legacy_key(None)
    queries = [{field: {"$in": [source_id(key) for key in part]}} for part in in_chunks(keys - {null})]
    if null in keys:
        queries.append({field: {"$type": "null"}})  # `$in: [null]` would match every document without it
    seen = set()  # 42 and Int64(42) may sit in two lists: a document matching both comes once
    for query in queries:
        for doc in collection.find({**query, **extra}, projection):
            if field in doc and legacy_key(doc[field]) in keys and (seen_key := legacy_key(doc["_id"])) not in seen:
                seen.add(seen_key)
                yield doc


def released_leads(db: Database, keys: Iterable[bytes] | None = None) -> set[bytes]:
    """The legacy keys of the source leads whose normalized lead the application took over
    (`leadnorm.steps.research`): of `keys` (legacy keys), or all of them."""
    records = db[RELEASED_COLLECTION]
    found = records.find({}, {"_id": 1}) if keys is None else find_exactly(records, "_id", keys, {"_id": 1})
    return {legacy_key(doc["_id"]) for doc in found}


def normalized_leads_of(db: Database, keys: Iterable[bytes], projection: dict) -> Iterator:
    """The normalized leads whose `legacy_lead_id` is one of the source ids `keys`, type-exact; a
    nested lead carrying a `legacy_lead_id` of its own is data, never one of them."""
    found = find_exactly(db[SOURCE_COLLECTION], "legacy_lead_id", keys, {**projection, NESTED_FIELD: 1})
    return (lead for lead in found if is_normalized_lead(lead))


# Sizes of BSON values by type byte: fixed, or read from the value (see `_value_end`).
_FIXED_SIZE = {
    0x01: 8,
    0x06: 0,
    0x07: 12,
    0x08: 1,
    0x09: 8,
    0x0A: 0,
    0x10: 4,
    0x11: 8,
    0x12: 8,
    0x13: 16,
    0xFF: 0,
    0x7F: 0,
}


def _value_end(data: bytes, type_byte: int, start: int) -> int:
    if type_byte in _FIXED_SIZE:
        return start + _FIXED_SIZE[type_byte]
    length = int.from_bytes(data[start : start + 4], "little")
    if type_byte in (0x02, 0x0D, 0x0E):  # string, code, symbol: int32 length + bytes
        return start + 4 + length
    if type_byte in (0x03, 0x04, 0x0F):  # document, array, code with scope: total length
        return start + length
    if type_byte == 0x05:  # binary: int32 length + subtype + bytes
        return start + 5 + length
    if type_byte == 0x0B:  # regex: two C strings
        return data.index(b"\0", data.index(b"\0", start) + 1) + 1
    if type_byte == 0x0C:  # DBPointer: string + ObjectId
        return start + 4 + length + 12
    raise ValueError(f"unknown BSON type 0x{type_byte:02x}")


def cut_fields(document: bytes, names: frozenset[bytes]) -> tuple[bytes, bytes]:
    """A raw BSON document without its top-level fields `names` (every other byte as it was: what
    a server's exclusion projection returns, without the server doing the work), and those fields
    as a document of their own. Cheap when none is present: a byte search decides before parsing."""
    document = bytes(document)  # a large document comes as a memoryview, in which `in` looks for one byte
    if not any(name in document for name in names):
        return document, EMPTY_DOCUMENT
    kept, cut, offset, end = [], [], 4, len(document) - 1
    while offset < end:
        key_end = document.index(b"\0", offset + 1)
        value_end = _value_end(document, document[offset], key_end + 1)
        (cut if document[offset + 1 : key_end] in names else kept).append(document[offset:value_end])
        offset = value_end
    return bson_document(kept), bson_document(cut)


EMPTY_DOCUMENT = bson.encode({})


def bson_document(parts: list[bytes]) -> bytes:
    """A raw BSON document of raw elements (type byte, name and value each)."""
    body = b"".join(parts)
    return (len(body) + 5).to_bytes(4, "little") + body + b"\0"


def elements(document: bytes) -> bytes:
    """A raw BSON document's elements, without its length and terminator."""
    return document[4:-1]
