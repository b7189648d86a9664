"""Reading a run folder's pcaps for verdicts (dpkt): every IP packet of an Ethernet capture with its time.

The one reader of captures for reports/ and the scenarios' own look-ups; a file tcpdump never finished
writing the header of yields nothing (:func:`readable` tells it apart).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def readable(pcap: Path) -> bool:
    """Whether ``pcap`` has a pcap file header dpkt can read."""
    import dpkt

    with pcap.open("rb") as handle:
        try:
            dpkt.pcap.Reader(handle)
        except (ValueError, dpkt.dpkt.NeedData):
            return False
    return True


def ip_packets(pcap: Path) -> Iterator[tuple[float, Any]]:
    """(wall-clock time, ``dpkt.ip.IP`` or ``dpkt.ip6.IP6``) of every IP packet of an Ethernet capture."""
    import dpkt

    with pcap.open("rb") as handle:
        try:
            reader = dpkt.pcap.Reader(handle)
        except (ValueError, dpkt.dpkt.NeedData):
            return
        for timestamp, frame in reader:
            try:
                ip = dpkt.ethernet.Ethernet(frame).data
            except (dpkt.dpkt.UnpackError, dpkt.dpkt.NeedData):
                continue
            if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                yield float(timestamp), ip


def ipv4_packets(pcap: Path) -> Iterator[tuple[float, Any]]:
    """(wall-clock time, ``dpkt.ip.IP``) of every IPv4 packet of an Ethernet capture."""
    import dpkt

    for timestamp, ip in ip_packets(pcap):
        if isinstance(ip, dpkt.ip.IP):
            yield timestamp, ip
