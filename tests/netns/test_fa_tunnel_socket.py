"""The foreign agent's tunnel sockets queue what arrives while its loop flushes an expected visitor's
buffer (RFC 4881; issue 14: the default ~200 KB overflowed after ~20 ms of two 5,000 packet/s flows)."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

import pytest

from agents.datapath.foreign_agent import RECEIVE_BUFFER, _tunnel_socket
from tests.netns.conftest import NamespaceFactory

pytestmark = pytest.mark.root


def test_tunnel_socket_receive_buffer_is_enlarged_past_the_default(namespaces: NamespaceFactory) -> None:
    namespace = namespaces()
    namespace.run("ip addr add 198.51.100.18/32 dev lo")
    default = int(namespace.run("cat /proc/sys/net/core/rmem_default"))
    with namespace.entered():
        sock = _tunnel_socket(IPv4Address("198.51.100.18"))
    try:
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # the kernel reports twice the request
        assert size >= RECEIVE_BUFFER > default
    finally:
        sock.close()
