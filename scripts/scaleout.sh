#!/usr/bin/env bash
# The scale-out profile: the same DAGs on Airflow's CeleryExecutor, Redis as broker,
# PostgreSQL as metadata database and result backend, two Celery workers.
#
#   scripts/scaleout.sh start    start it (prints the API server's URL), or say why not
#   scripts/scaleout.sh stop     stop every process it started
#   scripts/scaleout.sh airflow ARGS...   the airflow command line against it
#
# Settings (environment): SCALEOUT_HOME (.airflow-scaleout), SCALEOUT_PORT (8090),
# SCALEOUT_PG (postgresql://postgres@127.0.0.1:5432), SCALEOUT_DB (leadnorm_airflow),
# SCALEOUT_REDIS (redis://127.0.0.1:6379/0), and AIRFLOW_CONN_MONGO_DEFAULT for the DAGs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=$ROOT/.venv/bin
export PATH="$BIN:$PATH"

export AIRFLOW_HOME=${SCALEOUT_HOME:-$ROOT/.airflow-scaleout}
PORT=${SCALEOUT_PORT:-8090}
PG=${SCALEOUT_PG:-postgresql://postgres@127.0.0.1:5432}
DB=${SCALEOUT_DB:-leadnorm_airflow}
REDIS=${SCALEOUT_REDIS:-redis://127.0.0.1:6379/0}
PIDS=$AIRFLOW_HOME/pids

export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${PG/postgresql:/postgresql+psycopg2:}/$DB"
export AIRFLOW__CELERY__BROKER_URL=$REDIS
export AIRFLOW__CELERY__RESULT_BACKEND="db+${PG/postgresql:/postgresql+psycopg2:}/$DB"
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$PORT/execution/
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=5
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5

stop() {
  [ -d "$PIDS" ] || return 0
  for pidfile in "$PIDS"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 3
  for pidfile in "$PIDS"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

launch() {  # name, command...: in its own process group, so stop() takes its children too
  local name=$1
  shift
  setsid "$@" > "$AIRFLOW_HOME/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
}

start() {
  if ! (echo > "/dev/tcp/127.0.0.1/${PG##*:}") 2>/dev/null; then
    echo "scaleout: PostgreSQL does not answer at $PG" >&2
    exit 1
  fi
  if ! "$BIN/python" -c "import redis, sys; redis.Redis.from_url(sys.argv[1]).ping()" "$REDIS" 2>/dev/null; then
    echo "scaleout: Redis does not answer at $REDIS" >&2
    exit 1
  fi
  mkdir -p "$PIDS"
  stop
  "$BIN/python" - "$PG" "$DB" <<'PY'
import sys
import psycopg2
url, name = sys.argv[1], sys.argv[2]
conn = psycopg2.connect(url + "/postgres")
conn.autocommit = True
with conn.cursor() as cursor:
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    if cursor.fetchone() is None:
        cursor.execute(f'CREATE DATABASE "{name}"')
PY
  airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
  launch api-server airflow api-server --port "$PORT"
  launch scheduler airflow scheduler
  launch dag-processor airflow dag-processor
  for n in 1 2; do
    AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$((8793 + n)) \
      launch "worker-$n" airflow celery worker --celery-hostname "worker$n@%h" --concurrency 2
  done
  for _ in $(seq 120); do
    if curl -sf "http://127.0.0.1:$PORT/api/v2/monitor/health" > /dev/null; then
      echo "http://127.0.0.1:$PORT"
      return 0
    fi
    sleep 1
  done
  echo "scaleout: the API server did not answer within 120 s; logs in $AIRFLOW_HOME" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  airflow) shift; exec airflow "$@" ;;
  *) echo "usage: $0 start|stop|airflow ARGS..." >&2; exit 2 ;;
esac
