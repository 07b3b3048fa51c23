"""Lists of nodes in settings: a RabbitMQ cluster's nodes in one AMQP URL, Redis's sentinels.

Pure parsing, shared by the settings (which validate at start) and the adapters (which connect).
A ``ValueError`` raised while parsing a list or a URL never quotes what it read: settings put
its message in the error that names the variable, and a password typed into the wrong place
must not leak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

AMQP_PORTS: Final = {"amqp": 5672, "amqps": 5671}
SENTINEL_PORT: Final = 26379

_HOST: Final = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class Node:
    """One ``host:port``; IPv6 literals are kept without their brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_node(text: str, default_port: int | None = None) -> Node:
    """``host:port``, ``[v6]:port``, or a bare host when ``default_port`` is given."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or not host or (after and not after.startswith(":")):
            raise ValueError(f"{text!r} is not host:port")
        port_text = after[1:] if after else None
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    else:
        host, port_text = text, None
    if not host or not (text.startswith("[") or _HOST.match(host)):
        raise ValueError(f"{text!r} is not host:port")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{text!r} has no port")
        return Node(host, default_port)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} has no valid port (1-65535)")
    return Node(host, int(port_text))


def parse_nodes(text: str, default_port: int | None = None) -> tuple[Node, ...]:
    """A comma-separated list of nodes (at least one); blanks around commas are ignored.

    Errors say which entry is wrong, never what it holds: a mistyped list may hold a password.
    """
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError("names no host")
    nodes: list[Node] = []
    for number, part in enumerate(parts, 1):
        try:
            nodes.append(parse_node(part, default_port))
        except ValueError:
            port = "[:port]" if default_port is not None else ":port"
            raise ValueError(
                f"entry {number} of {len(parts)} is not host{port} with a port of 1-65535"
            ) from None
    if len(set(nodes)) != len(nodes):
        raise ValueError("lists a node twice")
    return tuple(nodes)


@dataclass(frozen=True)
class AmqpAddress:
    """An AMQP URL that may name several nodes of one cluster (``amqp://u:p@h1,h2:5673/vhost``).

    Every node shares the URL's credentials, vhost and query; ``url_for`` is the plain one-node
    URL that the client libraries understand.
    """

    scheme: str
    userinfo: str  # as written (percent-encoded), without the "@"; "" when absent
    nodes: tuple[Node, ...]
    rest: str  # path, query and fragment as written: "/vhost?heartbeat=30"

    @property
    def tls(self) -> bool:
        return self.scheme == "amqps"

    def url_for(self, node: Node) -> str:
        credentials = f"{self.userinfo}@" if self.userinfo else ""
        return f"{self.scheme}://{credentials}{node}{self.rest}"


def parse_amqp_url(url: str) -> AmqpAddress:
    """Split ``url`` into its nodes; ValueError (never quoting the credentials) when malformed."""
    scheme, separator, remainder = url.partition("://")
    if not separator or scheme.lower() not in AMQP_PORTS:
        raise ValueError("must start with amqp:// or amqps://")
    scheme = scheme.lower()
    end = len(remainder)
    for mark in "/?#":
        found = remainder.find(mark)
        if found != -1:
            end = min(end, found)
    authority, rest = remainder[:end], remainder[end:]
    userinfo, _, hosts = authority.rpartition("@")
    return AmqpAddress(scheme, userinfo, parse_nodes(hosts, AMQP_PORTS[scheme]), rest)
