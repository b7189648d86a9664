"""Reading a run folder's pcaps for verdicts: every IPv4 packet of a capture with its time (dpkt)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def ipv4_packets(pcap: Path) -> Iterator[tuple[float, Any]]:
    """(wall-clock time, ``dpkt.ip.IP``) of every IPv4 packet of an Ethernet capture; nothing for a file
    tcpdump never finished writing the header of."""
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
            if isinstance(ip, dpkt.ip.IP):
                yield float(timestamp), ip
