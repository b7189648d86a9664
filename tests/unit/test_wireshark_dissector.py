"""Our Wireshark Lua dissector for the DSMIPv4 extension (tools/wireshark/dsmipv4.lua), run in real tshark.

Registration messages are built with our own wire library (agents.mip), framed into a pcap by dpkt
(tests/support/frames.py) and decoded by Debian's tshark 4.0 with the script loaded through
``reports.wireshark.tshark_args()``. Every value tshark shows in the ``dsmipv4.*`` fields must equal what we
encoded (RFC 5454 §2.1-§2.3), and every malformed or truncated extension must come out as the expected
expert info, with tshark exiting 0 and no Lua error. The suite runs as root, so it also proves that tshark
runs ``-X lua_script`` scripts for root. A missing tshark is a failure, not a skip (tools/provision.sh
installs it).
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import dpkt
import pytest

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import PrefixReplyCode, RegistrationFlag
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import AuthenticationExtension, Extension, NaiExtension, UdpTunnelRequest
from agents.mip.wire.registration import (
    RegistrationReply,
    RegistrationRequest,
    build_reply,
    build_request,
    decode_message,
)
from reports.wireshark import DISSECTOR, tshark_args
from tests.support.frames import HA_MAC, MN_MAC, udp_packet, write_pcap

MN_HA = SecurityAssociation(0x100, bytes(range(16)))
HOA, HA, COA = IPv4Address("10.1.0.5"), IPv4Address("192.0.2.1"), IPv4Address("198.51.100.10")
MN_PORT = 49152
PREFIX_48 = IPv6Network("2001:db8:1::/48")
PREFIX_64 = IPv6Network("2001:db8:3:4::/64")
LINK_LOCAL = IPv6Address("fe80::a01:5")
DOCUMENTATION = IPv6Address("2001:db8::")

ROOT_WARNING = 'Running as user "root" and group "root". This could be dangerous.'
ERROR, WARNING, NOTE = "Error", "Warning", "Note"

CODE_LABELS = {
    PrefixReplyCode.ACCEPTED_TO_HOA: "Accepted, IPv6 tunnelled to the home address",
    PrefixReplyCode.ACCEPTED_TO_COA: "Accepted, IPv6 tunnelled to the care-of address",
    PrefixReplyCode.REJECTED_UNSPECIFIED: "Rejected, reason unspecified",
    PrefixReplyCode.REJECTED_ADMIN: "Rejected, administratively prohibited",
}
"""The value string tshark must show for every code agents/mip/wire/codes.py knows (RFC 5454 §2.2, §5)."""


# tshark ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TsharkRun:
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty HOME, so a personal Wireshark profile or plugin on this machine cannot change the results."""
    return tmp_path_factory.mktemp("wireshark-home")


