"""The shared test helpers on their own: the integration suite's isolation rests on them."""

from __future__ import annotations

from collections.abc import Sequence

from tests.support import metric_value, samples
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


def test_metric_value_sums_the_samples_with_those_labels_and_defaults_to_zero() -> None:
    page = (
        "# HELP x_total x\n"
        'x_total{code="2",status="500"} 3.0\n'
        'x_total{code="4",status="429"} 1.0\n'
        "y_seconds_count 7.0\n"
    )
    assert metric_value(page, "x_total", status="500", code="2") == 3
    assert metric_value(page, "x_total", code="9") == 0
    assert metric_value(page, "y_seconds_count") == 7
    assert metric_value(page, "x_total") == 4, "no labels: every sample of the name"
    assert metric_value(page, "x_total", status="429") == 1, "some labels: those that have them"
    assert samples(page, "x_total", code="4") == [({"code": "4", "status": "429"}, 1.0)]


def test_vhost_url_quotes_the_vhost() -> None:
    assert vhost_url("amqp://u:p@h:5672/", "a/b") == "amqp://u:p@h:5672/a%2Fb"
