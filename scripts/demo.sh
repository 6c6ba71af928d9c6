#!/usr/bin/env bash
# The demo, shared by ./run_direct.sh and ./run_flink.sh: scripts/demo.sh RUNNER [pipeline flags]
# with RUNNER DirectRunner (Prism) or FlinkRunner (a local Flink session cluster,
# python -m standins.flink). Installs what it needs (scripts/bootstrap.sh), starts a local Kafka
# broker, the central and the scorer stand-ins (and for Flink the cluster), creates the topics,
# runs `python -m pipeline --runner=RUNNER`, feeds it store traffic and shows a live line of what
# flows. Ctrl-C stops everything it started (the pipeline first: it drains, reports and cancels
# its job). Every setting can be overridden from the environment (README.md, "Configuration");
# DEMO_RATE sets the store traffic in focus events per second (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
runner=$1; shift
scripts/bootstrap.sh

export BOOTSTRAP_SERVERS="${BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
export ENTRY_EVENT_TOPIC_NAME="${ENTRY_EVENT_TOPIC_NAME:-store.entry}"
export FOCUS_EVENT_TOPIC_NAME="${FOCUS_EVENT_TOPIC_NAME:-store.focus}"
export COUPON_PREDICTION_TOPIC_NAME="${COUPON_PREDICTION_TOPIC_NAME:-coupon.predictions}"
export DEAD_LETTER_TOPIC_NAME="${DEAD_LETTER_TOPIC_NAME:-coupon.deadletters}"
export GROUP_ID="${GROUP_ID:-coupon-scoring}"
export CENTRAL_URL="${CENTRAL_URL:-http://127.0.0.1:8701}"
export COUPON_SCORER_URL="${COUPON_SCORER_URL:-http://127.0.0.1:8702/v1/models/coupon:predict}"
export METRICS_FILE="${METRICS_FILE:-$PWD/.local/run/metrics.json}"
export METRICS_INTERVAL_SECONDS="${METRICS_INTERVAL_SECONDS:-2}"
export METRICS_PORT="${METRICS_PORT:-9464}"  # Prometheus /metrics and /health
PY=.venv/bin/python
LOGS=.local/logs
mkdir -p "$LOGS" .local/run
rm -f "$METRICS_FILE"

flink=false
if [ "$runner" = FlinkRunner ]; then
  flink=true
  export FLINK_REST_PORT="${FLINK_REST_PORT:-8081}"
  export FLINK_MASTER="${FLINK_MASTER:-127.0.0.1:$FLINK_REST_PORT}"
fi
kafka_was_running=false; services_were_running=false; flink_was_running=false
$PY -m standins.kafka status >/dev/null 2>&1 && kafka_was_running=true
[ -f .local/run/central.pid ] && services_were_running=true
if $flink; then $PY -m standins.flink status >/dev/null 2>&1 && flink_was_running=true; fi
pipeline_pid=""; traffic_pid=""

stop_group() {  # stop_group PID SIGNAL SECONDS: signal the leader, wait, then kill its group
  local pid=$1 signal=$2 seconds=$3
  [ -n "$pid" ] || return 0
  kill -"$signal" "$pid" 2>/dev/null || return 0
  for _ in $(seq "$seconds"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

cleanup() {
  trap - EXIT INT TERM
  echo; echo "stopping ..."
  stop_group "$traffic_pid" TERM 10
  stop_group "$pipeline_pid" INT 45  # room for its drain (DRAIN_TIMEOUT_SECONDS, 30 s)
  $services_were_running || $PY -m standins services stop || true
  $kafka_was_running || $PY -m standins.kafka stop || true
  if $flink && ! $flink_was_running; then $PY -m standins.flink stop || true; fi
  echo "stopped; logs in $LOGS/"
}
trap cleanup EXIT INT TERM

if $flink; then $PY -m standins.flink start; fi
$PY -m standins.kafka start
$PY -m standins.kafka topics "$ENTRY_EVENT_TOPIC_NAME" "$FOCUS_EVENT_TOPIC_NAME" \
  "$COUPON_PREDICTION_TOPIC_NAME" "$DEAD_LETTER_TOPIC_NAME" --partitions 3
$services_were_running || $PY -m standins services start

setsid $PY -m pipeline --runner="$runner" "$@" > "$LOGS/pipeline.log" 2>&1 &
pipeline_pid=$!
echo "pipeline starting on $runner (log: $LOGS/pipeline.log) ..."
$flink && echo "Flink's web UI: http://$FLINK_MASTER"
until grep -q "pipeline reading" "$LOGS/pipeline.log"; do
  kill -0 "$pipeline_pid" 2>/dev/null || { tail -n 30 "$LOGS/pipeline.log"; exit 1; }
  sleep 1
done

setsid $PY -m standins.store_traffic --rate "${DEMO_RATE:-20}" > "$LOGS/traffic.log" 2>&1 &
traffic_pid=$!
echo "store traffic at ${DEMO_RATE:-20} focus events/s (log: $LOGS/traffic.log); Ctrl-C stops everything"
$PY -m standins.monitor --interval 2
