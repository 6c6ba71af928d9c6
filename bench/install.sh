#!/usr/bin/env bash
# Installs the bench's own requirements (bench/requirements.txt: the Quix Streams reference,
# matplotlib, py-spy) into .venv, once per change of the file. bench/run.sh and run_tests.sh
# (the suite has the bench's smoke test) run it after scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.bench-requirements.sha256
wanted=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/pip install --quiet -r bench/requirements.txt
  echo "$wanted" > "$stamp"
fi
