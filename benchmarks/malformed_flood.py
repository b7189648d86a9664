"""A flood of malformed datagrams at the real home agent: how many it takes in, and how fast it still answers.

`python -m agents ha` in one namespace and a sender in another (:mod:`benchmarks.ha_testbed`). Each run
sends ``--datagrams`` malformed datagrams to UDP 434 (type 1 and 0–59 random bytes, the shape
tests/netns/test_agents.py floods with) as fast as a non-blocking socket takes them, and one authenticated
registration halfway through. Printed, median over ``--runs``: datagrams sent and the send rate, how many
the home agent counted as malformed (the kernel dropped the others on the way, its receive queues full,
before the agent could read them), and how long the registration sent into the flood waited for its reply.

    sudo .venv/bin/python -m benchmarks.malformed_flood [--datagrams 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from types import FrameType

from agents.net.netlink import netns_entered
from benchmarks.ha_registration import register_first
from benchmarks.ha_testbed import CLIENT_ADDRESS, FIRST_HOME, HA_ADDRESS, Agent, Testbed, ha_config
from benchmarks.registration_load import REPLY_MIN_LENGTH, MobileNodes, open_client, reply_key, request_key

SETTLE_SECONDS = 0.5
"""The home agent's malformed counter is read once it has not moved for this long."""
REPLY_TIMEOUT = 10.0


@dataclass(frozen=True)
class FloodFigures:
    """One run: datagrams handed to the kernel, in how long, how many the agent counted as malformed, and
    the reply time of the registration sent halfway (``None``: no reply within :data:`REPLY_TIMEOUT`)."""

    sent: int
    send_seconds: float
    counted: int
    reply_ms: float | None
    reply_code: int | None


def malformed(index: int) -> bytes:
    """Datagram ``index`` of a flood: a Registration Request type byte and too few random bytes."""
    return bytes([1]) + os.urandom(index % 60)


def malformed_count(agent: Agent) -> int:
    return int(agent.ask("status")["counters"].get("malformed", 0))


def settled_count(agent: Agent) -> int:
    """The malformed counter once the agent has read everything queued for it."""
    count = malformed_count(agent)
    while True:
        time.sleep(SETTLE_SECONDS)
        now = malformed_count(agent)
        if now == count:
            return count
        count = now


def matching_reply(sock: socket.socket, key: bytes) -> bytes | None:
    """Read what is queued on the non-blocking ``sock``: the reply to the request with ``key``, if there."""
    while True:
        try:
            data = sock.recv(2048)
        except BlockingIOError:
            return None
        if len(data) >= REPLY_MIN_LENGTH and reply_key(data) == key:
            return data


def flood(sock: socket.socket, agent: Agent, nodes: MobileNodes, datagrams: int) -> FloodFigures:
    """One flood through the connected non-blocking ``sock``; the reply is looked for while it goes on."""
    before = malformed_count(agent)
    request = nodes.batch([0])[0]
    key = request_key(request)
    sent, asked_at = 0, 0.0
    reply: bytes | None = None
    replied_at = 0.0
    began = time.perf_counter()
    for index in range(datagrams):
        if index == datagrams // 2:
            sock.send(request)
            asked_at = time.perf_counter()
        try:
            sock.send(malformed(index))
            sent += 1
        except BlockingIOError:
            time.sleep(0.001)
        if asked_at and reply is None and index % 64 == 0:
            reply = matching_reply(sock, key)
            replied_at = time.perf_counter()
    send_seconds = time.perf_counter() - began
    deadline = time.perf_counter() + REPLY_TIMEOUT
    while reply is None and select.select([sock], [], [], max(0.0, deadline - time.perf_counter()))[0]:
        reply = matching_reply(sock, key)
        replied_at = time.perf_counter()
    counted = settled_count(agent) - before
    if reply is None:
        return FloodFigures(sent, send_seconds, counted, None, None)
    return FloodFigures(sent, send_seconds, counted, (replied_at - asked_at) * 1000, reply[1])


def print_figures(runs: list[FloodFigures], datagrams: int) -> None:
    sent = statistics.median(run.sent for run in runs)
    rate = statistics.median(run.sent / run.send_seconds for run in runs if run.send_seconds > 0)
    counted = statistics.median(run.counted for run in runs)
    replies = [run.reply_ms for run in runs if run.reply_ms is not None]
    codes = sorted({run.reply_code for run in runs if run.reply_code is not None})
    print(f"malformed flood at the home agent: {datagrams:,} datagrams a run, median of {len(runs)} runs")
    print(f"  sent (kernel took them)            {sent:,.0f} at {rate:,.0f} datagrams/s")
    share = 100 * counted / max(sent, 1)
    print(f"  counted malformed by the agent     {counted:,.0f} ({share:.1f} % of sent)")
    if replies:
        answered = f"{len(replies)} of {len(runs)} runs, reply codes {codes}"
        waited = statistics.median(replies)
        print(f"  registration sent into the flood   {waited:.1f} ms to its reply ({answered})")
    else:
        print(f"  registration sent into the flood   no reply within {REPLY_TIMEOUT:g} s in any run")
    print("  (a request or reply the kernel drops in the flood is not sent again here; a mobile node would)")


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=20_000, help="malformed datagrams per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.datagrams < 2 or args.runs < 1:
        parser.error("--datagrams must be at least 2 and --runs at least 1")
    if os.geteuid() != 0:
        print("error: needs root (network namespaces, the agent's TUN and raw sockets)", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM cleans up like Ctrl-C
    bed = Testbed()
    try:
        bed.build()
        config = bed.workdir / "ha.toml"
        config.write_text(ha_config(1))
        agent = bed.start_agent(config, "flood", trace=False)
        with netns_entered(bed.mn):
            sock = open_client(CLIENT_ADDRESS, HA_ADDRESS)
        with sock:
            nodes = MobileNodes(1, HA_ADDRESS, FIRST_HOME)
            register_first(sock, nodes)
            runs = [flood(sock, agent, nodes, args.datagrams) for _ in range(args.runs)]
        print_figures(runs, args.datagrams)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        bed.close()
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
