# Two commands do everything: `make demo` and `make test`. Each sets itself up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# airflow standalone starts its components as `airflow …` subprocesses: they must find the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export AIRFLOW__API__HOST := 127.0.0.1
export AIRFLOW__API__PORT ?= 8080

DEMO_LEADS ?= 5000

.PHONY: setup git-filters lint test demo bench airflow airflow-stop scaleout scaleout-stop scaleout-test clean

# The venv is rebuilt whenever requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name leadnorm --display-name "Python (leadnorm)" > /dev/null
	touch $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)

setup: $(STAMP) $(AIRFLOW_HOME)/airflow.db git-filters

# In a git checkout: nbstripout as the filter .gitattributes names, so notebooks are stored without outputs.
git-filters: $(STAMP)
	@if git rev-parse --git-dir > /dev/null 2>&1; then \
		git config filter.nbstripout.clean '$(NBSTRIPOUT)' && \
		git config filter.nbstripout.smudge cat && \
		git config diff.ipynb.textconv '$(NBSTRIPOUT) -t'; \
	fi

# Ruff with Airflow's AIR rules, and its format check: part of every test run.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	DEMO_LEADS=$(DEMO_LEADS) scripts/demo.sh

# This migration beside the naive one and the I/O floor, on a fresh embedded server (or $MONGO_URI).
BENCH_LEADS ?= 20000
bench: setup
	$(BIN)/python -m leadnorm bench --leads $(BENCH_LEADS) $(BENCH_ARGS)

# Airflow's UI on 127.0.0.1:$(AIRFLOW__API__PORT) (any port: tasks and log servers follow it), the
# plugin's Leads and Data Docs in it, mongo_default imported from config/airflow_connections.json.
airflow: setup
	scripts/airflow.sh start

# Stops every process `make airflow` started (scheduler, API server, triggerer, DAG processor, tasks).
airflow-stop:
	scripts/airflow.sh stop

# The same DAGs on the CeleryExecutor: Redis broker, PostgreSQL metadata DB, two Celery workers.
scaleout: setup
	@URI=$$($(BIN)/python -m leadnorm mongo start) && \
	AIRFLOW_CONN_MONGO_DEFAULT="mongo://$${URI#mongodb://}/jazon_ai_sdr" scripts/scaleout.sh start

scaleout-stop:
	scripts/scaleout.sh stop

scaleout-test: setup
	$(BIN)/python -m pytest -m scaleout $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) .airflow-scaleout .leadnorm reports backups

# --- notebooks -----------------------------------------------------------------------
JUPYTER_PORT ?= 8888
NOTEBOOK_LEADS ?= 2000
# A database of their own, seeded afresh: the demo's and the UI's jazon_ai_sdr is never dropped. Any
# other NOTEBOOK_DB (make notebooks NOTEBOOK_DB=jazon_ai_sdr) is read as it is, neither seeded nor migrated.
NOTEBOOK_SCRATCH_DB := leadnorm_notebooks
NOTEBOOK_DB ?= $(NOTEBOOK_SCRATCH_DB)
NOTEBOOK_REPORTS ?= reports/notebooks
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
NBSTRIPOUT := .venv/bin/nbstripout --extra-keys metadata.language_info

.PHONY: jupyter notebooks

# JupyterLab on 127.0.0.1 with the project's kernel `leadnorm`, the embedded MongoDB started first;
# the token goes through the environment, never the process list.
jupyter: setup
	@URI=$$($(BIN)/python -m leadnorm mongo start) && \
	TOKEN=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))') && \
	echo "MongoDB (embedded SecantusDB): $$URI" && \
	echo "JupyterLab: http://127.0.0.1:$(JUPYTER_PORT)/lab?token=$$TOKEN" && \
	JUPYTER_TOKEN=$$TOKEN $(BIN)/jupyter lab --no-browser --allow-root --ip 127.0.0.1 --port $(JUPYTER_PORT) \
		--ServerApp.port_retries=0 --ServerApp.root_dir=$(CURDIR)/notebooks

# Run every notebook on the embedded server into reports/notebooks/ (executed .ipynb, and HTML without code).
notebooks: setup
	@export MONGO_URI=$$($(BIN)/python -m leadnorm mongo start) && \
	if [ "$(NOTEBOOK_DB)" = "$(NOTEBOOK_SCRATCH_DB)" ]; then \
		$(BIN)/python -m leadnorm seed --db $(NOTEBOOK_DB) --leads $(NOTEBOOK_LEADS) --drop && \
		$(BIN)/python -m leadnorm migrate --db $(NOTEBOOK_DB) > /dev/null || exit 1; \
	fi && \
	mkdir -p $(NOTEBOOK_REPORTS) && \
	for nb in $(NOTEBOOKS); do \
		out=$(NOTEBOOK_REPORTS)/$$(basename $$nb) && \
		echo "$$nb -> $$out" && \
		$(BIN)/papermill --no-progress-bar --log-level WARNING -p db $(NOTEBOOK_DB) $$nb $$out && \
		$(BIN)/jupyter nbconvert --to html --no-input --log-level ERROR $$out || exit 1; \
	done && echo "reports: $(NOTEBOOK_REPORTS)/*.html (database $(NOTEBOOK_DB))"
