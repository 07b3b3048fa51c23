"""The vhost pool on its own: the integration suite's isolation rests on it."""

from __future__ import annotations

from collections.abc import Sequence

from tests.vhosts import Rabbitmqctl, VhostPool, management_url_for, vhost_url


class RecordingAdmin:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []
        self.alive: set[str] = set()

    def apply(self, create: Sequence[str], delete: Sequence[str]) -> None:
        self.calls.append((list(create), list(delete)))
        self.alive -= set(delete)
        self.alive |= set(create)


def test_the_pool_makes_vhosts_in_batches_and_never_hands_one_out_twice() -> None:
    admin = RecordingAdmin()
    pool = VhostPool(admin, batch=4)
    taken = []
    for _ in range(10):
        vhost = pool.take()
        assert vhost in admin.alive
        taken.append(vhost)
        pool.give_back(vhost)
    assert len(set(taken)) == 10
    assert len(admin.calls) == 3  # 4 + 4 + 2 of a third batch
    # Each refill removes what was given back since the last one.
    assert admin.calls[1][1] == taken[:4]
    assert admin.calls[2][1] == taken[4:8]
    pool.close()
    assert admin.alive == set(), "closing deletes the used and the unused alike"


def test_rabbitmqctl_deletes_then_creates_and_grants_the_user_everything() -> None:
    calls: list[tuple[str, ...]] = []

    def run(*args: str) -> str:
        calls.append(args)
        return ""

    Rabbitmqctl(run, "guest").apply(create=["hiker-test-a"], delete=["old"])
    assert calls == [
        ("delete_vhost", "old"),
        ("add_vhost", "hiker-test-a"),
        ("set_permissions", "-p", "hiker-test-a", "guest", ".*", ".*", ".*"),
    ]


def test_the_management_url_defaults_to_the_brokers_host_and_credentials() -> None:
    url = management_url_for("amqp://u%40x:p%2Fw@rabbit.example:5672/vh")
    assert url == "http://u%40x:p%2Fw@rabbit.example:15672/"


def test_vhost_url_quotes_the_vhost() -> None:
    assert vhost_url("amqp://u:p@h:5672/", "a/b") == "amqp://u:p@h:5672/a%2Fb"