def tshark_process(
    home: Path, args: Sequence[str], load_script: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run tshark with ``home`` as HOME, loading our dissector (after ``-G report`` if that is asked for)."""
    binary = shutil.which("tshark")
    assert binary, "tshark is not installed (tools/provision.sh installs it)"
    extra = tshark_args() if load_script else []
    command = [binary, *args[:2], *extra, *args[2:]] if args[:1] == ["-G"] else [binary, *extra, *args]
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)


def run_tshark(home: Path, *args: str, load_script: bool = True) -> TsharkRun:
    """Run tshark (with our dissector unless told otherwise); exit status 0 and no Lua complaint required."""
    result = tshark_process(home, list(args), load_script)
    assert result.returncode == 0, result.stderr
    stderr = "\n".join(line for line in result.stderr.splitlines() if line.strip() != ROOT_WARNING)
    for word in ("Lua", "lua", "dsmipv4"):
        assert word not in stderr, stderr
    return TsharkRun(result.stdout, stderr)


def fields(
    home: Path, pcap: Path, names: Sequence[str], display_filter: str = ""
) -> dict[int, dict[str, str]]:
    """``tshark -T fields`` for ``names``, by frame number; several occurrences are joined with commas."""
    args = ["-r", str(pcap), "-T", "fields", "-E", "separator=|", "-e", "frame.number"]
    for name in names:
        args += ["-e", name]
    if display_filter:
        args += ["-Y", display_filter]
    rows = [line.split("|") for line in run_tshark(home, *args).stdout.splitlines()]
    return {int(row[0]): dict(zip(names, row[1:], strict=True)) for row in rows}


def matching_frames(home: Path, pcap: Path, display_filter: str) -> list[int]:
    return sorted(fields(home, pcap, [], display_filter))


@dataclass
class Packet:
    """One frame of ``tshark -T pdml``: every field, and the experts our dissector attached."""

    fields: list[tuple[str, str, str]] = field(default_factory=list)
    """(name, show, showname) in document order."""
    experts: dict[str, str] = field(default_factory=dict)
    """dsmipv4.* expert name -> severity ("Error", "Warning", "Note", ...)."""

    def names(self) -> set[str]:
        return {name for name, _, _ in self.fields}

    def shows(self, name: str) -> list[str]:
        return [show for field_name, show, _ in self.fields if field_name == name]

    def shownames(self, name: str) -> list[str]:
        return [showname for field_name, _, showname in self.fields if field_name == name]


def pdml(home: Path, pcap: Path) -> dict[int, Packet]:
    root = ElementTree.fromstring(run_tshark(home, "-r", str(pcap), "-T", "pdml").stdout)
    packets: dict[int, Packet] = {}
    for number, element in enumerate(root.iter("packet"), start=1):
        packet = Packet()
        for item in element.iter("field"):
            name = item.get("name", "")
            packet.fields.append((name, item.get("show", ""), item.get("showname", "")))
            if name == "_ws.expert":
                children = {child.get("name", ""): child for child in item}
                severity = (
                    children["_ws.expert.severity"].get("showname", "").removeprefix("Severity level: ")
                )
                for child_name in children:
                    if child_name.startswith("dsmipv4."):
                        packet.experts[child_name] = severity
        packets[number] = packet
    return packets


def assert_no_lua_error(packet: Packet) -> None:
    assert "_ws.lua.error" not in packet.names()
    assert "dsmipv4.internal_error" not in packet.experts
    assert not [text for _, _, text in packet.fields if text.startswith("Lua Error")]


# Frames ---------------------------------------------------------------------------------------------------


def request_to_ha(extensions: tuple[Extension, ...], flags: RegistrationFlag) -> RegistrationRequest:
    return RegistrationRequest(flags, 300, HOA, HA, COA, 0xE8A1B2C300000001, extensions)


def dsmip_request() -> bytes:
    """RRQ with D set: NAI, prefix requests for a /48, a /64 and a link-local (255), Tunneling Mode."""
    extensions = (
        NaiExtension("mn1@example.net"),
        PrefixRequest.for_network(PREFIX_48),
        PrefixRequest.for_network(PREFIX_64),
        PrefixRequest.for_link_local(LINK_LOCAL),
        TunnelingMode(),
    )
    return build_request(request_to_ha(extensions, RegistrationFlag.D | RegistrationFlag.T), MN_HA)


def dsmip_reply() -> bytes:
    """RRP answering dsmip_request: code 0 (to HoA), 1 (to CoA), 8 (rejected) for the link-local one."""
    answers = (
        (PREFIX_48, PrefixReplyCode.ACCEPTED_TO_HOA),
        (PREFIX_64, PrefixReplyCode.ACCEPTED_TO_COA),
    )
    replies = [PrefixReply.answering(PrefixRequest.for_network(network), code) for network, code in answers]
    link_local = PrefixRequest.for_link_local(LINK_LOCAL)
    replies.append(PrefixReply.answering(link_local, PrefixReplyCode.REJECTED_UNSPECIFIED))
    return build_reply(RegistrationReply(0, 300, HOA, HA, 0xE8A1B2C300000001, tuple(replies)), MN_HA)


def every_code_reply() -> bytes:
    """RRP with one Prefix Reply per known code, plus reserved accept (3) and reserved reject (200) codes."""
    codes = [*PrefixReplyCode, 3, 200]
    replies = tuple(
        PrefixReply(int(code), 48, IPv6Address(f"2001:db8:{0x10 + index:x}::"))
        for index, code in enumerate(codes)
    )
    return build_reply(RegistrationReply(0, 300, HOA, HA, 7, replies), MN_HA)


def plain_request() -> bytes:
    """A MIPv4 RRQ with no DSMIPv4 extension (UDP Tunnel Request only)."""
    udp_tunnel = UdpTunnelRequest(force=True, r_flag=False, encapsulation=0)
    return build_request(request_to_ha((udp_tunnel,), RegistrationFlag.D), MN_HA)


def to_ha(message: bytes) -> bytes:
    return udp_packet(message, str(COA), str(HA), sport=MN_PORT)


def to_mn(message: bytes) -> bytes:
    return udp_packet(message, str(HA), str(COA), sport=434, dport=MN_PORT)


def fixed_request(flags: RegistrationFlag = RegistrationFlag.D) -> bytes:
    """The 24-byte fixed part of an RRQ, no extension: malformed ones are appended by hand."""
    return request_to_ha((), flags).encode()


def fixed_reply() -> bytes:
    return RegistrationReply(0, 300, HOA, HA, 1, ()).encode()


GOOD_FRAMES = {1: "dsmip request", 2: "dsmip reply", 3: "every code reply", 4: "plain request"}


@pytest.fixture(scope="module")
def good_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    packets = [
        to_ha(dsmip_request()),
        to_mn(dsmip_reply()),
        to_mn(every_code_reply()),
        to_ha(plain_request()),
    ]
    return write_pcap(tmp_path_factory.mktemp("dsmipv4-good") / "good.pcap", packets)


@dataclass(frozen=True)
class Malformed:
    name: str
    message: bytes
    experts: dict[str, str]
    """Exactly the dsmipv4.* experts expected on this frame, with their severity."""


PREFIX_REQUEST_48 = PrefixRequest.for_network(IPv6Network("2001:db8::/48")).encode()
MN_HA_EXTENSION = AuthenticationExtension(32, 0x100, bytes(16)).encode()

MALFORMED = (
    Malformed(
        "truncated: Length 18, 8 bytes left",
        fixed_request() + PREFIX_REQUEST_48[:10],
        {"dsmipv4.truncated": ERROR},
    ),
    Malformed(
        "truncated after a good prefix request",
        fixed_request() + PREFIX_REQUEST_48 + PREFIX_REQUEST_48[:5],
        {"dsmipv4.truncated": ERROR},
    ),
    Malformed("no Length byte", fixed_request() + bytes([152]), {"dsmipv4.truncated": ERROR}),
    Malformed("Length 0, no subtype", fixed_request() + bytes([152, 0]), {"dsmipv4.no_subtype": ERROR}),
    Malformed(
        "prefix request with Length 5",
        fixed_request() + bytes([152, 5, 1, 48, 0, 0, 0]),
        {"dsmipv4.bad_length": ERROR},
    ),
    Malformed(
        "prefix length 200",
        fixed_request() + bytes([152, 18, 1, 200]) + DOCUMENTATION.packed,
        {"dsmipv4.bad_prefix_len": ERROR},
    ),
    Malformed(
        "unknown subtype 9",
        fixed_request() + bytes([152, 3, 9, 1, 2]),
        {"dsmipv4.unknown_subtype": NOTE},
    ),
    Malformed(
        "host bits past a /16",
        fixed_request() + bytes([152, 18, 1, 16]) + IPv6Address("2001:db8::1").packed,
        {"dsmipv4.host_bits": WARNING},
    ),
    Malformed(
        "prefix length 255 with a global address",
        fixed_request() + bytes([152, 18, 1, 255]) + DOCUMENTATION.packed,
        {"dsmipv4.not_link_local": WARNING},
    ),
    Malformed(
        "Tunneling Mode without the D flag",
        fixed_request(RegistrationFlag(0)) + TunnelingMode().encode(),
        {"dsmipv4.tunneling_mode_without_d": WARNING},
    ),
    Malformed(
        "two Tunneling Modes",
        fixed_request() + TunnelingMode().encode() * 2,
        {"dsmipv4.tunneling_mode_repeated": WARNING},
    ),
    Malformed(
        "Prefix Reply in a request",
        fixed_request() + PrefixReply(0, 48, DOCUMENTATION).encode(),
        {"dsmipv4.wrong_message": WARNING},
    ),
    Malformed(
        "Prefix Request in a reply",
        fixed_reply() + PREFIX_REQUEST_48,
        {"dsmipv4.wrong_message": WARNING},
    ),
    Malformed(
        "after the MN-HA authentication",
        fixed_request() + MN_HA_EXTENSION + PREFIX_REQUEST_48,
        {"dsmipv4.after_mn_ha": WARNING},
    ),
    Malformed(
        "reserved byte set",
        fixed_reply() + PrefixReply(0, 48, DOCUMENTATION, reserved=7).encode(),
        {"dsmipv4.reserved_nonzero": NOTE},
    ),
)


@pytest.fixture(scope="module")
def malformed_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    packets = [to_mn(case.message) if case.message[0] == 3 else to_ha(case.message) for case in MALFORMED]
    return write_pcap(tmp_path_factory.mktemp("dsmipv4-malformed") / "malformed.pcap", packets)


@pytest.fixture(scope="module")
def malformed_packets(home: Path, malformed_pcap: Path) -> dict[int, Packet]:
    return pdml(home, malformed_pcap)


SNAPLEN = 90


@pytest.fixture(scope="module")
def snapped_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dsmip_request with a snaplen of 90 bytes (189 on the wire): the capture ends inside the first prefix
    request (frame bytes 83-102, after Ethernet 14 + IPv4 20 + UDP 8 + fixed part 24 + NAI 17)."""
    ip_packet = to_ha(dsmip_request())
    frame = bytes(
        dpkt.ethernet.Ethernet(src=MN_MAC, dst=HA_MAC, type=dpkt.ethernet.ETH_TYPE_IP, data=ip_packet)
    )
    path = tmp_path_factory.mktemp("dsmipv4-snapped") / "snapped.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, dpkt.pcap.DLT_EN10MB)
    record = struct.pack("<IIII", 1_700_000_000, 0, SNAPLEN, len(frame)) + frame[:SNAPLEN]
    path.write_bytes(header + record)
    return path


# What we encoded ------------------------------------------------------------------------------------------


def encoded_fields(raw: bytes) -> dict[str, str]:
    """The dsmipv4.* values a correct decoder must show for ``raw``, from our own decoder's view of it."""
    message = decode_message(raw)
    dsmip = [e for e in message.extensions if isinstance(e, PrefixRequest | PrefixReply | TunnelingMode)]
    prefixed = [e for e in dsmip if isinstance(e, PrefixRequest | PrefixReply)]
    replies = [e for e in dsmip if isinstance(e, PrefixReply)]
    return {
        "dsmipv4.type": ",".join("152" for _ in dsmip),
        "dsmipv4.length": ",".join(str(e.encode()[1]) for e in dsmip),
        "dsmipv4.subtype": ",".join(str(e.subtype) for e in dsmip),
        "dsmipv4.prefix_len": ",".join(str(e.prefix_length) for e in prefixed),
        "dsmipv4.prefix": ",".join(str(e.prefix) for e in prefixed),
        "dsmipv4.link_local": ",".join("1" if e.is_link_local else "0" for e in prefixed),
        "dsmipv4.code": ",".join(str(e.code) for e in replies),
        "dsmipv4.accepted": ",".join("1" if e.accepted else "0" for e in replies),
    }


FIELD_NAMES = [
    "dsmipv4.type",
    "dsmipv4.length",
    "dsmipv4.subtype",
    "dsmipv4.prefix_len",
    "dsmipv4.prefix",
    "dsmipv4.link_local",
    "dsmipv4.code",
    "dsmipv4.accepted",
]


def normalised(row: dict[str, str]) -> dict[str, str]:
    """Booleans as 1/0 whatever the tshark version prints (4.0 prints 1/0, later ones True/False)."""
    return {name: value.replace("True", "1").replace("False", "0") for name, value in row.items()}


@pytest.fixture(scope="module")
def good_rows(home: Path, good_pcap: Path) -> dict[int, dict[str, str]]:
    return {number: normalised(row) for number, row in fields(home, good_pcap, FIELD_NAMES).items()}


@pytest.fixture(scope="module")
def good_packets(home: Path, good_pcap: Path) -> dict[int, Packet]:
    return pdml(home, good_pcap)


# Tests ----------------------------------------------------------------------------------------------------


def test_helper_points_at_the_script() -> None:
    assert DISSECTOR.is_absolute() and DISSECTOR.is_file()
    assert DISSECTOR.name == "dsmipv4.lua"
    assert tshark_args() == ["-X", f"lua_script:{DISSECTOR}"]


def test_fields_are_registered_when_run_as_this_user(home: Path) -> None:
    """Lua runs for root too (Debian's init.lua: run_user_scripts_when_superuser = true)."""
    registered = {}
    for line in run_tshark(home, "-G", "fields").stdout.splitlines():
        columns = line.split("\t")
        if columns[0] == "F" and columns[2].startswith("dsmipv4."):
            registered[columns[2]] = columns[3]
    assert registered["dsmipv4.type"] == "FT_UINT8"
    assert registered["dsmipv4.length"] == "FT_UINT8"
    assert registered["dsmipv4.subtype"] == "FT_UINT8"
    assert registered["dsmipv4.prefix_len"] == "FT_UINT8"
    assert registered["dsmipv4.prefix"] == "FT_IPv6"
    assert registered["dsmipv4.code"] == "FT_UINT8"
    assert registered["dsmipv4.link_local"] == "FT_BOOLEAN"
    assert registered["dsmipv4.accepted"] == "FT_BOOLEAN"


def test_without_the_script_tshark_has_no_dsmipv4(home: Path, good_pcap: Path) -> None:
    """The control: stock tshark 4.0 shows type 152 as raw bytes only (protocol.md §8)."""
    run = run_tshark(home, "-r", str(good_pcap), "-T", "fields", "-e", "mip.ext.type", load_script=False)
    assert run.stdout.splitlines()[0] == "131,152,152,152,152,32"
    unknown = tshark_process(home, ["-r", str(good_pcap), "-Y", "dsmipv4"], load_script=False)
    assert unknown.returncode != 0
    assert "dsmipv4 is neither a field nor a protocol name" in unknown.stderr


def test_request_decodes_as_encoded(good_rows: dict[int, dict[str, str]]) -> None:
    """RFC 5454 §2.1, §2.3: three prefix requests (one link-local, 255) then Tunneling Mode."""
    assert good_rows[1] == encoded_fields(dsmip_request())
    assert good_rows[1]["dsmipv4.prefix"] == "2001:db8:1::,2001:db8:3:4::,fe80::a01:5"
    assert good_rows[1]["dsmipv4.prefix_len"] == "48,64,255"
    assert good_rows[1]["dsmipv4.link_local"] == "0,0,1"
    assert good_rows[1]["dsmipv4.subtype"] == "1,1,1,3"
    assert good_rows[1]["dsmipv4.length"] == "18,18,18,2"
    assert good_rows[1]["dsmipv4.code"] == ""


def test_reply_decodes_as_encoded(good_rows: dict[int, dict[str, str]]) -> None:
    """RFC 5454 §2.2: codes 0 and 1 accepted, 8 rejected; the link-local prefix is echoed with 255."""
    assert good_rows[2] == encoded_fields(dsmip_reply())
    assert good_rows[2]["dsmipv4.code"] == "0,1,8"
    assert good_rows[2]["dsmipv4.accepted"] == "1,1,0"
    assert good_rows[2]["dsmipv4.length"] == "20,20,20"
    assert good_rows[2]["dsmipv4.link_local"] == "0,0,1"
    assert good_rows[3] == encoded_fields(every_code_reply())


def test_message_without_dsmipv4_has_no_tree(good_rows: dict[int, dict[str, str]]) -> None:
    assert set(good_rows[4].values()) == {""}


def test_display_filters(home: Path, good_pcap: Path) -> None:
    assert matching_frames(home, good_pcap, "dsmipv4") == [1, 2, 3]
    assert matching_frames(home, good_pcap, "dsmipv4.subtype == 2 && dsmipv4.code == 0") == [2, 3]
    assert matching_frames(home, good_pcap, "dsmipv4.code == 8 && dsmipv4.prefix == fe80::a01:5") == [2]
    assert matching_frames(home, good_pcap, "dsmipv4.subtype == 3") == [1]
    assert matching_frames(home, good_pcap, "dsmipv4.link_local == 1") == [1, 2]
    assert matching_frames(home, good_pcap, "dsmipv4.prefix_len == 255") == [1, 2]
    assert matching_frames(home, good_pcap, "dsmipv4.prefix == 2001:db8:3::/48") == [1, 2]
    assert matching_frames(home, good_pcap, "dsmipv4.code == 200 && dsmipv4.accepted == 0") == [3]


def test_code_value_strings(good_packets: dict[int, Packet]) -> None:
    """Every PrefixReplyCode gets its name; 2-7 and 10-255 are the reserved accept / reject ranges."""
    shown = good_packets[3].shownames("dsmipv4.code")
    expected = [f"Code: {CODE_LABELS[code]} ({int(code)})" for code in PrefixReplyCode]
    expected += ["Code: Reserved accept code (3)", "Code: Reserved reject code (200)"]
    assert shown == expected
    assert set(CODE_LABELS) == set(PrefixReplyCode)


def test_subtype_names_and_subtree_titles(good_packets: dict[int, Packet]) -> None:
    request, reply = good_packets[1], good_packets[2]
    assert request.shownames("dsmipv4.subtype") == [
        "Subtype: IPv6 Prefix Request (1)",
        "Subtype: IPv6 Prefix Request (1)",
        "Subtype: IPv6 Prefix Request (1)",
        "Subtype: IPv6 Tunneling Mode (3)",
    ]
    assert request.shownames("dsmipv4.extension") == [
        "DSMIPv4 Extension: IPv6 Prefix Request, 2001:db8:1::/48",
        "DSMIPv4 Extension: IPv6 Prefix Request, 2001:db8:3:4::/64",
        "DSMIPv4 Extension: IPv6 Prefix Request, link-local fe80::a01:5",
        "DSMIPv4 Extension: IPv6 Tunneling Mode (tunnel IPv6 to the care-of address)",
    ]
    assert reply.shownames("dsmipv4.extension")[2] == (
        "DSMIPv4 Extension: IPv6 Prefix Reply, link-local fe80::a01:5, code 8 (rejected)"
    )
    assert "Prefix Length: 255 (link-local address)" in reply.shownames("dsmipv4.prefix_len")


def test_info_column_summary(home: Path, good_pcap: Path) -> None:
    info = fields(home, good_pcap, ["_ws.col.Info"])
    assert info[1]["_ws.col.Info"].endswith(
        "[DSMIPv4: 2 x prefix request, link-local request, tunneling mode]"
    )
    assert info[2]["_ws.col.Info"].endswith("[DSMIPv4: 2 x prefix accepted, prefix rejected]")
    assert "DSMIPv4" not in info[4]["_ws.col.Info"]


def test_well_formed_frames_raise_no_warning(
    home: Path, good_pcap: Path, good_packets: dict[int, Packet]
) -> None:
    """Only the Note for each rejected prefix (RFC 5454 §2.2 codes 8-255), nothing at Warning or above."""
    assert matching_frames(home, good_pcap, "_ws.expert.severity >= warning || _ws.malformed") == []
    for packet in good_packets.values():
        assert_no_lua_error(packet)
    assert good_packets[1].experts == {}
    assert good_packets[2].experts == {"dsmipv4.rejected": NOTE}
    assert good_packets[4].experts == {}


@pytest.mark.parametrize("number", range(1, len(MALFORMED) + 1), ids=[case.name for case in MALFORMED])
def test_malformed_extension_gives_expert_info(malformed_packets: dict[int, Packet], number: int) -> None:
    case = MALFORMED[number - 1]
    packet = malformed_packets[number]
    assert_no_lua_error(packet)
    assert packet.experts == case.experts


def test_truncated_extension_details(
    home: Path, malformed_pcap: Path, malformed_packets: dict[int, Packet]
) -> None:
    """The truncated extension shows its Type, Length and the 8 bytes that are there; the good one before it
    in frame 2 is still decoded."""
    truncated = malformed_packets[1]
    assert truncated.shows("dsmipv4.type") == ["152"]
    assert truncated.shows("dsmipv4.length") == ["18"]
    assert truncated.shows("dsmipv4.data") == [":".join(f"{b:02x}" for b in PREFIX_REQUEST_48[2:10])]
    assert "dsmipv4.prefix" not in truncated.names()
    messages = [show for name, show, _ in truncated.fields if name == "_ws.expert.message"]
    assert "Length 18 runs past the end of the message (8 bytes left after the Length byte)" in messages
    after_good = malformed_packets[2]
    assert after_good.shows("dsmipv4.prefix") == ["2001:db8::"]
    assert after_good.shows("dsmipv4.length") == ["18", "18"]
    assert matching_frames(home, malformed_pcap, "dsmipv4.truncated") == [1, 2, 3]


def test_capture_cut_is_not_reported_as_malformed(home: Path, snapped_pcap: Path) -> None:
    """A frame cut by the snaplen (not by a bad Length) gets a Warning, not the truncation Error."""
    packets = pdml(home, snapped_pcap)
    assert_no_lua_error(packets[1])
    assert packets[1].experts == {"dsmipv4.capture_cut": WARNING}
    assert packets[1].shows("dsmipv4.length") == ["18"]
    assert packets[1].shows("dsmipv4.data") == [
        ":".join(f"{b:02x}" for b in PrefixRequest.for_network(PREFIX_48).encode()[2:7])
    ]


def test_loading_twice_is_harmless(tmp_path: Path, good_pcap: Path) -> None:
    """Installed in the personal plugins folder (docs/wireshark.md), alone and with -X lua_script as well."""
    plugins = tmp_path / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copy(DISSECTOR, plugins / DISSECTOR.name)
    for load_script in (False, True):
        args = ["-r", str(good_pcap), "-T", "fields", "-e", "dsmipv4.code"]
        codes = run_tshark(tmp_path, *args, load_script=load_script).stdout.splitlines()
        assert codes[:2] == ["", "0,1,8"]


def random_extensions(rng: random.Random) -> bytes:
    """A few extensions, mostly type 152 with any subtype, Length and contents, sometimes cut short."""
    data = b""
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.6:
            subtype = rng.choice((1, 2, 3, 0, 4, 255))
            length = rng.choice((0, 1, 2, 18, 20, rng.randint(0, 255)))
            body = bytes([subtype, rng.choice((0, 48, 64, 128, 129, 255))])
            body += bytes(rng.randint(0, 255) for _ in range(max(0, length - 2)))
            data += bytes([152, length]) + body[:length]
        elif kind < 0.8:
            data += bytes([rng.choice((32, 36, 44, 130, 131, 144))])
            data += bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 8)))
        else:
            data += bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 24)))
    return data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data


def test_random_extensions_never_cause_a_lua_error(home: Path, tmp_path: Path) -> None:
    """Garbage after the fixed part (seeded, reproducible) may give expert info, never a Lua error."""
    rng = random.Random(5454)
    packets = []
    for _ in range(300):
        if rng.random() < 0.5:
            flags = RegistrationFlag(rng.randint(0, 255))
            packets.append(to_ha(fixed_request(flags) + random_extensions(rng)))
        else:
            packets.append(to_mn(fixed_reply() + random_extensions(rng)))
    pcap = write_pcap(tmp_path / "random.pcap", packets)
    decoded = pdml(home, pcap)
    assert len(decoded) == len(packets)
    for packet in decoded.values():
        assert_no_lua_error(packet)
    assert sum("dsmipv4.subtype" in packet.names() for packet in decoded.values()) > 100
