"""Free loopback ports, for what needs a concrete one (nginx, FFmpeg's UDP output)."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody listens on right now (TCP unless ``kind`` says otherwise)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    """A free loopback UDP port."""
    return free_port(socket.SOCK_DGRAM)
