#!/usr/bin/env bash
# The benchmark in one command:  bench/run.sh [--quick] [--out DIR] [--kafka-port P]
#   (and --only NAMES, --loads RATES, --seconds S for an A/B sweep, e.g. --only pipeline,floor)
# Installs what is missing (scripts/bootstrap.sh, then bench/requirements.txt into .venv),
# starts its own Kafka broker (port 19292) and stand-ins (free ports), measures the pipeline
# and the three references, stops what it started, writes bench/results/<timestamp>/ and
# prints the report. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
bench/install.sh

exec .venv/bin/python -m bench "$@"
