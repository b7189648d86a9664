"""The security scenario's pure parts: the spoofed packets and flood datagrams it builds
(:mod:`scenarios.spoofing`), the attacker's input checks (:mod:`scenarios.attack`) and the outage arithmetic
of its report (:mod:`reports.security_faults`). scapy is the independent decoder here."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from agents.mip.wire.auth import SecurityAssociation, verify_with
from agents.mip.wire.codes import ExtensionType
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.registration import RegistrationRequest, decode_message
from agents.mip.wire.tunnel import decapsulate
from reports.probes import FlowData
from reports.security_faults import first_received, outage_ms
from scenarios import attack
from scenarios.spoofing import (
    MARKER,
    OUTSIDE4,
    OUTSIDE6,
    WRONG_KEY,
    Target,
    bad_auth_datagram,
    garbage_datagram,
    spoofs,
    udp6,
)

HA, HOA, COA, CN4 = (IPv4Address(a) for a in ("192.0.2.1", "192.0.2.10", "198.51.100.2", "203.0.113.10"))
HOA6, CN6 = IPv6Address("2001:db8:10::10"), IPv6Address("2001:db8:cafe::10")
TARGET = Target(HA, HOA, HOA6, COA, CN4, CN6, CN4)


def innermost(packet: bytes) -> tuple[list[str], bytes]:
    """Peel every tunnel layer; (outer sources, outermost first, the innermost datagram)."""
    sources = []
    while packet[0] >> 4 == 4 and packet[9] in (4, 41):
        layer = decapsulate(packet)
        assert layer is not None
        sources.append(str(layer.outer_source))
        packet = layer.inner
    return sources, packet


def test_every_spoof_tunnels_a_marked_datagram_to_the_correspondent_from_the_right_sources() -> None:
    """RFC 3024 §4.3.2 / RFC 5454 §4: each kind breaks exactly the check it is named after."""
    built = {spoof.name: spoof for spoof in spoofs(TARGET, "cn", "mn2")}
    expected = {
        "v4-outer": ("cn", [str(CN4)], str(HOA)),
        "v4-inner": ("mn2", [str(COA)], str(OUTSIDE4)),
        "v6-outer": ("cn", [str(CN4)], str(HOA6)),
        "v6-inner": ("mn2", [str(COA), str(HOA)], str(OUTSIDE6)),
        "v6-unnested": ("mn2", [str(HOA)], str(HOA6)),
        "v6-nested-outer": ("cn", [str(CN4), str(HOA)], str(HOA6)),
    }
    assert set(built) == set(expected)
    for name, (vantage, outer, inner_source) in expected.items():
        spoof = built[name]
        assert spoof.vantage == vantage, name
        assert IP(spoof.packet).dst == str(HA), name
        sources, inner = innermost(spoof.packet)
        assert sources == outer, name
        decoded = IP(inner) if inner[0] >> 4 == 4 else IPv6(inner)
        assert decoded.src == inner_source and decoded.dst in (str(CN4), str(CN6)), name
        assert bytes(decoded[UDP].payload) == MARKER + name.encode(), name


def test_the_ipv6_datagram_carries_a_valid_udp_checksum() -> None:
    wire = udp6(HOA6, CN6, 9, b"payload")
    decoded = IPv6(wire)
    claimed = decoded[UDP].chksum
    del decoded[UDP].chksum
    assert IPv6(bytes(decoded))[UDP].chksum == claimed
    assert decoded.plen == 8 + len(b"payload")


def test_a_bad_auth_datagram_is_a_request_for_the_mn_that_only_the_wrong_key_verifies() -> None:
    """RFC 5944 §3.8.2.1: right SPI, wrong authenticator, from a forged source to the HA's port 434."""
    wire = bad_auth_datagram(COA, HA, HOA, COA, 256, identification=7)
    ip = IP(wire)
    assert (ip.src, ip.dst, ip[UDP].dport) == (str(COA), str(HA), 434)
    payload = bytes(ip[UDP].payload)
    request = decode_message(payload)
    assert isinstance(request, RegistrationRequest) and request.home_address == HOA
    assert not verify_with(payload, ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(256, bytes(16)))
    assert verify_with(payload, ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(256, WRONG_KEY))


def test_garbage_is_a_request_type_byte_and_random_bytes() -> None:
    """Type 1 and 0–59 random bytes (the shape benchmarks/malformed_flood.py uses): below the 24-byte fixed
    part (RFC 5944 §3.3) it cannot decode; longer ones are random extensions."""
    for index in range(60):
        payload = bytes(IP(garbage_datagram(CN4, HA, index))[UDP].payload)
        assert payload[0] == 1 and len(payload) == 1 + index
        if len(payload) < 24:
            with pytest.raises(DecodeError):
                decode_message(payload)


