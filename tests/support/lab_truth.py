"""What a lab's reference run must show, known before the run: values fixed by the address plan
(``topologies/dualstack.py``), the protocol (RFC 5944, RFC 5454, RFC 3519, RFC 8415) and the lab's variant;
and a few marked fields decoded again by independent decoders (Scapy, tshark), never by ``labs`` or
``mipdump``. Used by tests/integration/test_labs.py on each lab's reference run folder.

Each ``check_NN(run, answers, variant)`` asserts; ``answers`` is what ``python -m labs solve`` measured.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

HA, HOA, FA1_COA, CN = "192.0.2.1", "192.0.2.10", "198.51.100.2", "203.0.113.10"
FA1 = "10.0.1.1"


def _ips(pcap: Path) -> list[Any]:
    """Every IPv4 packet of ``pcap`` as Scapy decodes it, with its frame number (1 = first)."""
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    return [(number, packet[IP]) for number, packet in enumerate(rdpcap(str(pcap)), start=1) if IP in packet]


def _mip(ip: Any) -> bytes:
    """The UDP payload of a Scapy IPv4 packet to or from port 434 (RFC 5944 §3.1), else b""."""
    from scapy.layers.inet import UDP

    if UDP in ip and 434 in (ip[UDP].sport, ip[UDP].dport):
        return bytes(ip[UDP].payload)
    return b""


def tshark_frames(pcap: Path, display_filter: str) -> list[int]:
    """Frame numbers tshark's own dissectors match with ``display_filter``."""
    done = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [int(line) for line in done.stdout.split()]


# -- lab 01 ---------------------------------------------------------------------------------------------


def check_01(run: Path, answers: dict[str, Any], variant: dict[str, Any]) -> None:
    assert answers["fa1_care_of"] == FA1_COA  # FA1's network address (dualstack plan)
    assert answers["registration_lifetime"] == variant["fa1_max_lifetime"]  # FA1's limit: the variant's
    assert answers["advertisement_ttl"] == 1  # RFC 5944 §2.1: TTL 1 (link-local multicast)
    assert "F" in answers["fa1_flags"] and "H" not in answers["fa1_flags"]  # a foreign agent only
    assert "H" in answers["ha_flags"]  # RFC 5944 §2.1.1: the home agent sets H
    assert answers["reason_1"] == "link"  # handover 1 changes the link: carrier event
    assert answers["reason_advert"] != "link"  # carrier kept up: found from advertisements
    assert answers["solicitations"] >= 1
    # Scapy: FA1's first multicast advertisement (ICMP type 9, RFC 1256 §3 + RFC 5944 §2.1.1)
    from scapy.layers.inet import ICMP

    adverts = [
        ip
        for _, ip in _ips(run / "pcaps" / "fa1-fa1-acc.pcap")
        if ip.src == FA1 and ip.dst == "224.0.0.1" and ICMP in ip and ip[ICMP].type == 9
    ]
    assert adverts, "Scapy finds no advertisement from FA1"
    first = adverts[0]
    icmp = bytes(first[ICMP])
    count, size, lifetime = icmp[4], icmp[5], struct.unpack("!H", icmp[6:8])[0]
    assert first.ttl == answers["advertisement_ttl"]
    assert lifetime == answers["fa1_lifetime"]
    extension = icmp[8 + 4 * count * size :]
    assert extension[0] == 16, extension[:4].hex()  # Mobility Agent Advertisement extension
    length = extension[1]
    registration_lifetime = struct.unpack("!H", extension[4:6])[0]
    assert registration_lifetime == answers["registration_lifetime"]
    care_of = str(ipaddress.IPv4Address(extension[8:12]))
    assert length >= 10 and care_of == answers["fa1_care_of"]  # 6 fixed bytes + one address
    flags = extension[6]
    names = "RBHFMGrT"  # bits 7..0 of the flags byte (RFC 5944 §2.1.1)
    set_ = {names[i] for i in range(8) if flags & (0x80 >> i)}
    assert set_ == set(answers["fa1_flags"]), (set_, answers["fa1_flags"])


# -- lab 02 ---------------------------------------------------------------------------------------------


