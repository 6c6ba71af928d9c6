"""Whether a local server could listen on a port now, for the stand-ins' launchers and tests."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def port_free(port: int) -> bool:
    """Whether a server could bind ``127.0.0.1:port`` now (with SO_REUSEADDR, as the JVMs do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True
