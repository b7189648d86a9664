"""Send whole IPv4 packets from a raw socket inside a node, bounded in count, rate and time, and print what
was sent as JSON (the security scenario's attacker; the packets come from :mod:`scenarios.spoofing`)::

    python -m scenarios.attack --packets FILE --count N --rate PPS [--max-seconds S]

FILE holds one packet per line, in hex; they are sent in turn, cycling, to each packet's own destination
(IPv4 header bytes 16–19). Prints ``{"sent": N, "seconds": S, "errors": E}``. Exit 0 when it ran, 2 on
bad input. Only the scenario runs it, inside its own namespaces, towards addresses of its own network.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

MAX_COUNT = 1_000_000
MAX_RATE = 200_000.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scenarios.attack", description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=Path, required=True, help="one hex packet per line")
    parser.add_argument("--count", type=int, required=True, help=f"packets to send, 1..{MAX_COUNT}")
    parser.add_argument("--rate", type=float, required=True, help=f"packets per second, 1..{MAX_RATE:g}")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="stop after this long (default 30)")
    return parser.parse_args(argv)


def send(packets: list[bytes], count: int, rate: float, max_seconds: float) -> dict[str, float | int]:
    """Send ``count`` packets cycling through ``packets`` at about ``rate``/s, for at most ``max_seconds``."""
    targets = [(socket.inet_ntoa(packet[16:20]), 0) for packet in packets]
    sent = errors = 0
    started = time.monotonic()
    deadline = started + max_seconds
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        while sent < count and time.monotonic() < deadline:
            for index in range(min(100, count - sent)):
                slot = (sent + index) % len(packets)
                try:
                    sock.sendto(packets[slot], targets[slot])
                except OSError:
                    errors += 1
            sent += min(100, count - sent)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    return {"sent": sent - errors, "seconds": round(time.monotonic() - started, 4), "errors": errors}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        packets = [bytes.fromhex(line) for line in args.packets.read_text().split()]
    except (OSError, ValueError) as error:
        print(f"attack: cannot read {args.packets}: {error}", file=sys.stderr)
        return 2
    if not packets or any(len(packet) < 20 or packet[0] >> 4 != 4 for packet in packets):
        print("attack: every packet must be a whole IPv4 packet", file=sys.stderr)
        return 2
    if not 1 <= args.count <= MAX_COUNT or not 1 <= args.rate <= MAX_RATE or not 0 < args.max_seconds <= 120:
        print(
            f"attack: --count 1..{MAX_COUNT}, --rate 1..{MAX_RATE:g}, --max-seconds up to 120",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(send(packets, args.count, args.rate, args.max_seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
