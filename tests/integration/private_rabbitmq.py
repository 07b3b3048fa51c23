"""A RabbitMQ node of a test's own: a resource alarm raised on it blocks no one else.

A memory or disk alarm blocks every publisher of a node, so the alarm tests run on a node
started for them (own node name, ports, Erlang cookie and directories, as ``tests/ha`` starts
its cluster), never on the machine's broker that other tests share.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

BOOT_SECONDS = 120.0


class PrivateRabbitMQ:
    """One node, started in ``start`` and stopped (data deleted) in ``stop``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"hiker-alarm-{secrets.token_hex(3)}@localhost"
        # Not under pytest's temp dir: the rabbitmq user must be able to reach it.
        self.base = Path(tempfile.mkdtemp(prefix="hiker-rabbit-"))
        self.home = self.base / "home"
        self.env_file = self.base / "rabbitmq-env.conf"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _script(self, name: str) -> str:
        """The script itself: Debian's wrappers switch to the system node's home and cookie."""
        server = shutil.which("rabbitmq-server")
        if server is None:
            pytest.skip("needs rabbitmq-server to start a node of its own")
        script = Path(os.path.realpath(server)).parent / name
        return str(script)

    def _as_rabbitmq(self) -> list[str]:
        prefix = ["env", f"HOME={self.home}", f"RABBITMQ_CONF_ENV_FILE={self.env_file}"]
        if os.geteuid() == pwd.getpwnam("rabbitmq").pw_uid:
            return prefix
        return ["runuser", "-u", "rabbitmq", "--", *prefix]

    def start(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.base / sub).mkdir()
        (self.home / ".erlang.cookie").write_text(secrets.token_hex(16))
        self.env_file.write_text(
            "ERL_EPMD_ADDRESS=127.0.0.1\n"
            'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n'
        )
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nlog.console = false\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=True)
        (self.home / ".erlang.cookie").chmod(0o400)
        self.base.chmod(0o755)
        env = {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }
        argv = [
            *self._as_rabbitmq(),
            *(f"{key}={value}" for key, value in env.items()),
            self._script("rabbitmq-server"),
        ]
        with (self.base / "server.out").open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.ctl("await_startup", "--timeout", str(int(BOOT_SECONDS)), timeout=BOOT_SECONDS + 30)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl`` against this node."""
        argv = [*self._as_rabbitmq(), self._script("rabbitmqctl"), "-n", self.name, *args]
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
            if result.returncode == 0:
                return result.stdout
            if time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr[-2000:]}")
            time.sleep(0.5)

    def new_vhost(self) -> str:
        """The URL of a vhost of its own: tests sharing the node see none of each other's
        queues."""
        name = f"test-{secrets.token_hex(4)}"
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return f"{self.url}{name}"

    def raise_disk_alarm(self) -> None:
        """A disk alarm, for real: the node wants more free disk than any machine has."""
        self.ctl("set_disk_free_limit", "100000GB")

    def clear_disk_alarm(self) -> None:
        self.ctl("set_disk_free_limit", "1MB")

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                subprocess.run(
                    [*self._as_rabbitmq(), self._script("rabbitmqctl"), "-n", self.name, "stop"],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
                try:
                    self.process.wait(20)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        pytest.skip("needs the rabbitmq user to run a RabbitMQ node")
    node = PrivateRabbitMQ()
    try:
        node.start()
        yield node
    finally:
        node.stop()
