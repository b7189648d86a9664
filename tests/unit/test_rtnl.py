"""Raw rtnetlink requests (agents/net/rtnl.py, issue 14): each message decoded by pyroute2's own parsers
as an independent decoder, so the fields are what the kernel's rtnetlink (rtnetlink(7)) reads."""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from agents.net.rtnl import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NTF_PROXY,
    NUD_PERMANENT,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    acknowledgement,
    acknowledgements,
    address_deletion,
    address_message,
    link_message,
    local_route,
    neigh_message,
    neighbour_message,
    packed_prefix,
    route_dump,
    route_message,
    rule_message,
)

ADD = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL


def decoded(kind: type, data: bytes):  # type: ignore[no-untyped-def]
    message = kind(data)
    message.decode()
    return message


def test_added_route_carries_every_field_as_pyroute2_would_send_it() -> None:
    spec = {"dst": "10.1.0.0/16", "family": socket.AF_INET, "oif": 3, "gateway": "10.0.0.1", "table": 110}
    spec |= {"priority": 5, "prefsrc": "10.0.0.2", "metrics": {"mtu": 1300}, "scope": 0, "flags": 4}
    message = decoded(rtmsg, route_message("add", spec, 7))
    header = message["header"]
    assert (header["type"], header["flags"], header["sequence_number"]) == (RTM_NEWROUTE, ADD, 7)
    assert header["length"] == len(route_message("add", spec, 7))
    assert (message["family"], message["dst_len"], message["table"]) == (socket.AF_INET, 16, 110)
    assert (message["proto"], message["type"], message["flags"]) == (4, 1, 4)  # static, unicast, onlink
    assert message.get_attr("RTA_DST") == "10.1.0.0"
    assert message.get_attr("RTA_GATEWAY") == "10.0.0.1"
    assert (message.get_attr("RTA_OIF"), message.get_attr("RTA_TABLE")) == (3, 110)
    assert (message.get_attr("RTA_PRIORITY"), message.get_attr("RTA_PREFSRC")) == (5, "10.0.0.2")
    assert message.get_attr("RTA_METRICS").get_attr("RTAX_MTU") == 1300


