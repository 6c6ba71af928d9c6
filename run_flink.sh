#!/usr/bin/env bash
# The demo on Flink: as ./run_direct.sh, but on a local Flink 1.20.4 session cluster
# (python -m standins.flink: a JobManager and a TaskManager with 2 slots, web UI on
# http://127.0.0.1:${FLINK_REST_PORT:-8081}); the pipeline is submitted with
# `python -m pipeline --runner=FlinkRunner` at parallelism 2, its Python workers started by the
# TaskManager from this project's environment. Ctrl-C cancels the job and stops everything it
# started (scripts/demo.sh). Needs Beam's Flink job server: FLINK_JOB_SERVER_JAR names the jar;
# unset, Beam downloads it from Maven Central (README.md, "Runners").
exec "$(dirname "$0")/scripts/demo.sh" FlinkRunner "$@"
