"""Send one Registration Request (given as hex) to a home agent and print what came back, as JSON.

Run by scenarios inside a node (the attacker's vantage point), e.g. the correspondent::

    python -m scenarios.forge --to 192.0.2.1 --hex 01020000... [--timeout 2]

Prints one line ``{"sent": N, "reply_code": C, "reply_lifetime": L, "identification": I}`` (``reply_code``
null when nothing answered within the timeout). Exit 0 when the datagram was sent, 2 on bad input.
The request itself is built by :mod:`scenarios.forgery` (wrong key, replay of captured bytes).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from ipaddress import IPv4Address

from agents.mip.common.config import MOBILE_IP_PORT
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.registration import RegistrationReply, decode_message


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scenarios.forge", description=__doc__.splitlines()[0])
    parser.add_argument("--to", type=IPv4Address, required=True, help="the home agent's address")
    parser.add_argument("--hex", required=True, help="the UDP payload, hex")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply")
    return parser.parse_args(argv)


def exchange(payload: bytes, home_agent: IPv4Address, timeout: float) -> dict[str, object]:
    """Send ``payload`` to ``home_agent``:434 and wait for one Registration Reply from it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sent = sock.sendto(payload, (str(home_agent), MOBILE_IP_PORT))
        result: dict[str, object] = {"sent": sent, "reply_code": None}
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            return result
    try:
        reply = decode_message(data)
    except DecodeError as error:
        return result | {"error": f"undecodable reply: {error}"}
    if isinstance(reply, RegistrationReply):
        result |= {
            "reply_code": int(reply.code),
            "reply_lifetime": reply.lifetime,
            "identification": reply.identification,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        payload = bytes.fromhex(args.hex)
    except ValueError:
        print("forge: --hex is not an even-length hexadecimal string", file=sys.stderr)
        return 2
    if not 0 < args.timeout <= 60:
        print("forge: --timeout must be more than 0 and at most 60 seconds", file=sys.stderr)
        return 2
    try:
        result = exchange(payload, args.to, args.timeout)
    except OSError as error:
        print(f"forge: cannot send to {args.to}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
