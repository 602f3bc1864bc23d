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

.PHONY: setup lint test demo airflow clean

# The venv is rebuilt whenever requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)

setup: $(STAMP) $(AIRFLOW_HOME)/airflow.db

# Ruff with Airflow's AIR rules, and its format check: part of every test run.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	DEMO_LEADS=$(DEMO_LEADS) scripts/demo.sh

# Airflow's UI on 127.0.0.1, its mongo_default connection pointing at the embedded server.
airflow: setup
	@URI=$$($(BIN)/python -m leadnorm mongo start) && \
	echo "Airflow UI: http://127.0.0.1:$(AIRFLOW__API__PORT)  user admin, password in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated" && \
	AIRFLOW_CONN_MONGO_DEFAULT="mongo://$${URI#mongodb://}/jazon_ai_sdr" $(BIN)/airflow standalone

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) .leadnorm reports backups
