"""The harness's link move (scenarios/harness/links.py, issue 14) against the real kernel: two raw
rtnetlink requests, the port taken down while still on its old bridge, then moved, then up, so the node
on the far end sees its carrier drop and return (the RFC 5944 §2.4.2 link-layer hint), and the trace
lines carry the times the kernel applied each step."""

from __future__ import annotations

import socket
import struct

import pytest

from agents.runtime.linkwatch import RTMGRP_LINK, has_carrier, link_messages
from scenarios.harness.links import LinkMover, MoveError
from tests.netns.conftest import NamespaceFactory
from topologies.spec import MobileLink

pytestmark = pytest.mark.root
IFLA_MASTER = 10


def masters(data: bytes) -> list[tuple[int, int, int | None]]:
    """(index, flags, IFLA_MASTER or None) of each RTM_NEWLINK in one read."""
    out, offset = [], 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if kind == 16:
            _family, _type, index, flags, _change = struct.unpack_from("=BxHiII", data, offset + 16)
            master, attr = None, offset + 32
            while attr + 4 <= offset + length:
                size, attr_kind = struct.unpack_from("=HH", data, attr)
                if size < 4:
                    break
                if attr_kind == IFLA_MASTER:
                    master = struct.unpack_from("=I", data, attr + 4)[0]
                attr += (size + 3) & ~3
            out.append((index, flags, master))
        offset += (length + 3) & ~3
    return out


def read_all(sock: socket.socket) -> list[bytes]:
    reads = []
    while True:
        try:
            reads.append(sock.recv(65536))
        except TimeoutError:
            return reads


def test_move_is_down_on_the_old_bridge_then_up_on_the_new(namespaces: NamespaceFactory) -> None:
    namespace = namespaces()
    namespace.run(
        "ip link add b1 type bridge && ip link add b2 type bridge && ip link set b1 up && ip link set b2 up"
        " && ip link add port type veth peer name mn0 && ip link set port master b1"
        " && ip link set port up && ip link set mn0 up"
    )
    with namespace.entered():
        mover = LinkMover()
        monitor = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        port, old, new, far = (socket.if_nametoindex(name) for name in ("port", "b1", "b2", "mn0"))
    try:
        monitor.bind((0, RTMGRP_LINK))
        monitor.settimeout(0.3)
        read_all(monitor)
        lines: list[tuple[float, str]] = []
        link = MobileLink("mn", "mn0", "port", {"a": "b1", "b": "b2"}, initial="a")
        mover.reattach(link, "b", lambda t, event, **_fields: lines.append((t, event)), 1, True)
        reads = read_all(monitor)
        assert [event for _t, event in lines] == ["link_down", "link_up"]
        assert lines[0][0] < lines[1][0]
        seen = [item for data in reads for item in masters(data) if item[0] == port]
        assert seen[0][1] & 1 == 0 and seen[0][2] == old  # down first, still on b1
        assert seen[-1][1] & 1 == 1 and seen[-1][2] == new  # up on b2 at the end
        carrier = [has_carrier(flags) for data in reads for _k, index, flags, _n in link_messages(data)
                   if index == far]  # fmt: skip
        assert False in carrier and carrier[-1] is True  # the far end saw its carrier go and come back
        assert "master b2" in namespace.run("ip link show port")
        with pytest.raises(MoveError, match="cannot move to 'c'"):
            mover.reattach(link, "c", lambda *_a, **_k: None, 2, True)
        # without carrier events: only the bridge changes, the port stays up
        mover.reattach(link, "a", lambda *_a, **_k: None, 3, False)
        assert "master b1 state UP" in namespace.run("ip link show port")
    finally:
        monitor.close()
        mover.close()
