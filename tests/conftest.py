"""Shared fixtures: one real MongoDB server for the whole session, a fresh database per test.

The server is SecantusDB started as its own process, unless MONGO_URI names another
(a real mongod, say): the same suite then runs against that.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory) -> str:
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    from leadnorm.devtools.server import spawn, terminate

    data = tmp_path_factory.mktemp("mongo") / "data"
    server = spawn(data)
    yield server.uri
    terminate(server.pid)


@pytest.fixture
def db(mongo_uri):
    """An empty database of its own for one test, dropped afterwards."""
    from leadnorm.mongo import connect

    database = connect(mongo_uri, f"test_{uuid.uuid4().hex[:12]}")
    yield database
    database.client.drop_database(database.name)
    database.client.close()


def migrated_once(mongo_uri: str, folder: Path, seed: int):
    """300 seeded leads in a database of their own, migrated once, dropped at the end: for a
    module-scoped fixture whose tests only read (`yield from migrated_once(...)`)."""
    from leadnorm.devtools.seed import seed_leads
    from leadnorm.mongo import connect
    from leadnorm.steps.pipeline import migrate
    from leadnorm.steps.runstore import RunFolder

    database = connect(mongo_uri, f"test_{uuid.uuid4().hex[:12]}")
    seed_leads(database, 300, seed=seed)
    migrate(database, backup_dir=folder / "b", skip_validation=True, run=RunFolder(folder / "run"))
    yield database
    database.client.drop_database(database.name)
    database.client.close()
