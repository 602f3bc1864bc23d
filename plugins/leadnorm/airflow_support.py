"""What the DAGs need from Airflow, kept out of the DAG files: the MongoDB connection and run folders.

Imported inside tasks only, so parsing a DAG file stays cheap.
"""

from __future__ import annotations

from pymongo.database import Database

from leadnorm.contract import DEFAULT_DB
from leadnorm.mongo import SERVER_TIMEOUT_S, database, outage_limit, probe
from leadnorm.steps.runstore import RunFolder

MONGO_CONN_ID = "mongo_default"


def mongo_database(conn_id: str = MONGO_CONN_ID) -> Database:
    """The database of the Airflow connection (conn type `mongo`; its path/schema names the database).
    Found within 5 s, then as patient as the command line with a busy server (`leadnorm.mongo.connect`);
    timeouts set in the connection's extras win."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    hook = MongoHook(mongo_conn_id=conn_id)
    probe(hook.uri, SERVER_TIMEOUT_S)
    outage_ms = int(outage_limit(SERVER_TIMEOUT_S) * 1000)
    for option in ("serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS"):
        hook.extras.setdefault(option, outage_ms)
    return database(hook.get_conn(), hook.connection.schema or DEFAULT_DB)


def run_folder(dag_id: str, run_id: str) -> RunFolder:
    """One staging folder per DAG run: a retried task finds its inputs where it left them."""
    return RunFolder.new(f"{dag_id}/{run_id}", command=dag_id)
