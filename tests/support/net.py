"""Free loopback ports, for what needs a concrete one (nginx, FFmpeg's UDP output)."""

from __future__ import annotations

import random
import socket

# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default), which
# port-0 binds and outgoing connections draw from: a port chosen here stays free until the
# test binds it (another free_port() picking the same one by chance aside). One chosen by
# binding port 0 could be taken by any client socket in between.
_PORTS = (20000, 32767)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody uses right now (TCP unless ``kind`` says otherwise)."""
    for _ in range(1000):
        port = random.randint(*_PORTS)
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {_PORTS}")


def free_udp_port() -> int:
    """A free loopback UDP port."""
    return free_port(socket.SOCK_DGRAM)
