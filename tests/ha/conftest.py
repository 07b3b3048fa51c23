"""Engines the HA tests start themselves: a Redis Cluster, a Redis primary with a replica and
sentinels, a RabbitMQ cluster. All on this machine, on free ports, with data, logs and config
in temporary directories of their own; stopped and deleted afterwards, also when a test fails.

Nothing here touches the machine's own RabbitMQ or Redis: the RabbitMQ nodes have their own
node names, ports, config file (the system one pins the listener) and Erlang cookie, so they
could not even talk to the system node. A missing ``redis-server`` or ``rabbitmq-server``
skips these tests with the reason, and fails them under ``CI`` (as ``tests/conftest.py`` does).

They start in ``make test-ha``, not in ``make test``: each engine takes seconds of CPU to boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import _fail_or_skip
from tests.integration.conftest import (  # noqa: F401 - fixtures the HA tests use
    APP_SECRET,
    Pipeline,
    free_port,
    make_pipeline,
)

READY_SECONDS = 120.0


def require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        _fail_or_skip(f"needs {binary} to start its own engines")
    assert found is not None
    return found


async def wait_until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await condition():
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {within:g}s waiting for {what}")


def wait_until_sync(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {within:g}s waiting for {what}")


class Daemons:
    """Processes started for a test, each in a session of its own, so that stopping one ends
    everything it started and nothing else."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> Any:
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        # Whatever the group still holds (an Erlang helper, a child that outlived it).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if process in self._running:
            self._running.remove(process)

    def stop_all(self) -> None:
        for process in list(self._running)[::-1]:
            self.stop(process)


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


# --- Redis Cluster -------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterEngine]:
    server = require("redis-server")
    require("redis-cli")
    daemons = Daemons()
    base = tmp_path_factory.mktemp("redis-cluster")
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
        shutil.rmtree(base, ignore_errors=True)


# --- Redis Sentinel ------------------------------------------------------------------------

SENTINEL_MASTER = "hikerha"


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


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelEngine]:
    server = require("redis-server")
    require("redis-cli")
    daemons = Daemons()
    base = tmp_path_factory.mktemp("redis-sentinel")
    data_password = secrets.token_hex(12)
    sentinel_password = secrets.token_hex(12)
    primary, replica = free_port(), free_port()
    try:
        for name, port, extra in (
            ("primary", primary, []),
            ("replica", replica, ["--replicaof", "127.0.0.1", str(primary)]),
        ):
            directory = base / name
            directory.mkdir()
            config = directory / "redis.conf"
            # Passwords in a file, not argv: ps would show them to anyone on the machine.
            config.write_text(f"requirepass {data_password}\nmasterauth {data_password}\n")
            daemons.start(
                [server, str(config), "--port", str(port), "--bind", "127.0.0.1",
                 "--dir", str(directory), "--save", "", "--appendonly", "no",
                 "--repl-diskless-sync-delay", "0", *extra],
                log=directory / "redis.log",
            )  # fmt: skip
        sentinel_ports = [free_port() for _ in range(3)]
        engine = SentinelEngine(primary, replica, sentinel_ports, data_password, sentinel_password)
        wait_until_sync(
            lambda: "master_link_status:up" in engine.info(replica), 30, "the replica to sync"
        )
        for number, port in enumerate(sentinel_ports):
            directory = base / f"sentinel-{number}"
            directory.mkdir()
            config = directory / "sentinel.conf"  # Sentinel rewrites it: a file of its own
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                "sentinel resolve-hostnames no\n"
                f"requirepass {sentinel_password}\n"
                f"sentinel sentinel-pass {sentinel_password}\n"
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n"
                f"sentinel auth-pass {SENTINEL_MASTER} {data_password}\n"
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} 2000\n"
                f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
            )
            daemons.start([server, str(config), "--sentinel"], log=directory / "sentinel.log")

        def sentinels_agree() -> bool:
            for port in sentinel_ports:
                fields = redis_command(
                    port, "SENTINEL", "MASTER", SENTINEL_MASTER, password=sentinel_password
                ).split()
                state = dict(zip(fields[::2], fields[1::2], strict=False))
                if state.get("num-other-sentinels") != "2" or state.get("num-slaves") != "1":
                    return False
            return True

        wait_until_sync(sentinels_agree, 60, "the sentinels to find each other and the replica")
        yield engine
    finally:
        daemons.stop_all()
        shutil.rmtree(base, ignore_errors=True)


# --- RabbitMQ cluster ----------------------------------------------------------------------


def _rabbitmq_script(name: str) -> str:
    """The script itself, not a distribution's wrapper: Debian's ``/usr/sbin`` ones switch to
    ``/var/lib/rabbitmq`` and its Erlang cookie, the system node's."""
    wrapper = Path(os.path.realpath(require("rabbitmq-server")))
    script = wrapper.parent / name
    if not script.exists():
        _fail_or_skip(f"no {name} beside {wrapper}")
    return str(script)


