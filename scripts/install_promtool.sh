#!/usr/bin/env bash
# Installs promtool, Prometheus' own checker, which the tests run on the pipeline's /metrics
# (tests/unit/test_prometheus_names.py): Debian's prometheus package, pinned. Safe to re-run.
set -euo pipefail
PACKAGE="prometheus=2.42.0+ds-5+deb12u1"

if promtool --version 2>&1 | grep -q 'version 2\.42\.0'; then
  exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "promtool 2.42.0 is missing and cannot be installed here (needs apt-get as root):" \
    "install Prometheus' promtool and put it on PATH" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null \
  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null; }
echo "promtool: $(command -v promtool)"