@pytest.mark.parametrize(
    ("lines", "extra"),
    [
        ("zz\n", []),
        ("6000\n", []),  # an IPv6 header: the attacker sends IPv4 only
        (None, ["--count", "0"]),
        (None, ["--rate", "1000000"]),
        (None, ["--max-seconds", "500"]),
    ],
)
def test_the_attacker_refuses_bad_input_before_opening_a_socket(
    tmp_path: Path, lines: str | None, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    packets = tmp_path / "packets.hex"
    packets.write_text(lines if lines is not None else garbage_datagram(CN4, HA, 3).hex() + "\n")
    argv = ["--packets", str(packets), "--count", "10", "--rate", "100", *extra]
    if lines == "6000\n":
        packets.write_text(udp6(HOA6, CN6, 9, b"x").hex() + "\n")
    assert attack.main(argv) == 2
    assert capsys.readouterr().out == ""


def flow(recv: list[float]) -> FlowData:
    count = len(recv)
    return FlowData(
        "v4-down",
        4,
        np.arange(count),
        np.array(recv, dtype=float) - 0.001,
        np.array(recv, dtype=float),
        np.zeros(count, dtype=int),
        ("fa1",),
    )


def test_the_outage_is_the_longest_gap_from_the_last_packet_before_the_fault() -> None:
    received = [0.0, 0.1, 0.2, float("nan"), float("nan"), 1.2, 1.3, 1.4]
    assert outage_ms(flow(received), fault=0.25, end=2.0) == 1000.0
    assert first_received(flow(received), 0.25) == 1.2
    assert outage_ms(flow([0.0, 0.1]), fault=0.25, end=2.0) is None  # never back: no figure, not 0
    assert outage_ms(None, 0.0, 1.0) is None


def test_the_kernels_udp_counters_are_read_from_proc_net_snmp() -> None:
    """The flood rows' kernel drops (reports/security.py): ``Udp:`` rows of the HA namespace's
    /proc/net/snmp; anything else is None (the verdict then fails, never counts 0)."""
    from scenarios.security_run import udp_counters

    snmp = (
        "Ip: Forwarding DefaultTTL\nIp: 1 64\n"
        "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
        "Udp: 120 3 40 99 38 0\nUdpLite: InDatagrams\nUdpLite: 0\n"
    )
    counters = udp_counters(snmp)
    assert counters is not None and counters["RcvbufErrors"] == 38 and counters["InErrors"] == 40
    assert len(counters) == 6
    assert udp_counters("") is None and udp_counters("Udp: A B\nUdp: 1\n") is None


def test_the_queue_left_on_udp_434_is_read_from_proc_net_udp() -> None:
    """Review F2: the flood counters are read once the HA's UDP 434 sockets are empty: the rx_queue
    (hex, after the colon of ``tx_queue:rx_queue``) of every socket on local port 434 (0x01B2), IPv4
    and IPv6 rows alike; other ports ignored; None when no socket is on the port."""
    from scenarios.security_run import udp_queued

    tables = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   1: 0A000102:01B2 00000000:0000 07 00000000:00000300 00:00000000 00000000     0        0 1 2\n"
        "   2: 00000000:01B2 00000000:0000 07 00000000:00000040 00:00000000 00000000     0        0 3 2\n"
        "   3: 00000000:0035 00000000:0000 07 00000000:0000ffff 00:00000000 00000000     0        0 4 2\n"
        "  sl  local_address                         remote_address                        st\n"
        "   4: 00000000000000000000000000000000:01B2 00000000000000000000000000000000:0000 07 "
        "00000000:00000001 00:00000000 00000000     0        0 5 2\n"
    )
    assert udp_queued(tables, 434) == 0x300 + 0x40 + 1
    assert udp_queued(tables, 53) == 0xFFFF
    assert udp_queued(tables, 4343) is None
    assert udp_queued("", 434) is None


def test_floods_as_long_as_the_issues_can_be_asked_for() -> None:
    """Issue 16's floods lasted 20-33 s: 660,000 datagrams at 20,000/s must be accepted; past the cap is
    a one-line argparse error, never a traceback."""
    import argparse

    from scenarios.security import MAX_FLOOD_COUNT, flood_count

    assert flood_count("660000") == 660_000 and flood_count(str(MAX_FLOOD_COUNT)) == 1_000_000
    for bad in ("99", str(MAX_FLOOD_COUNT + 1), "abc"):
        with pytest.raises(
            argparse.ArgumentTypeError,
            match=r"must be a whole number between 100 and 1000000 \(datagrams per flood\), got '",
        ):
            flood_count(bad)
