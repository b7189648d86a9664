"""Frame Mobile IP payloads into pcap files for independent decoders (tshark, mipdump).

dpkt builds the Ethernet/IPv4/UDP/ICMP framing and its checksums, so nothing here trusts our own IP code.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

MN_MAC = bytes.fromhex("020000000001")
HA_MAC = bytes.fromhex("020000000002")


def udp_packet(
    payload: bytes, src: str, dst: str, sport: int = 49152, dport: int = 434, ttl: int = 64
) -> bytes:
    """An IPv4/UDP packet carrying `payload`, checksums computed by dpkt."""
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_UDP, ttl=ttl, data=udp
    )
    ip.len = len(ip)
    return bytes(ip)


def icmp_packet(message: bytes, src: str, dst: str, ttl: int = 1) -> bytes:
    """An IPv4 packet carrying an already encoded ICMP message (our checksum kept as is)."""
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_ICMP, ttl=ttl)
    ip.data = message
    ip.len = 20 + len(message)
    return bytes(ip)


def write_pcap(path: Path, ip_packets: list[bytes]) -> Path:
    """Write IPv4 packets as Ethernet frames, one per second of capture time."""
    with path.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for index, packet in enumerate(ip_packets):
            frame = dpkt.ethernet.Ethernet(
                src=MN_MAC, dst=HA_MAC, type=dpkt.ethernet.ETH_TYPE_IP, data=packet
            )
            writer.writepkt(bytes(frame), ts=1_700_000_000 + index)
    return path
