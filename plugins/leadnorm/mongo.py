"""Connections: one place that turns a URI and a database name into a pymongo Database."""

from __future__ import annotations

import os

from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo import MongoClient
from pymongo.database import Database

from leadnorm.config import database_from_uri
from leadnorm.contract import DEFAULT_DB
from leadnorm.errors import ConfigError

# Timezone-aware UTC datetimes both ways, so values compare equal after a round trip; a date
# outside Python's range decodes as bson.DatetimeMS instead of failing the whole batch.
CODEC_OPTIONS = CodecOptions(tz_aware=True, datetime_conversion=DatetimeConversion.DATETIME_AUTO)


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
    """--db, else the database named in the URI's path, else jazon_ai_sdr."""
    return db or database_from_uri(uri) or DEFAULT_DB


def connect(uri: str | None = None, db: str | None = None, timeout_ms: int = 10_000) -> Database:
    """The database to work on; raises a one-line error when the server is not there."""
    uri = resolve_uri(uri)
    client = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, tz_aware=True)
    client.admin.command("ping")
    return database(client, resolve_db(db, uri))


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
