#!/usr/bin/env bash
# make airflow / make airflow-stop: `airflow standalone` on 127.0.0.1:$AIRFLOW__API__PORT with this
# checkout's DAGs and plugin, the connection mongo_default imported from config/airflow_connections.json
# (pointed at the embedded MongoDB), and every process it starts in one process group that stop ends.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
PORT=${AIRFLOW__API__PORT:-8080}
PGID_FILE=$AIRFLOW_HOME/standalone.pgid

# Everything follows the API port: the execution API the tasks call, and the log servers of the
# worker and the triggerer (two checkouts side by side must not share ports).
export AIRFLOW__API__BASE_URL=${AIRFLOW__API__BASE_URL:-http://127.0.0.1:$PORT}
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$PORT/execution/}
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-$((PORT + 1))}
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-$((PORT + 2))}

stop() {
  [ -f "$PGID_FILE" ] || { echo "airflow: not running (no $PGID_FILE)"; return 0; }
  local pgid
  pgid=$(cat "$PGID_FILE")
  if kill -0 -- "-$pgid" 2>/dev/null; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    echo "airflow: stopped process group $pgid"
  else
    echo "airflow: process group $pgid had already ended"
  fi
  rm -f "$PGID_FILE"
}

start() {
  if [ -f "$PGID_FILE" ] && kill -0 -- "-$(cat "$PGID_FILE")" 2>/dev/null; then
    echo "airflow: already running (process group $(cat "$PGID_FILE")); make airflow-stop first" >&2
    exit 1
  fi
  uri=$("$BIN/python" -m leadnorm mongo start)
  rendered=$AIRFLOW_HOME/connections.json
  (umask 077 && "$BIN/python" - "${uri#mongodb://}" config/airflow_connections.json "$rendered" <<'PY'
import json, sys
address, template, out = sys.argv[1:]
connections = json.load(open(template))
host, port = address.split("/")[0].rsplit(":", 1)
connections["mongo_default"].update(host=host, port=int(port))
json.dump(connections, open(out, "w"), indent=2)
PY
  )
  "$BIN/airflow" connections import --overwrite "$rendered" > /dev/null
  rm -f "$rendered"
  unset AIRFLOW_CONN_MONGO_DEFAULT  # the connection under Admin -> Connections is the one used
  # DAG files name the Assets without a database query: from the same address (leadnorm/assets.py).
  export LEADNORM_ASSET_MONGO_URI="mongodb://${uri#mongodb://}/jazon_ai_sdr"
  echo "Airflow UI: http://127.0.0.1:$PORT  user admin, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  echo "mongo_default -> ${uri#mongodb://}/jazon_ai_sdr (Admin -> Connections); stop with: make airflow-stop"
  setsid "$BIN/airflow" standalone &
  child=$!
  echo "$child" > "$PGID_FILE"  # setsid: the child leads its own process group
  trap 'stop; exit 130' INT TERM
  wait "$child" || true
  stop > /dev/null
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
