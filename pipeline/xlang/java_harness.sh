#!/usr/bin/env bash
# The PROCESS environment of the Java transforms (KafkaIO) under --kafka_io=xlang: starts Beam's
# Java SDK harness for a portable runner, as the Java SDK container's Go boot binary does, without
# Docker. The runner (Prism, or a Flink TaskManager) runs:
# java_harness.sh --id=<worker id> --provision_endpoint=<host:port> [...]. The environment's
# payload sets XLANG_LIB (the jars, .local/xlang/lib) and XLANG_PYTHON (the Beam Python that asks
# the provision service for the job's options, runner capabilities and endpoints).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
eval "$("$XLANG_PYTHON" "$here/provision_env.py" "$@")"
exec java ${XLANG_HARNESS_JAVA_OPTS:--Xmx768m} -cp "$XLANG_LIB/*" org.apache.beam.fn.harness.FnHarness
