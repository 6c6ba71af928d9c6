#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite. The integration tests
# start their own Kafka broker and stand-ins (tests/conftest.py) and stop them; the bench's
# smoke test (tests/bench) needs the bench's requirements too (bench/install.sh), and the
# operator's-view tests Prometheus' promtool (scripts/install_promtool.sh).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
bench/install.sh
scripts/install_promtool.sh
exec .venv/bin/python -m pytest "$@"
