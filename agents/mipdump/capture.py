"""Find Mobile IP messages in captures and raw input.

Mobile IP messages are UDP port 434 payloads (registration, RFC 5944 §3; tunnel data, RFC 3519 §3.3) and ICMP
type 9/10 agent messages (RFC 5944 §2). pcap/pcapng parsing is dpkt's; this module only walks the layers.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import dpkt

MIP_PORT = 434
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
PCAP_FILE_HEADER = 24
PCAP_RECORD_HEADER = 16


class InputError(Exception):
    """Input that is not a capture, hex string or raw Mobile IP message we can read."""


@dataclass(frozen=True)
class Carrier:
    """Where a message was found: capture frame number and time, IP addresses, ports."""

    frame: int | None = None
    time: float | None = None
    source: str | None = None
    destination: str | None = None
    ttl: int | None = None
    source_port: int | None = None
    destination_port: int | None = None


@dataclass(frozen=True)
class Found:
    """One Mobile IP message: `kind` is "udp" (port 434 payload) or "icmp" (ICMP message)."""

    kind: str
    payload: bytes
    carrier: Carrier


def parse_hex(text: str) -> bytes:
    """Hex with optional whitespace, colons or a 0x prefix."""
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if len(cleaned) % 2:
        raise InputError(f"odd-length hex string ({len(cleaned)} digits): two hex digits per byte")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError as exc:
        raise InputError(f"not a hex string: {exc}") from None
    if not data:
        raise InputError("empty hex string")
    return data


def classify_raw(data: bytes) -> Iterator[Found]:
    """A raw message: an IPv4 packet, a UDP-434 payload (type 1/3/4) or an ICMP agent message (9/10)."""
    if not data:
        raise InputError("empty input")
    if data[0] >> 4 == 4 and len(data) >= 20:
        yield from _from_ip(data, Carrier())
        return
    if data[0] in (9, 10):
        yield Found("icmp", data, Carrier())
    else:
        yield Found("udp", data, Carrier())


def read_capture(data: bytes, label: str) -> Iterator[Found]:
    """Every Mobile IP message in a pcap or pcapng capture held in ``data``, in capture order."""
    pcapng = data[:4] == PCAPNG_MAGIC
    try:
        reader = dpkt.pcapng.Reader(io.BytesIO(data)) if pcapng else dpkt.pcap.Reader(io.BytesIO(data))
    except (ValueError, dpkt.dpkt.Error) as exc:
        raise InputError(f"{label}: not a readable pcap/pcapng file ({exc})") from None
    link = reader.datalink()
    consumed = PCAP_FILE_HEADER
    try:
        for number, (timestamp, frame) in enumerate(reader, start=1):
            consumed += PCAP_RECORD_HEADER + len(frame)
            ip = _network_layer(link, frame)
            if ip is not None:
                yield from _from_ip(ip, Carrier(frame=number, time=float(timestamp)))
    except (ValueError, dpkt.dpkt.Error) as exc:
        raise InputError(f"{label}: truncated or corrupt capture ({exc})") from None
    if not pcapng:
        _check_pcap_complete(data, consumed, label)


def _check_pcap_complete(data: bytes, consumed: int, label: str) -> None:
    """dpkt stops quietly at a cut record; say so instead of pretending the capture ended there."""
    if consumed != len(data):
        raise InputError(
            f"{label}: truncated capture ({len(data) - consumed} bytes of a cut record at the end)"
        )
    if consumed == PCAP_FILE_HEADER:
        return
    little = data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    last_frame_length = 0
    position = PCAP_FILE_HEADER
    while position < len(data):  # walk record lengths only, to find the last record's header
        header = data[position : position + PCAP_RECORD_HEADER]
        captured = int.from_bytes(header[8:12], "little" if little else "big")
        last_frame_length = min(captured, len(data) - position - PCAP_RECORD_HEADER)
        if captured != last_frame_length:
            raise InputError(
                f"{label}: truncated capture (last record cut: {last_frame_length} of {captured} bytes)"
            )
        position += PCAP_RECORD_HEADER + captured


def is_capture(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def _network_layer(link: int, frame: bytes) -> bytes | None:
    """The IPv4 packet inside a link-layer frame, or None for anything else."""
    try:
        if link == dpkt.pcap.DLT_EN10MB:
            eth = dpkt.ethernet.Ethernet(frame)
            return bytes(eth.data) if eth.type == dpkt.ethernet.ETH_TYPE_IP else None
        if link == dpkt.pcap.DLT_LINUX_SLL:
            sll = dpkt.sll.SLL(frame)
            return bytes(sll.data) if sll.ethtype == dpkt.ethernet.ETH_TYPE_IP else None
        if link == 276:  # LINUX_SLL2, what `tcpdump -i any` writes
            sll2 = dpkt.sll2.SLL2(frame)
            return bytes(sll2.data) if sll2.ethtype == dpkt.ethernet.ETH_TYPE_IP else None
    except (dpkt.dpkt.Error, ValueError, IndexError):
        return None
    if link in (dpkt.pcap.DLT_RAW, 12, 14, 228):  # raw IP link types across platforms
        return frame if frame and frame[0] >> 4 == 4 else None
    return None


def _from_ip(packet: bytes, carrier: Carrier) -> Iterator[Found]:
    """UDP 434 payloads and ICMP 9/10 messages inside one IPv4 packet (first fragments only)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return
    header_length = (packet[0] & 0x0F) * 4
    total_length = int.from_bytes(packet[2:4], "big")
    if header_length < 20 or total_length < header_length or len(packet) < header_length:
        return
    if int.from_bytes(packet[6:8], "big") & 0x1FFF:
        return  # a non-first fragment carries no transport header
    body = packet[header_length : min(total_length, len(packet))]
    carrier = Carrier(
        frame=carrier.frame,
        time=carrier.time,
        source=str(ipaddress.IPv4Address(packet[12:16])),
        destination=str(ipaddress.IPv4Address(packet[16:20])),
        ttl=packet[8],
    )
    protocol = packet[9]
    if protocol == 17 and len(body) >= 8:
        yield from _from_udp(body, carrier)
    elif protocol == 1 and body and body[0] in (9, 10):
        yield Found("icmp", body, carrier)


def _from_udp(datagram: bytes, carrier: Carrier) -> Iterator[Found]:
    source_port = int.from_bytes(datagram[0:2], "big")
    destination_port = int.from_bytes(datagram[2:4], "big")
    if MIP_PORT not in (source_port, destination_port):
        return
    yield Found(
        "udp",
        datagram[8:],
        Carrier(
            frame=carrier.frame,
            time=carrier.time,
            source=carrier.source,
            destination=carrier.destination,
            ttl=carrier.ttl,
            source_port=source_port,
            destination_port=destination_port,
        ),
    )