def check_02(run: Path, answers: dict[str, Any], variant: dict[str, Any]) -> None:
    assert answers["rrq_care_of"] == FA1_COA
    assert answers["rrq_lifetime"] == variant["mn_lifetime"]  # what the variant configured mn1 to ask
    assert answers["auth_spi"] == 256
    assert answers["wrong_key_code"] == 131  # RFC 5944 §3.4: mobile node failed authentication
    assert answers["replay_code"] == 133  # registration Identification mismatch
    assert 0 < answers["rrp_lifetime"] <= variant["ha_lifetime"] <= answers["rrq_lifetime"]
    key = bytes.fromhex(variant["keys"]["256"])
    packets = _ips(run / "pcaps" / "ha-ha-eth0.pcap")
    requests = [(n, ip, _mip(ip)) for n, ip in packets if _mip(ip)[:1] == b"\x01"]
    replies = [(n, ip, _mip(ip)) for n, ip in packets if _mip(ip)[:1] == b"\x03"]
    # the first request FA1 relayed with a Lifetime above 0
    relayed = [(n, m) for n, ip, m in requests if ip.src == FA1_COA and struct.unpack("!H", m[2:4])[0] > 0]
    assert relayed, "Scapy finds no request relayed by FA1"
    _, request = relayed[0]
    assert str(ipaddress.IPv4Address(request[12:16])) == answers["rrq_care_of"]
    assert struct.unpack("!H", request[2:4])[0] == answers["rrq_lifetime"]
    # the Mobile-Home Authentication extension (type 32) after the 24-byte fixed part and any others
    offset = 24
    while request[offset] != 32:
        offset += 2 + request[offset + 1]
    spi = struct.unpack("!I", request[offset + 2 : offset + 6])[0]
    authenticator = request[offset + 6 : offset + 2 + request[offset + 1]]
    assert spi == answers["auth_spi"]
    assert authenticator.hex() == answers["authenticator"]
    # RFC 5944 §5.1: HMAC-MD5 over the message up to and including the SPI, with the variant's key
    assert hmac.new(key, request[: offset + 6], hashlib.md5).digest() == authenticator
    # the 133 reply to the correspondent: high 32 bits the HA's time, low 32 bits the replayed request's
    to_cn = [(n, m) for n, ip, m in replies if ip.dst == CN and m[1] == 133]
    assert to_cn, "Scapy finds no code 133 reply to the correspondent"
    _, reply = to_cn[0]
    high, low = struct.unpack("!II", reply[12:20])
    assert (high, low) == (answers["replay_id_high"], answers["replay_id_low"])
    from_cn = [m for n, ip, m in requests if ip.src == CN]
    replayed = [m for m in from_cn if struct.unpack("!I", m[20:24])[0] == low]
    assert replayed, "no request from the correspondent carries the 133 reply's low 32 bits"
    copied = [m for n, ip, m in requests if ip.src != CN and m == replayed[-1]]
    assert copied, "the replayed request is not a copy of one mn1 sent (RFC 5944 §5.7)"


# -- lab 03 ---------------------------------------------------------------------------------------------


def check_03(run: Path, answers: dict[str, Any], variant: dict[str, Any]) -> None:
    assert answers["prefix_requested"] == "2001:db8:10::/48"  # mn1's home prefix (dualstack plan)
    assert answers["prefix_reply_code"] == 0  # RFC 5454 §2.2: accepted
    assert answers["net_headers"] == 3  # IPv6 in IPv4 (to the HoA) in IPv4 (to the CoA)
    fa = int(variant["fa"])  # the foreign agent the variant asks about
    care_of = {1: FA1_COA, 2: "198.51.100.18"}[fa]  # its network end (dualstack plan)
    assert (answers["net_outer_src"], answers["net_outer_dst"]) == (HA, care_of)
    assert answers["net_middle_dst"] == HOA
    assert answers["access_proto"] == 41  # RFC 4213: IPv6 in IPv4
    assert answers["access_headers"] == 2
    # tshark's own Mobile IP dissector: the home agent's first Registration Reply on FA1's network link
    net = run / "pcaps" / f"fa{fa}-fa{fa}-net.pcap"
    frames = tshark_frames(net, f"mip.type == 3 && ip.src == {HA} && ip.dst == {care_of}")
    assert frames and frames[0] == answers["reply_frame"], frames[:3]
    # Scapy: the first correspondent → mn1 IPv6 probe on FA1's network link, header by header
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    for _, ip in _ips(net):
        if ip.proto == 4 and IP in ip.payload and ip.payload[IP].proto == 41:
            inner = ip.payload[IP]
            six = IPv6(bytes(inner.payload))
            if six.src == "2001:db8:ff::10":
                assert (ip.src, ip.dst, inner.dst) == (
                    answers["net_outer_src"],
                    answers["net_outer_dst"],
                    answers["net_middle_dst"],
                )
                break
    else:
        raise AssertionError("Scapy finds no IPv6-in-IPv4-in-IPv4 probe from the correspondent")


