"""Airflow plugin: the Jazon leads application inside the Airflow UI.

Registered through the package's `airflow.plugins` entry point (pyproject.toml), so any Airflow in
an environment where leadnorm is installed (editable, or as a wheel) loads it; the plugins folder
needs no file of its own.

Mounts `leadnorm.ui.app` (FastAPI) under /leadnorm on Airflow's API server, puts **Leads** in
the UI's navigation and **Outcome** on the page of every DAG run (its summary and its quality
gate, suite by suite, linking the Data Docs). Its endpoints require an
Airflow sign-in like Airflow's own API, show read-only users allowlisted fields only, take
changes from Airflow's own origin only and send security headers (see `leadnorm.ui.app`).
Set `[api] base_url` when Airflow is reached through a proxy: the upload triggers Airflow's
API there, and a browser's Origin is checked against it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from leadnorm.ui.app import create_app


class LeadnormUiPlugin(AirflowPlugin):
    name = "leadnorm"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/leadnorm", "name": "Leads"}]
    external_views = [
        {"name": "Leads", "href": "leadnorm/leads", "destination": "nav", "url_route": "leads"},
        {
            "name": "Outcome",
            "href": "leadnorm/runs/{DAG_ID}/{RUN_ID}/docs",
            "destination": "dag_run",
            "url_route": "outcome",
        },
    ]
