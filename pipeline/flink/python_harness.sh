#!/usr/bin/env bash
# The PROCESS environment of the Python transforms on Flink: starts Beam's Python SDK harness
# from this project's own environment, as the Python SDK container's Go boot binary does, without
# Docker. A TaskManager runs: python_harness.sh --id=<worker id> --provision_endpoint=<host:port>
# [--logging_endpoint=... --artifact_endpoint=... --control_endpoint=...]. The environment's
# payload sets HARNESS_PYTHON (the interpreter the pipeline was submitted with, whose
# environment has every package the pipeline needs); the project's modules come from here.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
id="" endpoint=""
for arg in "$@"; do
  case "$arg" in
    --id=*) id=${arg#--id=}; id=${id#\'}; id=${id%\'} ;;
    --provision_endpoint=*) endpoint=${arg#--provision_endpoint=} ;;
  esac
done
if [ -z "$id" ] || [ -z "$endpoint" ]; then
  echo "python_harness.sh: needs --id and --provision_endpoint, got: $*" >&2
  exit 2
fi
python=${HARNESS_PYTHON:-$repo/.venv/bin/python}
export WORKER_ID="$id"
eval "$("$python" "$repo/pipeline/xlang/provision_env.py" "$id" "$endpoint")"
export SEMI_PERSISTENT_DIRECTORY="${TMPDIR:-/tmp}/beam-harness-$id"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m apache_beam.runners.worker.sdk_worker_main
