"""Real replicated and clustered Redis on loopback: a Sentinel set (one master, one
replica, three Sentinels) and a three-master Redis Cluster.

The servers are ``redis-server`` (:class:`headend.redisproc.RedisServer`, TCP ports
beside their Unix sockets), the Sentinels ``redis-sentinel`` from Debian's package,
each with its own rewritable config file. Sentinels decide a master is down after
``down_after_ms`` without a reply and need two of three to agree (quorum 2), as a
three-host deployment would.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from headend.procs import with_death_signal
from headend.redisproc import RedisServer
from headend.stack import port_free
from tests.support.net import free_port

SERVICE = "mymaster"


class SentinelSet:
    """Start with :meth:`start`; ``url`` is the ``redis+sentinel://`` URL clients use."""

    def __init__(self, base: Path, *, down_after_ms: int = 1000) -> None:
        self.base = base
        self.down_after_ms = down_after_ms
        self.servers: list[RedisServer] = []
        self.sentinel_ports: list[int] = []
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The Sentinels, the service and database 0."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelSet:
        """Master, replica (synced), three Sentinels that see both and each other."""
        # No diskless-sync delay (5 s by default): a replica, or a returning old master,
        # syncs at once.
        sync = ("--repl-diskless-sync-delay", "0")
        master = RedisServer(self.base / "r0", port=free_port(), appendfsync="always", args=sync)
        master.start()
        replica = RedisServer(
            self.base / "r1",
            port=free_port(),
            appendfsync="always",
            args=(*sync, "--replicaof", "127.0.0.1", str(master.port)),
        )
        replica.start()
        self.servers = [master, replica]
        binary = shutil.which("redis-sentinel")
        assert binary is not None, "apt-get install redis-sentinel"
        for n in range(3):
            port = free_port()
            folder = self.base / f"s{n}"
            folder.mkdir(parents=True)
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"logfile {folder / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self._sentinels.append(
                subprocess.Popen(
                    with_death_signal([binary, str(conf)]),
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            self.sentinel_ports.append(port)
        self._until(self._settled, "the replica in sync and three Sentinels that know it")
        return self

    def master_port(self) -> int:
        """The port the Sentinels name as master now."""
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=2) as sentinel:
            _, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def server(self, port: int) -> RedisServer:
        """The server listening on ``port``."""
        return next(s for s in self.servers if s.port == port)

    def kill_master(self) -> RedisServer:
        """SIGKILL the current master (as a power cut would); returns it, stopped."""
        master = self.server(self.master_port())
        master.kill()
        return master

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Until every Sentinel names a master other than ``old_port``; its port."""
        self._until(
            lambda: all(
                self._master_seen_by(p) not in (None, old_port) for p in self.sentinel_ports
            ),
            "a new master",
            timeout,
        )
        return self.master_port()

    def stop(self) -> None:
        """Stop the Sentinels, then the servers."""
        for proc in self._sentinels:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for server in self.servers:
            server.stop()

    def _master_seen_by(self, port: int) -> int | None:
        try:
            with redis.Redis(port=port, socket_timeout=1) as sentinel:
                reply = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        except redis.RedisError:
            return None
        return int(reply[1]) if reply else None

    def _settled(self) -> bool:
        with redis.Redis(port=self.servers[0].port, socket_timeout=1) as master:
            info = master.info("replication")
        if info.get("connected_slaves") != 1 or info["slave0"]["state"] != "online":
            return False
        for port in self.sentinel_ports:
            with redis.Redis(port=port, socket_timeout=1) as sentinel:
                state = sentinel.sentinel_master(SERVICE)
            if state["num-other-sentinels"] != 2 or state["num-slaves"] != 1:
                return False
        return True

    @staticmethod
    def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    while True:
        port = free_port()
        if port <= 55535 and port_free("127.0.0.1", port + 10000):
            return port


class ClusterSet:
    """A real Redis Cluster of three masters (``--cluster-enabled``, slots shared out by
    ``redis-cli --cluster create``) on loopback; ``url`` is its ``redis+cluster://`` URL."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[RedisServer] = []

    @property
    def url(self) -> str:
        """Every node (a client needs only one to learn the rest)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self) -> ClusterSet:
        """Three masters, all 16384 slots covered, every node saying ``cluster_state:ok``."""
        for n in range(3):
            server = RedisServer(
                self.base / f"c{n}",
                port=_cluster_port(),
                args=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
            )
            server.start()
            self.servers.append(server)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        SentinelSet._until(self._ok, "the cluster to cover every slot on every node")
        return self

    def _ok(self) -> bool:
        for server in self.servers:
            with redis.Redis(port=server.port, socket_timeout=1) as node:
                if node.cluster("info").get("cluster_state") != "ok":
                    return False
        return True

    def stop(self) -> None:
        """Stop every node."""
        for server in self.servers:
            server.stop()
