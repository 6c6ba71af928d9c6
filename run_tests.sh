#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite. The integration tests
# start their own Kafka broker and stand-ins (tests/conftest.py) and stop them.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