@dataclass
class RabbitNode:
    name: str
    port: int
    dist_port: int
    base: Path
    process: Any = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class RabbitCluster:
    nodes: list[RabbitNode]
    home: Path
    env_file: Path
    daemons: Daemons
    running: set[str] = field(default_factory=set)

    def url(self, nodes: list[RabbitNode] | None = None) -> str:
        listed = ",".join(node.url for node in nodes or self.nodes)
        return f"amqp://guest:guest@{listed}/"

    def node(self, name: str) -> RabbitNode:
        return next(node for node in self.nodes if node.name == name)

    def ctl(self, node: str, *args: str, timeout: float = 120) -> str:
        """rabbitmqctl against ``node``, as the rabbitmq user, with this cluster's cookie."""
        result = subprocess.run(
            [*_as_rabbitmq(self.home, self.env_file), _rabbitmq_script("rabbitmqctl"),
             "-q", "-n", node, *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node} {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout

    def start(self, node: RabbitNode) -> None:
        env = {
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.base / "enabled_plugins"),
        }
        argv = [
            *_as_rabbitmq(self.home, self.env_file),
            *(f"{key}={value}" for key, value in env.items()),
            _rabbitmq_script("rabbitmq-server"),
        ]
        node.process = self.daemons.start(argv, log=node.base / "server.out")
        self.await_startup(node)
        self.running.add(node.name)

    def await_startup(self, node: RabbitNode) -> None:
        def started() -> bool:
            if node.process is not None and node.process.poll() is not None:
                raise AssertionError(f"{node.name} exited; see {node.base / 'log'}")
            self.ctl(node.name, "await_startup", "--timeout", "30", timeout=60)
            return True

        wait_until_sync(started, READY_SECONDS, f"{node.name} to boot")

    def stop(self, node: RabbitNode) -> None:
        """Stop the whole node (the Erlang VM), as a lost host would leave the cluster."""
        with contextlib.suppress(Exception):
            self.ctl(node.name, "stop", timeout=60)
        if node.process is not None:
            self.daemons.stop(node.process)
            node.process = None
        self.running.discard(node.name)

    def queues(self, vhost: str = "/") -> list[dict[str, Any]]:
        """Each queue's name, leader and members, as one of the running nodes sees them."""
        some = next(iter(self.running))
        text = self.ctl(
            some, "list_queues", "-p", vhost, "name", "leader", "members", "--formatter", "json"
        )
        rows: list[dict[str, Any]] = json.loads(text)
        return rows

    def connections_on(self, node: RabbitNode) -> list[str]:
        """The client-provided properties of each connection that ``node`` holds."""
        some = next(iter(self.running))
        text = self.ctl(
            some, "list_connections", "port", "client_properties", "--formatter", "json"
        )
        # The port a connection reached is the listener of the node that holds it.
        return [
            json.dumps(row["client_properties"])
            for row in json.loads(text)
            if row["port"] == node.port
        ]


def _as_rabbitmq(home: Path, env_file: Path) -> list[str]:
    """The command prefix that runs a RabbitMQ script as the rabbitmq user with ``home``."""
    prefix = ["env", f"HOME={home}", f"RABBITMQ_CONF_ENV_FILE={env_file}"]
    if os.geteuid() == pwd.getpwnam("rabbitmq").pw_uid:
        return prefix
    return [require("runuser"), "-u", "rabbitmq", "--", *prefix]


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    require("rabbitmq-server")
    try:
        account = pwd.getpwnam("rabbitmq")
    except KeyError:
        _fail_or_skip("needs the rabbitmq user to run RabbitMQ nodes")
        raise
    if os.geteuid() not in (0, account.pw_uid):
        _fail_or_skip("needs root (runuser) or the rabbitmq user to run RabbitMQ nodes")
    # Not under pytest's own temp dir: the rabbitmq user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="hiker-ha-rabbit-"))
    daemons = Daemons()
    tag = secrets.token_hex(3)
    home = base / "home"
    home.mkdir()
    # A cookie of this cluster's own: its nodes cannot reach the machine's RabbitMQ.
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    env_file = base / "rabbitmq-env.conf"
    # Replaces the machine's rabbitmq-env.conf, which names the system node.
    env_file.write_text(
        "ERL_EPMD_ADDRESS=127.0.0.1\n"
        'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n'
    )
    nodes = []
    for number in (1, 2, 3):
        node = RabbitNode(f"hiker-ha-{tag}-{number}@localhost", free_port(), free_port(),
                          base / f"node-{number}")  # fmt: skip
        for sub in ("mnesia", "log"):
            (node.base / sub).mkdir(parents=True)
        (node.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.port}\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        (node.base / "enabled_plugins").write_text("[].\n")
        nodes.append(node)
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=True)
    cookie.chmod(0o400)
    base.chmod(0o755)
    cluster = RabbitCluster(nodes, home, env_file, daemons)
    try:
        first = nodes[0]
        cluster.start(first)  # one after another: each boot takes a core for seconds
        for node in nodes[1:]:
            cluster.start(node)
            cluster.ctl(node.name, "stop_app")
            cluster.ctl(node.name, "join_cluster", first.name)
            cluster.ctl(node.name, "start_app")
            cluster.await_startup(node)
        status = json.loads(cluster.ctl(first.name, "cluster_status", "--formatter", "json"))
        assert sorted(status["running_nodes"]) == sorted(n.name for n in nodes), status
        yield cluster
    finally:
        for node in nodes[::-1]:
            if node.process is not None:
                cluster.stop(node)
        daemons.stop_all()
        shutil.rmtree(base, ignore_errors=True)


# --- pipeline helpers ----------------------------------------------------------------------


async def ready(pipeline: Pipeline, service: str) -> bool:
    async with pipeline.session.get(pipeline.url(service, "/readyz")) as response:
        return response.status == 200


async def post_until_accepted(
    pipeline: Pipeline, body: bytes, within: float = 120.0
) -> tuple[int, int]:
    """Post ``body`` as Meta does: again, the same bytes, until it is answered 200.

    Returns (attempts, answers other than 200)."""
    deadline = time.monotonic() + within
    attempts = refused = 0
    while True:
        attempts += 1
        try:
            if await pipeline.post(body) == 200:
                return attempts, refused
        except aiohttp.ClientError:
            pass
        refused += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"not accepted after {attempts} attempts")
        await asyncio.sleep(0.5)
