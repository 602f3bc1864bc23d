"""What the DAGs need from Airflow, kept out of the DAG files: the MongoDB connection, run folders,
the UI's address.

Imported inside tasks only, so parsing a DAG file stays cheap.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from pymongo.database import Database

from leadnorm.contract import DEFAULT_DB
from leadnorm.mongo import SERVER_TIMEOUT_S, database, outage_limit, probe
from leadnorm.steps.runstore import RunFolder

MONGO_CONN_ID = "mongo_default"
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


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


def api_base_url() -> str:
    """Airflow's API server, with a trailing slash: `[api] base_url`, else `[api] host` and
    `[api] port` (a wildcard or empty host as 127.0.0.1; https when `[api] ssl_cert` and
    `ssl_key` are set). A base URL that is only a path (Airflow under /airflow behind a proxy
    that the server itself is not) keeps that path on host and port."""
    from airflow.configuration import conf

    base = urlsplit(conf.get("api", "base_url", fallback="") or "")
    if base.scheme and base.netloc:
        return f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}/"
    host = conf.get("api", "host", fallback="").strip()
    host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    port = conf.get("api", "port", fallback="8080")
    tls = conf.get("api", "ssl_cert", fallback="") and conf.get("api", "ssl_key", fallback="")
    return f"{'https' if tls else 'http'}://{host}:{port}{base.path.rstrip('/')}/"


def run_page(dag_id: str, run_id: str, tab: str = "outcome") -> str:
    """A DAG run's page in the Airflow UI, on the plugin's tab (`leadnorm.ui.plugin`: its outcome)."""
    return f"{api_base_url()}dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/plugin/{tab}"
