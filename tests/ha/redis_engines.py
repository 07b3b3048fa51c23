"""A Redis Cluster, and a Redis primary with a replica and three sentinels, started on free
ports of this machine with data, logs and config in a directory of their own; stopped when the
``with`` block ends, also when a test fails."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.daemons import Daemons, require
from tests.support import free_port, wait_until_sync

SENTINEL_MASTER = "hikerha"


def redis_command(port: int, *args: str, password: str | None = None) -> str:
    """One command through redis-cli (the tests' own view, apart from Hiker's client)."""
    argv = [require("redis-cli"), "-h", "127.0.0.1", "-p", str(port)]
    env = dict(os.environ)
    if password is not None:
        env["REDISCLI_AUTH"] = password  # not on the command line, where ps would show it
    result = subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=30, check=True, env=env
    )
    return result.stdout


@dataclass
class RedisClusterEngine:
    ports: list[int]

    @property
    def url(self) -> str:
        """Any one node: the client finds the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node_of(self, key: str) -> int:
        """The port of the node serving ``key``'s slot."""
        slot = int(redis_command(self.ports[0], "CLUSTER", "KEYSLOT", key).strip())
        for node in redis_command(self.ports[0], "CLUSTER", "NODES").splitlines():
            parts = node.split()
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            for span in parts[8:]:
                low, _, high = span.partition("-")
                if int(low) <= slot <= int(high or low):
                    return port
        raise AssertionError(f"no node serves slot {slot}")

    def keys(self) -> dict[int, list[str]]:
        """Every key of every node (the test's cluster is small)."""
        return {
            port: [k for k in redis_command(port, "--scan").splitlines() if k]
            for port in self.ports
        }


@contextmanager
def redis_cluster(base: Path) -> Iterator[RedisClusterEngine]:
    """Three masters, no replicas, every slot covered."""
    server = require("redis-server")
    require("redis-cli")
    daemons = Daemons()
    ports: list[int] = []
    try:
        for number in range(3):
            port, bus = free_port(), free_port()
            directory = base / f"node-{number}"
            directory.mkdir()
            daemons.start(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                 "--cluster-enabled", "yes", "--cluster-port", str(bus),
                 "--cluster-config-file", str(directory / "nodes.conf"),
                 "--cluster-node-timeout", "3000", "--save", "", "--appendonly", "no"],
                log=directory / "redis.log",
            )  # fmt: skip
            ports.append(port)
            wait_until_sync(lambda p=port: "PONG" in redis_command(p, "PING"), 30, "a node")
        subprocess.run(
            [require("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in ports), "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        for port in ports:
            wait_until_sync(
                lambda p=port: "cluster_state:ok" in redis_command(p, "CLUSTER", "INFO"),
                60,
                "the cluster to cover every slot",
            )
        yield RedisClusterEngine(ports)
    finally:
        daemons.stop_all()


@dataclass
class SentinelEngine:
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]
    data_password: str
    sentinel_password: str

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def sentinel(self, *args: str) -> str:
        return redis_command(self.sentinel_ports[0], *args, password=self.sentinel_password)

    def master_port(self) -> int:
        reply = self.sentinel("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER)
        return int(reply.split()[1])

    def info(self, port: int) -> str:
        return redis_command(port, "INFO", "replication", password=self.data_password)

    def sentinels_agree(self) -> bool:
        """Every sentinel sees the two others and the replica."""
        for port in self.sentinel_ports:
            fields = redis_command(
                port, "SENTINEL", "MASTER", SENTINEL_MASTER, password=self.sentinel_password
            ).split()
            state = dict(zip(fields[::2], fields[1::2], strict=False))
            if state.get("num-other-sentinels") != "2" or state.get("num-slaves") != "1":
                return False
        return True


def _sentinel_config(port: int, directory: Path, primary: int, engine: SentinelEngine) -> str:
    return (
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        "sentinel resolve-hostnames no\n"
        f"requirepass {engine.sentinel_password}\n"
        f"sentinel sentinel-pass {engine.sentinel_password}\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n"
        f"sentinel auth-pass {SENTINEL_MASTER} {engine.data_password}\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} 2000\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
    )


@contextmanager
def redis_sentinel(base: Path) -> Iterator[SentinelEngine]:
    """A password-protected primary and replica, watched by three password-protected sentinels
    that fail over after 2 s."""
    server = require("redis-server")
    require("redis-cli")
    daemons = Daemons()
    primary, replica = free_port(), free_port()
    engine = SentinelEngine(
        primary, replica, [free_port() for _ in range(3)], secrets.token_hex(12),
        secrets.token_hex(12),
    )  # fmt: skip
    try:
        for name, port, extra in (
            ("primary", primary, []),
            ("replica", replica, ["--replicaof", "127.0.0.1", str(primary)]),
        ):
            directory = base / name
            directory.mkdir()
            config = directory / "redis.conf"
            # Passwords in a file, not argv: ps would show them to anyone on the machine.
            password = engine.data_password
            config.write_text(f"requirepass {password}\nmasterauth {password}\n")
            daemons.start(
                [server, str(config), "--port", str(port), "--bind", "127.0.0.1",
                 "--dir", str(directory), "--save", "", "--appendonly", "no",
                 "--repl-diskless-sync-delay", "0", *extra],
                log=directory / "redis.log",
            )  # fmt: skip
        wait_until_sync(
            lambda: "master_link_status:up" in engine.info(replica), 30, "the replica to sync"
        )
        for number, port in enumerate(engine.sentinel_ports):
            directory = base / f"sentinel-{number}"
            directory.mkdir()
            config = directory / "sentinel.conf"  # Sentinel rewrites it: a file of its own
            config.write_text(_sentinel_config(port, directory, primary, engine))
            daemons.start([server, str(config), "--sentinel"], log=directory / "sentinel.log")
        wait_until_sync(
            engine.sentinels_agree, 60, "the sentinels to find each other and the replica"
        )
        yield engine
    finally:
        daemons.stop_all()
