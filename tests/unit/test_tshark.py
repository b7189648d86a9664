"""Debian's tshark, an independent decoder, reads a pcap written from our encoders.

Each frame's fields must come out as we meant them, with no malformed-packet or other expert errors, and with
the IPv4 and ICMP checksums we computed marked good. See tests/support/messages.py for the frames.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.frames import write_pcap
from tests.support.messages import KEY, capture_packets, dsmip_reply, dsmip_request

FIELDS = (
    "frame.number mip.type mip.flags mip.life mip.code mip.homeaddr mip.haaddr mip.coa mip.nai mip.ext.type "
    "mip.ext.len mip.auth.spi mip.ext.utrq.f mip.ext.utrq.encaptype mip.ext.utrp.code mip.ext.utrp.keepalive "
    "icmp.type icmp.code icmp.checksum.status icmp.mip.seq icmp.mip.life icmp.mip.flags icmp.mip.coa "
    "icmp.mip.prefixlength mip.nattt.nexthdr ip.proto ip.checksum.status ipv6.dst mip.ident mip.auth.auth "
    "mip.extension"
).split()


def tshark(*args: str) -> str:
    binary = shutil.which("tshark")
    assert binary, "tshark is not installed (tools/provision.sh installs it)"
    result = subprocess.run(
        [binary, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, str]]:
    pcap = write_pcap(tmp_path_factory.mktemp("tshark") / "ours.pcap", capture_packets())
    args = ["-r", str(pcap), "-T", "fields", "-E", "separator=|"]
    for field in FIELDS:
        args += ["-e", field]
    rows = [line.split("|") for line in tshark(*args).splitlines()]
    return {int(row[0]): dict(zip(FIELDS, row, strict=True)) for row in rows}


@pytest.fixture(scope="module")
def pcap_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pcap(tmp_path_factory.mktemp("tshark-expert") / "ours.pcap", capture_packets())


def test_no_malformed_packets_and_no_expert_warnings(pcap_path: Path) -> None:
    assert tshark("-r", str(pcap_path), "-Y", "_ws.malformed || _ws.expert.severity >= warning") == ""


def test_dsmipv4_registration_request_fields(frames: dict[int, dict[str, str]]) -> None:
    """RFC 5944 §3.3 fixed part; RFC 2794 NAI first; RFC 5454 §3.1: DSMIPv4 (152) before MN-HA (32)."""
    rrq = frames[1]
    assert (rrq["mip.type"], rrq["mip.flags"], rrq["mip.life"]) == ("1", "0x22", "300")
    assert (rrq["mip.homeaddr"], rrq["mip.haaddr"], rrq["mip.coa"]) == (
        "10.1.0.5",
        "192.0.2.1",
        "198.51.100.10",
    )
    assert rrq["mip.nai"] == "mn1@example.net"
    assert rrq["mip.ext.type"] == "131,152,152,152,152,152,32"
    assert rrq["mip.ext.len"] == "15,18,18,18,18,2,20"
    assert rrq["mip.auth.spi"] == "0x00000100"


def test_dsmipv4_registration_reply_fields(frames: dict[int, dict[str, str]]) -> None:
    """RFC 5944 §3.4; one 152/2 Prefix Reply (Length 20) per requested prefix (RFC 5454 §2.2)."""
    rrp = frames[2]
    assert (rrp["mip.type"], rrp["mip.code"], rrp["mip.life"]) == ("3", "0", "300")
    assert rrp["mip.ext.type"] == "152,152,152,152,32"
    assert rrp["mip.ext.len"] == "20,20,20,20,20"


def test_udp_tunnel_request_and_reply_fields(frames: dict[int, dict[str, str]]) -> None:
    """RFC 3519 §3.1 (144, F flag, encapsulation 0) and §3.2 (44, code 0, keepalive)."""
    assert frames[3]["mip.ext.type"] == "144,32"
    assert (frames[3]["mip.ext.utrq.f"], frames[3]["mip.ext.utrq.encaptype"]) == ("1", "0")
    assert frames[4]["mip.ext.type"] == "44,32"
    assert (frames[4]["mip.ext.utrp.code"], frames[4]["mip.ext.utrp.keepalive"]) == ("0", "110")


def test_agent_advertisement_fields_and_checksum(frames: dict[int, dict[str, str]]) -> None:
    """RFC 5944 §2.1: ICMP 9 with extension 16 (R|F|T = 0x9100) and 19; checksum good."""
    adv = frames[5]
    assert (adv["icmp.type"], adv["icmp.code"], adv["icmp.checksum.status"]) == ("9", "0", "1")
    assert (adv["icmp.mip.seq"], adv["icmp.mip.life"], adv["icmp.mip.flags"]) == ("7", "1800", "0x9100")
    assert (adv["icmp.mip.coa"], adv["icmp.mip.prefixlength"]) == ("198.51.100.1", "24")


def test_agent_solicitation_checksum(frames: dict[int, dict[str, str]]) -> None:
    assert (frames[6]["icmp.type"], frames[6]["icmp.checksum.status"]) == ("10", "1")


def test_tunnel_data_with_ipv6(frames: dict[int, dict[str, str]]) -> None:
    """RFC 3519 §3.3 type 4 with next header 41 (RFC 5454 §3.9): tshark decodes the inner IPv6."""
    assert (frames[7]["mip.type"], frames[7]["mip.nattt.nexthdr"]) == ("4", "41")
    assert frames[7]["ipv6.dst"] == "2001:db8:1::5"


def test_ipv6_in_ipv4_outer_header(frames: dict[int, dict[str, str]]) -> None:
    """RFC 4213 §3.5: protocol 41, our outer IPv4 checksum good, inner IPv6 decoded."""
    assert (frames[8]["ip.proto"], frames[8]["ip.checksum.status"]) == ("41", "1")
    assert frames[8]["ipv6.dst"] == "2001:db8:1::5"


def test_dsmipv4_extension_bodies_byte_exact(frames: dict[int, dict[str, str]]) -> None:
    """tshark 4.0 shows type 152 as raw bytes (protocol.md §8): check them against RFC 5454 §2.1–§2.3 layouts.

    Request: subtype 1, prefix length, prefix; the 255 one carries fe80::a01:5; then subtype 3, reserved 0.
    Reply body: subtype 2, code, prefix length, reserved, prefix.
    """
    assert frames[1]["mip.extension"].split(",") == [
        "013020010db8000100000000000000000000",
        "013020010db8000200000000000000000000",
        "014020010db8000300040000000000000000",
        "01fffe80000000000000000000000a010005",
        "0300",
    ]
    assert frames[2]["mip.extension"].split(",") == [
        "0200300020010db8000100000000000000000000",
        "0201300020010db8000200000000000000000000",
        "0208400020010db8000300040000000000000000",
        "0209ff00fe80000000000000000000000a010005",
    ]


def test_identification_and_authenticator(frames: dict[int, dict[str, str]]) -> None:
    """Identification read as an NTP time (RFC 5944 §5.7); the authenticator tshark shows is HMAC-MD5 over
    everything before it (RFC 5944 §3.5.1), recomputed here with the stdlib's hmac."""
    assert frames[1]["mip.ident"] == "Sep  5, 2023 13:59:31.000000000 UTC"
    for frame, message in ((1, dsmip_request()), (2, dsmip_reply())):
        expected = hmac.new(KEY, message[:-16], hashlib.md5).hexdigest()
        assert frames[frame]["mip.auth.auth"] == expected