def test_default_route_deletion_in_a_large_table() -> None:
    """No RTA_DST for a /0 (as ``ip route del default``); a table above 255 in RTA_TABLE, 252 in the
    header; protocol and type unspecified, so the kernel matches any."""
    spec = {"dst": "0.0.0.0/0", "family": socket.AF_INET, "gateway": "10.0.0.1", "table": 1000}
    message = decoded(rtmsg, route_message("del", spec, 1))
    header = message["header"]
    assert (header["type"], header["flags"]) == (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
    assert (message["dst_len"], message["table"], message["proto"], message["type"]) == (0, 252, 0, 0)
    assert message.get_attr("RTA_DST") is None
    assert message.get_attr("RTA_TABLE") == 1000


def test_ipv6_route() -> None:
    spec = {"dst": "2001:db8:10::/48", "family": socket.AF_INET6, "oif": 9, "priority": 512}
    message = decoded(rtmsg, route_message("add", spec))
    assert (message["family"], message["dst_len"], message["table"]) == (socket.AF_INET6, 48, 254)
    assert message.get_attr("RTA_DST") == "2001:db8:10::"
    assert (message.get_attr("RTA_OIF"), message.get_attr("RTA_PRIORITY")) == (9, 512)


def test_route_dump_of_one_family() -> None:
    message = decoded(rtmsg, route_dump(socket.AF_INET6, 5))
    header = message["header"]
    assert (header["type"], header["flags"], header["sequence_number"]) == (RTM_GETROUTE, 0x301, 5)
    assert message["family"] == socket.AF_INET6


def kernel_route(kind: int, table: int, destination: str, oif: int) -> bytes:
    """An RTM_NEWROUTE body as the kernel sends it in a dump, encoded by pyroute2."""
    message = rtmsg()
    message["family"], message["dst_len"] = socket.AF_INET6, 128
    message["table"], message["type"] = table, kind
    message["attrs"] = [("RTA_TABLE", table), ("RTA_DST", destination), ("RTA_OIF", oif)]
    message.encode()
    return bytes(message.data[16:])  # after the netlink header


def test_local_route_is_a_local_entry_of_table_local_rfc4862_5_4() -> None:
    """What :meth:`Netlink.wait_until_local` looks for: the kernel's ``local`` entry of an address."""
    address = socket.inet_pton(socket.AF_INET6, "2001:db8::5")
    assert local_route(kernel_route(2, 255, "2001:db8::5", 7)) == (address, 7)
    assert local_route(kernel_route(1, 255, "2001:db8::5", 7)) is None  # unicast
    assert local_route(kernel_route(2, 254, "2001:db8::5", 7)) is None  # not table local


def test_permanent_neighbour_replaces() -> None:
    spec = {"dst": "10.0.2.1", "ifindex": 4, "family": socket.AF_INET}
    message = decoded(ndmsg, neighbour_message(spec, bytes.fromhex("020000000021"), 0x80, 3))
    header = message["header"]
    assert header["type"] == RTM_NEWNEIGH
    assert header["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    assert (message["family"], message["ifindex"], message["state"]) == (socket.AF_INET, 4, 0x80)
    assert message.get_attr("NDA_DST") == "10.0.2.1"
    assert message.get_attr("NDA_LLADDR") == "02:00:00:00:00:21"


@pytest.mark.parametrize(
    ("command", "kind", "flags", "state"),
    [
        ("add", RTM_NEWNEIGH, ADD, NUD_PERMANENT),
        ("del", RTM_DELNEIGH, 5, NUD_PERMANENT),
        ("get", RTM_GETNEIGH, 5, 0),
    ],
)
def test_proxy_neighbour_as_pyroute2_sends_it(command: str, kind: int, flags: int, state: int) -> None:
    """``ip neigh add|del|get proxy DST dev IFINDEX`` (the home agent's proxy ARP, RFC 5944 §4.6): NTF_PROXY
    in the header, only NDA_DST; NUD_PERMANENT as pyroute2 sends it, none in a ``get`` (the kernel refuses
    a ``get`` whose header carries anything but the flags)."""
    spec = {"dst": "192.0.2.100", "ifindex": 6, "flags": NTF_PROXY, "family": socket.AF_INET}
    data = neigh_message(command, spec, 11)
    message = decoded(ndmsg, data)
    header = message["header"]
    assert (header["type"], header["flags"], header["sequence_number"]) == (kind, flags, 11)
    assert header["length"] == len(data)
    assert (message["family"], message["ifindex"], message["flags"]) == (socket.AF_INET, 6, NTF_PROXY)
    assert (message["state"], message["ndm_type"]) == (state, 0)
    assert message.get_attr("NDA_DST") == "192.0.2.100"
    assert message.get_attr("NDA_LLADDR") is None


def test_ipv6_neighbour_deletion() -> None:
    spec = {"dst": "2001:db8:1::5", "ifindex": 2, "family": socket.AF_INET6}
    message = decoded(ndmsg, neigh_message("del", spec))
    assert (message["header"]["type"], message["family"], message["flags"]) == (
        RTM_DELNEIGH,
        socket.AF_INET6,
        0,
    )
    assert message.get_attr("NDA_DST") == "2001:db8:1::5"


@pytest.mark.parametrize(("command", "kind", "flags"), [("add", RTM_NEWRULE, ADD), ("del", RTM_DELRULE, 5)])
def test_source_rule_with_input_interface(command: str, kind: int, flags: int) -> None:
    spec = {"src": "192.0.2.10", "src_len": 32, "table": 110, "priority": 1100, "family": socket.AF_INET}
    spec["iifname"] = "fa2-acc"
    message = decoded(fibmsg, rule_message(command, spec))
    assert (message["header"]["type"], message["header"]["flags"]) == (kind, flags)
    assert (message["src_len"], message["table"], message["action"]) == (32, 110, 1)  # FR_ACT_TO_TBL
    assert message.get_attr("FRA_SRC") == "192.0.2.10"
    assert (message.get_attr("FRA_TABLE"), message.get_attr("FRA_PRIORITY")) == (110, 1100)
    assert message.get_attr("FRA_IIFNAME") == "fa2-acc"


def test_unknown_arguments_are_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="lladdr"):
        neigh_message("add", {"dst": "10.0.0.1", "ifindex": 1, "family": 2, "lladdr": "02:00:00:00:00:01"})
    with pytest.raises(ValueError, match="encap"):
        route_message("add", {"dst": "10.0.0.0/8", "family": socket.AF_INET, "encap": {}})
    with pytest.raises(ValueError, match="action"):
        rule_message(
            "add", {"src": "10.0.0.1", "src_len": 32, "table": 1, "priority": 1, "family": 2, "action": 6}
        )


def test_acknowledgement_finds_the_answer_to_its_sequence() -> None:
    def error(sequence: int, code: int) -> bytes:
        body = struct.pack("=i", -code) + bytes(16)
        return struct.pack("=IHHII", 16 + len(body), 2, 0, sequence, 0) + body

    assert acknowledgement(error(4, 0), 4) == 0
    assert acknowledgement(error(3, errno.EEXIST) + error(4, errno.ENOENT), 4) == errno.ENOENT
    assert acknowledgement(error(3, 0), 4) is None
    assert acknowledgement(b"\x01\x00", 4) is None


def test_acknowledgements_of_a_batch_in_order_skipping_answers() -> None:
    """One datagram may carry a ``get``'s answer (an RTM_NEWNEIGH) before its acknowledgement."""

    def error(sequence: int, code: int) -> bytes:
        body = struct.pack("=i", -code) + bytes(16)
        return struct.pack("=IHHII", 16 + len(body), 2, 0, sequence, 0) + body

    answer = neigh_message("add", {"dst": "10.0.0.1", "ifindex": 1, "family": 2}, 5)
    data = error(4, 0) + answer + error(5, errno.ENOENT) + error(6, errno.ESRCH)
    assert list(acknowledgements(data)) == [(4, 0), (5, errno.ENOENT), (6, errno.ESRCH)]
    assert list(acknowledgements(struct.pack("=IHHII", 4, 2, 0, 1, 0))) == []  # a length below the header


@pytest.mark.parametrize(
    ("family", "text", "expected"),
    [
        (socket.AF_INET, "10.0.0.0/8", (bytes([10, 0, 0, 0]), 8)),
        (socket.AF_INET, "0.0.0.0/0", (bytes(4), 0)),
        (socket.AF_INET, "10.0.0.1", (bytes([10, 0, 0, 1]), 32)),
        (socket.AF_INET6, "2001:db8::/32", (bytes.fromhex("20010db8") + bytes(12), 32)),
    ],
)
def test_prefix_text_packed(family: int, text: str, expected: tuple[bytes, int]) -> None:
    assert packed_prefix(family, text) == expected


@pytest.mark.parametrize(
    ("family", "text"),
    [
        (socket.AF_INET, "10.0.0.1/24"),  # host bits set, as ipaddress.ip_network refuses
        (socket.AF_INET, "10.0.0.0/33"),
        (socket.AF_INET, "10.0.0.0/"),
        (socket.AF_INET, "10.0.0.0/x"),
        (socket.AF_INET, "2001:db8::/32"),  # the other family
        (socket.AF_INET6, "10.0.0.0/8"),
    ],
)
def test_bad_prefix_text_is_a_value_error(family: int, text: str) -> None:
    with pytest.raises(ValueError, match=r"prefix length|host bits|not an address"):
        packed_prefix(family, text)


def test_port_down_and_to_another_bridge_in_one_link_request() -> None:
    """The harness's move (issue 14): IFF_UP cleared (in the change mask) and IFLA_MASTER set."""
    message = decoded(ifinfmsg, link_message(7, up=False, master=3, sequence=9))
    header = message["header"]
    assert (header["type"], header["flags"], header["sequence_number"]) == (RTM_NEWLINK, 5, 9)
    assert (message["index"], message["flags"], message["change"]) == (7, 0, 1)
    assert message.get_attr("IFLA_MASTER") == 3


def test_port_up_alone_leaves_the_master_alone() -> None:
    message = decoded(ifinfmsg, link_message(7, up=True))
    assert (message["flags"], message["change"]) == (1, 1)
    assert message.get_attr("IFLA_MASTER") is None
    only_master = decoded(ifinfmsg, link_message(7, master=0))
    assert (only_master["flags"], only_master["change"]) == (0, 0)
    assert only_master.get_attr("IFLA_MASTER") == 0


ADDRESSES = [(socket.AF_INET, "192.0.2.10", 24), (socket.AF_INET6, "2001:db8:10::a", 128)]


@pytest.mark.parametrize(("family", "address", "length"), ADDRESSES)
def test_address_deletion_as_pyroute2_sends_it(family: int, address: str, length: int) -> None:
    spec = {"index": 4, "address": address, "prefixlen": length, "family": family}
    message = decoded(ifaddrmsg, address_deletion(spec, 5))
    assert (message["header"]["type"], message["header"]["flags"]) == (21, NLM_F_REQUEST | NLM_F_ACK)
    assert (message["family"], message["prefixlen"], message["index"]) == (family, length, 4)
    assert message.get_attr("IFA_LOCAL") == address and message.get_attr("IFA_ADDRESS") == address
    with pytest.raises(ValueError, match="no raw encoding"):
        address_deletion(spec | {"flags": 0x80})


def test_address_addition_is_exclusive_and_carries_nodad() -> None:
    spec = {"index": 4, "address": "2001:db8:10::a", "prefixlen": 128, "family": socket.AF_INET6, "flags": 2}
    message = decoded(ifaddrmsg, address_message("add", spec, 6))
    assert (message["header"]["type"], message["header"]["flags"]) == (20, ADD)
    assert (message["flags"], message["prefixlen"], message["index"]) == (2, 128, 4)
    assert message.get_attr("IFA_LOCAL") == "2001:db8:10::a"
