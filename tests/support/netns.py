"""Network namespaces for multicast tests, and a receiver that records datagrams there.

Multicast test traffic never leaves a namespace the test made: ``netns()`` creates
``hx-<random>`` with only ``lo`` up (multicast on, 239.0.0.0/8 routed to it) and deletes
it afterwards; programs run in it through ``ip netns exec``. ``python -m
tests.support.netns GROUP PORT SECONDS OUT`` (run in the namespace) joins the group and
writes each datagram with its arrival time (the kernel's, wall clock) to OUT.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

_RECORD = struct.Struct("!dH")  # arrival time, length
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def netns_available() -> bool:
    """True when this process may create network namespaces (root, ``ip`` present)."""
    if shutil.which("ip") is None:
        return False
    probe = f"hx-{secrets.token_hex(4)}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        return False
    _ip("netns", "del", probe)
    return True


needs_netns = pytest.mark.skipif(not netns_available(), reason="needs ip netns (root)")


@contextmanager
def netns() -> Iterator[str]:
    """A fresh namespace with multicast on loopback; deleted on exit."""
    name = f"hx-{secrets.token_hex(4)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "set", "lo", "multicast", "on")
        _ip("-n", name, "route", "add", "239.0.0.0/8", "dev", "lo")
        yield name
    finally:
        _ip("netns", "del", name)


def in_netns(name: str, args: Sequence[str]) -> list[str]:
    """``args`` run inside the namespace."""
    return ["ip", "netns", "exec", name, *args]


def receiver(
    name: str, group: str, port: int, seconds: float, out: Path
) -> subprocess.Popen[bytes]:
    """Start the recording receiver in the namespace (it exits after ``seconds``)."""
    return subprocess.Popen(
        in_netns(
            name,
            [sys.executable, "-m", "tests.support.netns", group, str(port), str(seconds), str(out)],
        ),
        cwd=Path(__file__).resolve().parents[2],
    )


def read_capture(path: Path) -> list[tuple[float, bytes]]:
    """The datagrams a receiver recorded, with their arrival times."""
    data = path.read_bytes()
    records: list[tuple[float, bytes]] = []
    offset = 0
    while offset < len(data):
        at, length = _RECORD.unpack_from(data, offset)
        offset += _RECORD.size
        records.append((at, data[offset : offset + length]))
        offset += length
    return records


def _receive(group: str, port: int, seconds: float, out: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((group, port))
    mreq = socket.inet_aton(group) + socket.inet_aton("0.0.0.0")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    # The kernel's arrival time of each datagram: this process's own scheduling delays
    # (it shares the host's cores with the sender) do not count.
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.settimeout(0.5)
    end = time.perf_counter() + seconds
    chunks: list[bytes] = []
    while time.perf_counter() < end:
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(65536, 64)
        except TimeoutError:
            continue
        at = time.time()
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", value[:16])
                at = sec + nsec / 1e9
        chunks.append(_RECORD.pack(at, len(data)) + data)
    out.write_bytes(b"".join(chunks))


if __name__ == "__main__":
    _receive(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))
