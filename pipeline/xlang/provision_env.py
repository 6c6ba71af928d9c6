"""Prints, as shell exports, what Beam's Java SDK harness needs from the runner's provision service.

In:  argv: the worker id and the provision endpoint (host:port) the runner gave java_harness.sh.
Out: on stdout, ``export NAME='value'`` lines for PIPELINE_OPTIONS, RUNNER_CAPABILITIES,
     CONTROL_API_SERVICE_DESCRIPTOR and LOGGING_API_SERVICE_DESCRIPTOR (what the Java SDK
     container's Go boot binary sets before it starts FnHarness).
State: none.
"""

from __future__ import annotations

import shlex
import sys

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


if __name__ == '__main__':
    for name, value in harness_environment(sys.argv[1], sys.argv[2]).items():
        print(f'export {name}={shlex.quote(value)}')
