"""Prints, as shell exports, what Beam's SDK harnesses need from the runner's provision service.

In:  argv: the arguments a portable runner gives the command of a PROCESS environment
     (``--id=<worker id> --provision_endpoint=<host:port>``, others ignored; Prism passes the
     id's quotes literally), forwarded by java_harness.sh and pipeline/flink/python_harness.sh.
Out: on stdout, ``export NAME='value'`` lines for PIPELINE_OPTIONS, RUNNER_CAPABILITIES,
     CONTROL_API_SERVICE_DESCRIPTOR, LOGGING_API_SERVICE_DESCRIPTOR and the worker id as
     HARNESS_ID (Java's FnHarness) and WORKER_ID (Python's sdk_worker_main): what the SDK
     containers' Go boot binaries set before they start the harness.
State: none.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

import grpc
from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
from google.protobuf import json_format

TIMEOUT_S = 30


def harness_environment(worker_id: str, endpoint: str) -> dict[str, str]:
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        info = stub.GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(),
            metadata=[('worker_id', worker_id)],
            timeout=TIMEOUT_S,
        ).info
    return {
        'PIPELINE_OPTIONS': json_format.MessageToJson(info.pipeline_options, indent=None),
        'RUNNER_CAPABILITIES': ' '.join(info.runner_capabilities),
        'CONTROL_API_SERVICE_DESCRIPTOR': f'url: "{info.control_endpoint.url or endpoint}"',
        'LOGGING_API_SERVICE_DESCRIPTOR': f'url: "{info.logging_endpoint.url or endpoint}"',
    }


def runner_arguments(argv: Sequence[str]) -> tuple[str, str]:
    """The worker id and the provision endpoint among a runner's arguments."""
    parser = argparse.ArgumentParser(prog='provision_env.py')
    parser.add_argument('--id', required=True)
    parser.add_argument('--provision_endpoint', required=True)
    known, _ = parser.parse_known_args(argv)
    return known.id.strip("'"), known.provision_endpoint


if __name__ == '__main__':
    worker_id, endpoint = runner_arguments(sys.argv[1:])
    exports = {
        **harness_environment(worker_id, endpoint),
        'HARNESS_ID': worker_id,
        'WORKER_ID': worker_id,
    }
    for name, value in exports.items():
        print(f'export {name}={shlex.quote(value)}')
