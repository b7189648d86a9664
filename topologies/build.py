"""Turn a topology into a running Mininet network and apply its node specs (addresses, routes, sysctls, NAT).

Mininet runs with Linux bridges and no controller (no Open vSwitch on this kernel, design §3). Every
command run in a node is checked: a failure raises :class:`ConfigureError` naming the node, the command
and its output.
"""

from __future__ import annotations

import os
import time
from typing import Any

from mininet.net import Mininet
from mininet.nodelib import LinuxBridge

from topologies.spec import NodeSpec

_STATUS = "__dsmip_exit_status="


class ConfigureError(RuntimeError):
    """A configuration command failed inside a node."""


def build_network(topo: Any) -> Any:
    """Build and start ``topo`` (bridges up, hosts in their namespaces); the caller must ``net.stop()``.

    Mininet normally raises root-namespace sysctls on first use (``fixLimits``: socket buffers, ARP cache
    sizes, ...). Those would outlive the run, so it is skipped: the testbed needs none of them.
    """
    if os.geteuid() != 0:
        raise PermissionError("building a Mininet network needs root (network namespaces, veth, bridges)")
    Mininet.inited = True  # skip Mininet.init(): its root check exits the process, fixLimits changes the host
    net = Mininet(
        topo=topo,
        switch=LinuxBridge,
        controller=None,
        autoSetMacs=True,
        waitConnected=False,
        build=False,
    )
    try:
        net.build()
        net.start()
    except BaseException:
        net.stop()
        raise
    return net


def run_checked(node: Any, command: str) -> str:
    """Run ``command`` in ``node``'s shell; its output, or :class:`ConfigureError` when it exits non-zero."""
    output = str(node.cmd(f"{command}; echo {_STATUS}$?"))
    text, marker, status = output.rpartition(_STATUS)
    if not marker or status.strip() != "0":
        code, said = status.strip() or "?", text.strip() or "(no output)"
        raise ConfigureError(f"{node.name}: `{command}` failed (exit status {code}): {said}")
    return text


def configure(net: Any, topo: Any, settle_timeout: float = 5.0) -> None:
    """Apply every node spec of ``topo`` to ``net``; then wait until no IPv6 address is tentative."""
    for switch in net.switches:
        _quiet_bridge(switch)
    for name, spec in topo.specs.items():
        configure_node(net[name], spec)
    deadline = time.monotonic() + settle_timeout
    for name, spec in topo.specs.items():
        if any(interface.ipv6_enabled for interface in spec.interfaces.values()):
            _wait_settled(net[name], deadline)


def configure_node(node: Any, spec: NodeSpec) -> None:
    """Sysctls first (IPv6 off where asked, no DAD), then addresses, then routes, then the NAT rule."""
    for key, value in spec.all_sysctls().items():
        run_checked(node, f"sysctl -qw {key}={value}")
    for interface in spec.interfaces.values():
        run_checked(node, f"ip link set dev {interface.name} up")
        for address in interface.ipv4:
            run_checked(node, f"ip -4 addr add {address} dev {interface.name}")
        for address in interface.ipv6:
            run_checked(node, f"ip -6 addr add {address} dev {interface.name} nodad")
    for route in spec.routes:
        run_checked(node, route.command())
    if spec.nat_interface is not None:
        run_checked(node, f"iptables -t nat -A POSTROUTING -o {spec.nat_interface} -j MASQUERADE")


def _quiet_bridge(switch: Any) -> None:
    """No IPv6 on a bridge or its ports in the root namespace: they are pure layer 2, and their router
    solicitations and MLD reports would only add noise to the captures. The settings go with the links."""
    for name in [switch.name, *(str(intf) for intf in switch.intfList() if str(intf) != "lo")]:
        run_checked(switch, f"sysctl -qw net.ipv6.conf.{name}.disable_ipv6=1")


def _wait_settled(node: Any, deadline: float) -> None:
    while True:
        tentative = run_checked(node, "ip -6 -o addr show tentative").strip()
        if not tentative:
            return
        if time.monotonic() >= deadline:
            raise ConfigureError(f"{node.name}: IPv6 addresses still tentative: {tentative}")
        time.sleep(0.1)
