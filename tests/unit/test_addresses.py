"""Node lists in settings: the nodes of one AMQP URL, the sentinels of a Redis."""

from __future__ import annotations

import pytest

from hiker.core.addresses import Node, parse_amqp_url, parse_node, parse_nodes


def test_a_url_lists_its_nodes_and_each_gets_a_plain_url() -> None:
    address = parse_amqp_url("amqp://hiker:s%40cret@h1:5672,h2,[::1]:5673/hiker?heartbeat=30")
    assert address.nodes == (Node("h1", 5672), Node("h2", 5672), Node("::1", 5673))
    assert (
        address.url_for(address.nodes[2]) == "amqp://hiker:s%40cret@[::1]:5673/hiker?heartbeat=30"
    )
    assert not address.tls


def test_tls_urls_default_to_the_tls_port() -> None:
    address = parse_amqp_url("amqps://u:p@rabbit.example/vh")
    assert address.nodes == (Node("rabbit.example", 5671),)
    assert address.tls
    assert address.url_for(address.nodes[0]) == "amqps://u:p@rabbit.example:5671/vh"


def test_a_url_without_credentials_or_vhost() -> None:
    address = parse_amqp_url("amqp://h1,h2")
    assert address.url_for(address.nodes[1]) == "amqp://h2:5672"


@pytest.mark.parametrize(
    "url",
    [
        "http://u:hunter2@h1/",
        "amqp://u:hunter2@/vhost",
        "amqp://u:hunter2@h1:notaport/v",
        "amqp://u:hunter2@h1:70000/v",
        "amqp://u:hunter2@h1,,h1/v",
        "amqp://u:hun/ter2@h1/v",  # a password with an unescaped slash: the host part is garbage
    ],
)
def test_malformed_urls_are_refused_without_quoting_the_credentials(url: str) -> None:
    with pytest.raises(ValueError, match=r"\w") as caught:
        parse_amqp_url(url)
    assert "hunter2" not in str(caught.value)
    assert "hun" not in str(caught.value)


def test_a_node_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_amqp_url("amqp://h1:5672,h1/v")


def test_sentinel_lists_take_a_default_port() -> None:
    assert parse_nodes(" s1:26380, s2 ,[fe80::1]", 26379) == (
        Node("s1", 26380),
        Node("s2", 26379),
        Node("fe80::1", 26379),
    )
    assert str(Node("fe80::1", 26379)) == "[fe80::1]:26379"


@pytest.mark.parametrize("text", ["", ",", "h:0", "h:x", "[::1", "h h:1", ":1"])
def test_malformed_node_lists(text: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse_nodes(text, 26379)


def test_a_port_is_required_without_a_default() -> None:
    with pytest.raises(ValueError, match="no port"):
        parse_node("h1")
