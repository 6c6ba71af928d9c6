#!/usr/bin/env bash
# Installs what the project needs, once per change: the Python virtualenv with
# the pinned packages, the Prism runner binary (built with `go install` at the
# Beam SDK's version), the Kafka broker's jars and the Java KafkaIO jars of
# --kafka_io=xlang (Maven, each stamped with its pom's hash). Safe to re-run.
# Needs: python3.11, Go, Java 17 and Maven (all on this kind of machine).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r requirements.txt
  echo "$wanted" > "$stamp"
fi

.venv/bin/python -c 'from pipeline.runner import prism_binary; print("prism:", prism_binary())'
.venv/bin/python -c 'from standins.kafka.broker import fetch_jars; fetch_jars(); print("kafka jars: ok")'
.venv/bin/python -c 'from pipeline.xlang.runtime import fetch_xlang_jars; print("xlang jars:", fetch_xlang_jars())'
