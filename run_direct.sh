#!/usr/bin/env bash
# The demo: the whole service on this machine, the pipeline run with
# `python -m pipeline --runner=DirectRunner` (Prism). Starts a local Kafka broker, the central and
# the scorer stand-ins, creates the topics, feeds the pipeline store traffic and shows a live line
# of what flows; Ctrl-C stops everything it started (scripts/demo.sh). Every setting can be
# overridden from the environment (README.md, "Configuration"); DEMO_RATE sets the store traffic
# in focus events per second (default 20).
exec "$(dirname "$0")/scripts/demo.sh" DirectRunner "$@"
