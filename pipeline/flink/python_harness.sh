#!/usr/bin/env bash
# The PROCESS environment of the Python transforms on Flink: starts Beam's Python SDK harness
# from this project's own environment, as the Python SDK container's Go boot binary does, without
# Docker. A TaskManager runs: python_harness.sh --id=<worker id> --provision_endpoint=<host:port>
# [...]. The environment's payload sets HARNESS_PYTHON (the interpreter the pipeline was
# submitted with, whose environment has every package the pipeline needs); the project's
# modules come from this checkout.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${HARNESS_PYTHON:-$repo/.venv/bin/python}
eval "$("$python" "$repo/pipeline/xlang/provision_env.py" "$@")"
export SEMI_PERSISTENT_DIRECTORY="${TMPDIR:-/tmp}/beam-harness-$WORKER_ID"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m apache_beam.runners.worker.sdk_worker_main
