"""The local cluster's ``config.yaml``: one JobManager and TaskManagers on 127.0.0.1.

Ports: the REST API (and web UI) on the REST port P, the JobManager's RPC on P + 1; the blob
server, the TaskManagers' RPC and data ports are chosen free by Flink. Checkpoints and
savepoints go to ``file://`` directories under ``<repo>/.local/flink``. Heartbeats are short,
so a killed TaskManager is noticed within about 10 s, and a failed job restarts 5 s later,
for as long as it fails at most 10 times in 10 minutes (a recovery test starts a new
TaskManager in between). Jobs run at parallelism 2 unless they ask otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SLOTS_PER_TASKMANAGER = 2
JOBMANAGER_MEMORY = "1g"
TASKMANAGER_MEMORY = "2g"  # 1g ran out of heap with a Beam job at parallelism 2
HEARTBEAT_INTERVAL_MS = 2000
HEARTBEAT_TIMEOUT_MS = 10000
# A service restarts for as long as it fails now and then: at most 10 failures in 10 minutes.
RESTART_FAILURES_PER_INTERVAL = 10
RESTART_INTERVAL = "10 min"
RESTART_DELAY = "5 s"


def flink_config(
    *, rest_port: int, rpc_port: int, checkpoint_dir: Path, savepoint_dir: Path, tmp_dir: Path
) -> dict[str, Any]:
    """The cluster's configuration as flat Flink keys.

    Args:
        rest_port: the REST API's (and web UI's) port.
        rpc_port: the JobManager's RPC port.
        checkpoint_dir: where jobs write checkpoints (a local directory).
        savepoint_dir: the default savepoint directory.
        tmp_dir: Flink's ``io.tmp.dirs`` (spill files, the blob cache, the web uploads).
    """
    return {
        # Where everything listens: loopback only.
        "jobmanager.rpc.address": HOST,
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.bind-host": HOST,
        "taskmanager.host": HOST,
        "taskmanager.bind-host": HOST,
        "rest.address": HOST,
        "rest.bind-address": HOST,
        "rest.port": rest_port,
        "rest.bind-port": str(rest_port),
        # Sizes.
        "jobmanager.memory.process.size": JOBMANAGER_MEMORY,
        "taskmanager.memory.process.size": TASKMANAGER_MEMORY,
        "taskmanager.numberOfTaskSlots": SLOTS_PER_TASKMANAGER,
        "parallelism.default": SLOTS_PER_TASKMANAGER,
        # State and checkpoints (the 1.20 key names and their deprecated predecessors).
        "state.backend.type": "hashmap",
        "state.backend": "hashmap",
        "execution.checkpointing.dir": checkpoint_dir.as_uri(),
        "state.checkpoints.dir": checkpoint_dir.as_uri(),
        "execution.checkpointing.savepoint-dir": savepoint_dir.as_uri(),
        "state.savepoints.dir": savepoint_dir.as_uri(),
        # Failures: notice a lost TaskManager quickly, restart the job a bounded number of times.
        "heartbeat.interval": HEARTBEAT_INTERVAL_MS,
        "heartbeat.timeout": HEARTBEAT_TIMEOUT_MS,
        "restart-strategy.type": "failure-rate",
        "restart-strategy.failure-rate.max-failures-per-interval": RESTART_FAILURES_PER_INTERVAL,
        "restart-strategy.failure-rate.failure-rate-interval": RESTART_INTERVAL,
        "restart-strategy.failure-rate.delay": RESTART_DELAY,
        "jobmanager.execution.failover-strategy": "region",
        "io.tmp.dirs": str(tmp_dir),
    }


def config_yaml(config: dict[str, Any]) -> str:
    """``config.yaml`` text for ``config``: one flat ``key: value`` line per key.

    Flink 1.20's YAML parser accepts flat keys; values are written as JSON scalars, which
    YAML reads back unchanged (strings quoted, numbers bare).
    """
    lines = [f"{key}: {json.dumps(value)}" for key, value in config.items()]
    return "# Written by standins/flink/cluster.py on every start.\n" + "\n".join(lines) + "\n"