# -- labs 04-07: values known from the protocol and the variant -------------------------------------------


def check_04(run: Path, answers: dict[str, Any], variant: dict[str, Any]) -> None:
    target = float(variant["adv_target"])
    # RFC 1256 §4.1: intervals uniform in [0.75, 1] × the maximum: the median is near 0.875 ×
    assert 0.7 * target <= answers["adv_gap"] <= 1.05 * target
    assert answers["detection_advert"] > 0 and answers["interruption_link"] > 0
    assert answers["interruption_advert"] >= answers["detection_advert"]


def check_05(run: Path, answers: dict[str, Any], variant: dict[str, Any]) -> None:
    assert answers["encapsulation"] == 0  # RFC 5454 §3.9: with DSMIPv4 the Encapsulation MUST be 0
    assert answers["next_header_v4"] == 4  # RFC 3519 §3.3: the IP protocol number of the payload
    assert answers["next_header_v6"] == 41
    assert answers["keepalive"] == variant["keepalive"]  # the variant's home agent setting
    assert (
        answers["prefix_reply_code"] == 1
    )  # RFC 5454 §2.2: accepted, IPv6 tunnelled to the (co-located) CoA
    assert answers["care_of"] != answers["request_source"]  # the NAT rewrote the source (RFC 3519 §1)
    assert answers["new_port"] != answers["nat_port"]  # the NAT forgot the mapping
    assert abs(answers["keepalive_gap"] - variant["keepalive"]) <= 0.25 * variant["keepalive"]


def check_06(run: Path, answers: dict[str, Any], variant: dict[str, Any]) -> None:
    assert ipaddress.ip_address(answers["link_local"]) in ipaddress.ip_network("fe80::/10")
    assert answers["link_local_length"] == 255  # RFC 5454 §3.7.1: a link-local registration
    assert answers["link_local_code"] == 0
    assert answers["solicit_headers"] == 3  # DHCPv6 in IPv6 in IPv4 (HoA) in IPv4 (CoA)
    assert answers["solicit_destination"] == "ff02::1:2"  # RFC 8415 §7.1 All_DHCP_Relay_Agents_and_Servers
    assert answers["valid_lifetime"] == variant["lease"]
    assert 0 < answers["t1"] <= answers["valid_lifetime"]
    assert ipaddress.ip_network(answers["delegated_prefix"]).prefixlen < 64


def check_07(run: Path, answers: dict[str, Any], variant: dict[str, Any]) -> None:
    assert answers["fa_dereg_lifetime"] == 0  # RFC 5944 §3.6.1.2: deregistration is Lifetime 0
    assert answers["fa_dereg_code"] == 0
    assert answers["home_dereg_care_of"] == HOA  # from home, the care-of address is the home address
    assert answers["replay_code"] == 133
    target = float(variant["lifetime_target"])
    assert 0 < answers["renewal_gap"] < target  # renewals come before the lifetime runs out
    assert 0 < answers["black_hole_s"] <= target + 1.5  # the binding lives at most one lifetime


CHECKS: dict[str, Callable[[Path, dict[str, Any], dict[str, Any]], None]] = {
    "01": check_01,
    "02": check_02,
    "03": check_03,
    "04": check_04,
    "05": check_05,
    "06": check_06,
    "07": check_07,
}
