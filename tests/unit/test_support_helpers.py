"""The shared test helpers on their own: the integration suite's isolation rests on them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.support import Rabbitmqctl, VhostPool, metric_value, vhost_url


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


def test_rabbitmqctl_does_a_whole_batch_in_one_eval_and_insists_on_ok() -> None:
    calls: list[tuple[str, ...]] = []

    def run(*args: str) -> str:
        calls.append(args)
        return "ok\n"

    Rabbitmqctl(run, "guest").apply(create=["hiker-test-a", "hiker-test-b"], delete=["old"])
    ((command, expression),) = calls
    assert command == "eval"
    assert '<<"hiker-test-a">>,<<"hiker-test-b">>' in expression
    assert 'rabbit_vhost:delete(V, A) || V <- [<<"old">>]' in expression
    assert "ok = rabbit_vhost:add(V, A)" in expression
    assert 'set_permissions(<<"guest">>, V' in expression

    with pytest.raises(RuntimeError, match="answered"):
        Rabbitmqctl(lambda *_: "{error,nope}", "guest").apply(create=["x"], delete=[])


def test_a_name_erlang_would_need_escaped_is_refused() -> None:
    with pytest.raises(AssertionError):
        Rabbitmqctl(lambda *_: "ok", "guest").apply(create=['a">>,evil'], delete=[])


def test_metric_value_matches_labels_in_any_order_and_defaults_to_zero() -> None:
    page = (
        "# HELP x_total x\n"
        'x_total{code="2",status="500"} 3.0\n'
        'x_total{code="4",status="429"} 1.0\n'
        "y_seconds_count 7.0\n"
    )
    assert metric_value(page, "x_total", status="500", code="2") == 3
    assert metric_value(page, "x_total", code="9") == 0
    assert metric_value(page, "y_seconds_count") == 7


def test_vhost_url_quotes_the_vhost() -> None:
    assert vhost_url("amqp://u:p@h:5672/", "a/b") == "amqp://u:p@h:5672/a%2Fb"
