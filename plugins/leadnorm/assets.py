"""Airflow Assets for the nine normalized collections, and the extras their events carry.

Each collection is one Asset named as the MongoDB provider names it
(`mongodb://host:port/db/collection`, see `airflow.providers.mongo.assets.mongo.create_asset`),
so lineage from the provider's own hooks and operators meets the same assets.

The names come from the `mongo_default` connection, but `collection_assets` runs when a DAG
file is parsed, where nothing may query the metadata DB or MongoDB. So the connection is read
from the environment only:

1. `AIRFLOW_CONN_MONGO_DEFAULT` (URI or JSON form), the way this project defines it;
2. else `LEADNORM_ASSET_MONGO_URI`, for a `mongo_default` kept in the metadata DB or a
   secrets backend: set it to the same host, port and database;
3. else `mongodb://127.0.0.1:27017/jazon_ai_sdr`, the embedded server's defaults.

Names never carry credentials; the port defaults to 27017, the database to `jazon_ai_sdr`.
Only the first host of a multi-host URI names the asset.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from airflow.providers.mongo.assets.mongo import create_asset

from leadnorm.contract import COLLECTION_NAMES, DEFAULT_DB, NORMALIZED_LEAD, SOURCE_COLLECTION

if TYPE_CHECKING:
    from airflow.sdk import Asset
    from pymongo.database import Database

CONN_ENV = "AIRFLOW_CONN_MONGO_DEFAULT"
FALLBACK_ENV = "LEADNORM_ASSET_MONGO_URI"
FALLBACK_URI = f"mongodb://127.0.0.1:27017/{DEFAULT_DB}"
DEFAULT_PORT = 27017
WRITE_COUNTS = ("inserted", "replaced", "deleted")  # what a load result may report as written


def collection_assets(conn_uri: str | None = None) -> dict[str, Asset]:
    """One Asset per normalized collection, in load order; `conn_uri` overrides the environment."""
    host, port, database = _location(_connection(conn_uri))
    return {name: create_asset(host=host, port=port, database=database, collection=name) for name in COLLECTION_NAMES}


def nested_leads_asset(conn_uri: str | None = None) -> Asset:
    """The nested leads the application writes, as one Asset apart from the normalized `leads`
    (the same collection, but the refresh writes that one: a DAG scheduled on it would schedule
    itself), watched by `leadnorm.triggers.NestedLeadsChanged`."""
    from airflow.sdk import Asset, AssetWatcher

    from leadnorm.triggers import NestedLeadsChanged

    host, port, database = _location(_connection(conn_uri))
    return Asset(
        name=f"{database}.{SOURCE_COLLECTION} (nested leads)",
        uri=f"mongodb://{host}:{port}/{database}/{SOURCE_COLLECTION}?documents=nested",
        watchers=[AssetWatcher(name="nested_leads_changed", trigger=NestedLeadsChanged())],
    )


def _connection(conn_uri: str | None) -> str:
    return conn_uri or os.environ.get(CONN_ENV) or os.environ.get(FALLBACK_ENV) or FALLBACK_URI


def _location(conn: str) -> tuple[str, int, str]:
    """Host, port and database of a connection in URI or JSON form; user and password go no further."""
    if conn.lstrip().startswith("{"):
        fields = json.loads(conn)
        host, port, database = fields.get("host"), fields.get("port"), fields.get("schema")
    else:
        parts = urlsplit(conn)
        first = urlsplit("//" + parts.netloc.rpartition("@")[2].split(",")[0])
        host, port, database = first.hostname, first.port, unquote(parts.path.lstrip("/"))
    if not host:
        raise ValueError(f"the MongoDB connection names no host, so its collections cannot name assets ({CONN_ENV})")
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    return host, int(port or DEFAULT_PORT), database or DEFAULT_DB


def asset_event_extras(db: Database, load_results: dict[str, dict]) -> dict[str, dict]:
    """Per collection: `rows` stored now (normalized leads only, for `leads`) and the write counts of
    its load result, so a consumer sees what changed without querying MongoDB itself."""
    extras = {}
    for name in COLLECTION_NAMES:
        stored = db[name].count_documents(NORMALIZED_LEAD if name == SOURCE_COLLECTION else {})
        written = load_results.get(name) or {}
        extras[name] = {"rows": stored, **{key: written[key] for key in WRITE_COUNTS if key in written}}
    return extras


def emit_asset_events(outlet_events, assets: dict[str, Asset], extras: dict[str, dict]) -> None:
    """Attach `extras` to this task's outlet events (the context's `outlet_events`); the task must
    list `assets` as its outlets, and its events are emitted when it succeeds."""
    for name, extra in extras.items():
        outlet_events[assets[name]].extra = extra
