"""The dual-stack topology built with Mininet (root): routes work, and net.stop() leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from topologies.build import NamesInUseError, build_network, configure, run_checked
from topologies.dualstack import DualStackTopo, process_tag

pytestmark = [pytest.mark.mininet, pytest.mark.root]

ECHO_SERVER = """\
import socket, sys
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
sock.bind(("::", int(sys.argv[1])))
print("READY", flush=True)
while True:
    data, peer = sock.recvfrom(2048)
    sock.sendto(data, peer)
"""

ECHO_CLIENT = """\
import socket, sys
address, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in address else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as sock:
    sock.settimeout(1.0)
    for attempt in range(5):
        payload = b"dsmip-echo-%d" % attempt
        sock.sendto(payload, (address, port))
        try:
            if sock.recvfrom(2048)[0] == payload:
                print("echoed")
                sys.exit(0)
        except TimeoutError:
            pass
print("no echo from", address)
sys.exit(1)
"""
PORT = 7007


def root_state() -> dict[str, set[str]]:
    """Root-namespace links and bridges, named network namespaces, and this process's children."""

    def names(command: list[str]) -> set[str]:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}

    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {
        "links": names(["ip", "-o", "link", "show"]),
        "bridges": names(["ip", "-o", "link", "show", "type", "bridge"]),
        # the netns tier names its own namespaces dsm-t<pid>-<n>; a concurrent run of it is not ours
        "netns": {line.split()[0] for line in netns.splitlines() if line and not line.startswith("dsm-t")},
        "children": children(),
    }


def children() -> set[str]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(f"{entry.name} {stat.split(' ', 2)[1]}")
    return found


def echo(node: Any, address: str, script: Path) -> str:
    return run_checked(node, f"{sys.executable} {script} {address} {PORT}")


def test_mininet_dualstack_reaches_and_cleans_up(tmp_path: Path) -> None:
    server, client = tmp_path / "server.py", tmp_path / "client.py"
    server.write_text(ECHO_SERVER)
    client.write_text(ECHO_CLIENT)
    before = root_state()
    tag = process_tag()  # root-namespace names of their own: a concurrent run is never touched
    topo = DualStackTopo(tag=tag)
    net = build_network(topo)
    started = []
    try:
        configure(net, topo)
        assert topo.rootInterfaces() <= root_state()["links"]
        started.append(
            net["ha"].start_process(
                [sys.executable, str(server), str(PORT)], tmp_path / "echo.log", ready=b"READY"
            )
        )
        assert "echoed" in echo(net["cn"], "192.0.2.1", client)  # cn → r0 → home LAN, IPv4
        assert "echoed" in echo(net["cn"], "2001:db8:0:1::1", client)  # and IPv6
        assert "echoed" in echo(net["fa1"], "192.0.2.1", client)  # a visited network reaches the HA
        assert run_checked(net["fa1"], "cat /proc/sys/net/ipv6/conf/all/disable_ipv6").strip() == "1"
        assert "2001:db8:10::/48 via 2001:db8:0:1::1" in run_checked(net["r0"], "ip -6 route")
        assert "MASQUERADE" in run_checked(net["nat1"], "iptables -t nat -S POSTROUTING")
        home = f"ds{tag}home"
        assert f"master {home}" in run_checked(net[home], f"ip -o link show {home}-mn1")
        assert started[0].stop() == -15
    finally:
        for process in started:
            process.stop()
        net.stop()
    after = root_state()
    for key in ("links", "bridges", "netns", "children"):
        assert after[key] - before[key] == set(), key
    assert not topo.rootInterfaces() & after["links"]


def test_names_in_use_are_refused_and_left_alone() -> None:
    """A bridge of that name (another run's) is left alone: Mininet's LinuxBridge.start would delete it."""
    topo = DualStackTopo(tag=process_tag())
    taken = f"ds{topo.tag}a2"
    subprocess.run(["ip", "link", "add", taken, "type", "bridge"], check=True, capture_output=True)
    try:
        before = root_state()
        with pytest.raises(NamesInUseError, match=taken):
            build_network(topo)
        assert root_state() == before
    finally:
        subprocess.run(["ip", "link", "del", taken], check=True, capture_output=True)
