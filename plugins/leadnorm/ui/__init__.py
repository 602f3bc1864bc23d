"""The Jazon leads application inside the Airflow UI: the plugin, its FastAPI app, pages and API."""
