"""leadnorm: nested Jazon AI SDR leads into nine normalized MongoDB collections.

One library behind three doors: the command line (`python -m leadnorm`), the Airflow
DAGs in `dags/`, and the notebooks.
"""
