"""Collection Assets: named as the MongoDB provider names them, never with credentials; their event extras."""

from __future__ import annotations

import warnings
from urllib.parse import urlsplit, urlunsplit

import pytest
from airflow.providers.mongo.assets.mongo import sanitize_uri

from leadnorm.assets import (
    CONN_ENV,
    FALLBACK_ENV,
    asset_event_extras,
    collection_assets,
    emit_asset_events,
)
from leadnorm.contract import COLLECTION_NAMES, NORMALIZED_LEAD, SOURCE_COLLECTION
from leadnorm.devtools.seed import seed_leads
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder


@pytest.fixture(autouse=True)
def no_connection_in_env(monkeypatch):
    monkeypatch.delenv(CONN_ENV, raising=False)
    monkeypatch.delenv(FALLBACK_ENV, raising=False)


def names(assets) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Airflow warns when it has to drop a password from an asset URI
        return [asset.name for asset in assets.values()]


def assert_provider_names(assets, prefix: str) -> None:
    assert list(assets) == list(COLLECTION_NAMES)
    assert names(assets) == [f"{prefix}/{name}" for name in COLLECTION_NAMES]
    for asset in assets.values():
        assert asset.uri == asset.name == urlunsplit(sanitize_uri(urlsplit(asset.uri)))


def test_credentials_never_reach_the_names():
    assets = collection_assets("mongo://admin:s%40cret@mongo.internal:27018/crm?authSource=admin")
    assert_provider_names(assets, "mongodb://mongo.internal:27018/crm")
    assert not any("admin" in asset.uri or "cret" in asset.uri for asset in assets.values())


def test_port_defaults_to_27017():
    assert_provider_names(
        collection_assets("mongodb://reader@db.example.com/jazon"), "mongodb://db.example.com:27017/jazon"
    )


def test_json_connection_from_the_environment(monkeypatch):
    conn = '{"conn_type": "mongo", "host": "mongo.internal", "login": "admin", "password": "pw", "schema": "crm"}'
    monkeypatch.setenv(CONN_ENV, conn)
    assets = collection_assets()
    assert_provider_names(assets, "mongodb://mongo.internal:27017/crm")
    assert not any("admin" in asset.uri or "pw" in asset.uri for asset in assets.values())


def test_fallbacks_when_no_connection_in_the_environment(monkeypatch):
    assert_provider_names(collection_assets(), "mongodb://127.0.0.1:27017/jazon_ai_sdr")
    monkeypatch.setenv(FALLBACK_ENV, "mongodb://replica-1:27019,replica-2:27019/crm?replicaSet=rs0")
    assert_provider_names(collection_assets(), "mongodb://replica-1:27019/crm")
    monkeypatch.setenv(CONN_ENV, "mongo://primary/sdr")
    assert_provider_names(collection_assets(), "mongodb://primary:27017/sdr")


def test_a_connection_without_host_names_nothing():
    with pytest.raises(ValueError, match="no host"):
        collection_assets('{"conn_type": "mongo", "schema": "crm"}')


def test_event_extras_after_a_migration(db, tmp_path):
    seed_leads(db, 120, seed=5)
    run, _ = migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    loads = {name: run.read_result(f"load-{name}") for name in COLLECTION_NAMES}
    loads["citations"] = {**loads["citations"], "deleted": 2}  # as a refresh reports removals
    extras = asset_event_extras(db, loads)

    assert list(extras) == list(COLLECTION_NAMES)
    normalized = db[SOURCE_COLLECTION].count_documents(NORMALIZED_LEAD)
    assert 0 < normalized < db[SOURCE_COLLECTION].count_documents({})
    assert extras["leads"] == {"rows": normalized, "inserted": normalized, "replaced": 0}
    assert extras["citations"]["deleted"] == 2
    for name in COLLECTION_NAMES:
        rows = normalized if name == "leads" else db[name].count_documents({})
        assert extras[name]["rows"] == rows == extras[name]["inserted"]
    assert asset_event_extras(db, {})["companies"] == {"rows": extras["companies"]["rows"]}


def test_extras_go_to_the_outlet_events():
    from airflow.sdk.execution_time.context import OutletEventAccessors

    assets = collection_assets("mongodb://h/db")
    events = OutletEventAccessors()
    emit_asset_events(events, assets, {"companies": {"rows": 3, "inserted": 1}, "leads": {"rows": 2}})
    assert events[assets["companies"]].extra == {"rows": 3, "inserted": 1}
    assert events[assets["leads"]].extra == {"rows": 2}
