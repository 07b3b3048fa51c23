"""A three-node RabbitMQ cluster on free ports of this machine, for a test that loses a node.

Nothing here touches the machine's own RabbitMQ: the nodes have their own node names, ports,
config file (the system one pins the listener) and Erlang cookie, so they could not even talk
to the system node. They run as the rabbitmq user (through runuser when root)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.daemons import Daemons, require
from tests.support import fail_or_skip, free_port, wait_until_sync

READY_SECONDS = 120.0


def _rabbitmq_script(name: str) -> str:
    """The script itself, not a distribution's wrapper: Debian's ``/usr/sbin`` ones switch to
    ``/var/lib/rabbitmq`` and its Erlang cookie, the system node's."""
    wrapper = Path(os.path.realpath(require("rabbitmq-server")))
    script = wrapper.parent / name
    if not script.exists():
        fail_or_skip(f"no {name} beside {wrapper}")
    return str(script)


def _as_rabbitmq(home: Path, env_file: Path) -> list[str]:
    """The command prefix that runs a RabbitMQ script as the rabbitmq user with ``home``."""
    prefix = ["env", f"HOME={home}", f"RABBITMQ_CONF_ENV_FILE={env_file}"]
    if os.geteuid() == pwd.getpwnam("rabbitmq").pw_uid:
        return prefix
    return [require("runuser"), "-u", "rabbitmq", "--", *prefix]


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

    def environment(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def write_config(self) -> None:
        for sub in ("mnesia", "log"):
            (self.base / sub).mkdir(parents=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")


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
        argv = [
            *_as_rabbitmq(self.home, self.env_file),
            *(f"{key}={value}" for key, value in node.environment().items()),
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

        # A node that exited fails at once; one still booting is asked again.
        tolerate = (RuntimeError, subprocess.TimeoutExpired)
        wait_until_sync(started, READY_SECONDS, f"{node.name} to boot", tolerate=tolerate)

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


def _cluster_home(base: Path) -> tuple[Path, Path]:
    """A home with an Erlang cookie of this cluster's own (its nodes cannot reach the machine's
    RabbitMQ), and an env file replacing the machine's rabbitmq-env.conf, which names the
    system node."""
    home = base / "home"
    home.mkdir()
    (home / ".erlang.cookie").write_text(secrets.token_hex(16))
    env_file = base / "rabbitmq-env.conf"
    env_file.write_text(
        "ERL_EPMD_ADDRESS=127.0.0.1\n"
        'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n'
    )
    return home, env_file


@contextmanager
def rabbit_cluster() -> Iterator[RabbitCluster]:
    require("rabbitmq-server")
    try:
        account = pwd.getpwnam("rabbitmq")
    except KeyError:
        fail_or_skip("needs the rabbitmq user to run RabbitMQ nodes")
    if os.geteuid() not in (0, account.pw_uid):
        fail_or_skip("needs root (runuser) or the rabbitmq user to run RabbitMQ nodes")
    # Not under pytest's own temp dir: the rabbitmq user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="hiker-ha-rabbit-"))
    tag = secrets.token_hex(3)
    home, env_file = _cluster_home(base)
    nodes = [
        RabbitNode(f"hiker-ha-{tag}-{n}@localhost", free_port(), free_port(), base / f"node-{n}")
        for n in (1, 2, 3)
    ]
    for node in nodes:
        node.write_config()
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=True)
    (home / ".erlang.cookie").chmod(0o400)
    base.chmod(0o755)
    cluster = RabbitCluster(nodes, home, env_file, Daemons())
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
        cluster.daemons.stop_all()
        shutil.rmtree(base, ignore_errors=True)
