#!/usr/bin/env bash
# make demo: embedded MongoDB, synthetic nested leads, the leads_migration DAG, its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
LEADS=${DEMO_LEADS:-5000}

uri=$($BIN/python -m leadnorm mongo start)
echo "MongoDB (embedded SecantusDB): $uri"
$BIN/python -m leadnorm seed --leads "$LEADS" --drop --uri "$uri"

export AIRFLOW_CONN_MONGO_DEFAULT="mongo://${uri#mongodb://}/jazon_ai_sdr"
log=.leadnorm/demo-dags-test.log
echo "airflow dags test leads_migration (full log: $log) ..."
$BIN/airflow dags test leads_migration > "$log" 2>&1 &
run=$!
# The run as it goes: each task as it starts, the steps' progress lines, the gate's verdict.
tail -n +1 -F --pid=$run "$log" 2>/dev/null \
  | grep --line-buffered -E "\[DAG TEST\] starting task_id=|docs/s|\] validation (passed|FAILED)" \
  | sed -u -E -e 's/^.*\[DAG TEST\] starting task_id=([^ ]+) map_index=-1 .*$/  task \1/' \
      -e 's/^.*\[DAG TEST\] starting task_id=([^ ]+) map_index=([0-9]+) .*$/  task \1 [\2]/' \
      -e 's/^.*\[info *\] (.*) \[leadnorm\] loc=.*$/    \1/' \
      -e 's/^.*\[info *\] (validation .*)$/    \1/' || true
if ! wait $run; then
  tail -40 "$log"
  echo "demo: the DAG run failed; full log in $log" >&2
  exit 1
fi
summary=$(ls -t reports/summaries/leads_migration/*.txt | head -1)
cat "$summary"
echo
echo "Data Docs: reports/data_docs/index.html  (serve them: .venv/bin/python -m leadnorm reports serve)"
echo "Stop the server: .venv/bin/python -m leadnorm mongo stop"
