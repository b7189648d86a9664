"""Turn a topology into a running Mininet network and apply its node specs (addresses, routes, sysctls, NAT).

Mininet runs with Linux bridges (:class:`topologies.bridges.TestbedBridge`) and no controller (no Open
vSwitch on this kernel, design §3). Every command run in a node is checked: a failure raises
:class:`ConfigureError` naming the node, the command and its output.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from mininet.net import Mininet

from topologies import ingress
from topologies.bridges import TestbedBridge
from topologies.spec import NodeSpec

_STATUS = "__dsmip_exit_status="
_SENTINEL = chr(127)
"""What a Mininet node's shell prints as its prompt: the end of a command's output."""


class ConfigureError(RuntimeError):
    """A configuration command failed inside a node."""


class NamesInUseError(RuntimeError):
    """Interfaces the topology would create in the root namespace exist already (another run's?)."""


NETWORK_START_TIMEOUT = 60.0
"""Seconds building and starting the network may take: a node whose shell never starts (``mnexec`` failing,
say) would otherwise leave Mininet waiting for its prompt forever."""


class NetworkStartTimeout(RuntimeError):
    """Building or starting the network took too long; nothing of it is left when this is raised."""


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`NetworkStartTimeout` in the main thread if the block runs longer than ``seconds``."""

    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise NetworkStartTimeout(
            f"{what} took longer than {seconds:g} s: a node's shell did not come up (is mnexec working here?)"
        )

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def build_network(topo: Any, start_timeout: float = NETWORK_START_TIMEOUT) -> Any:
    """Build and start ``topo`` (bridges up, hosts in their namespaces); the caller must ``net.stop()``.

    Mininet normally raises root-namespace sysctls on first use (``fixLimits``: socket buffers, ARP cache
    sizes, ...). Those would outlive the run, so it is skipped: the testbed needs none of them.
    A topology whose root-namespace names (``topo.rootInterfaces()``) are taken is refused with
    :class:`NamesInUseError` before anything is built: Mininet would delete the bridge of that name.
    """
    if os.geteuid() != 0:
        raise PermissionError("building a Mininet network needs root (network namespaces, veth, bridges)")
    check_root_names(topo)
    Mininet.inited = True  # skip Mininet.init(): its root check exits the process, fixLimits changes the host
    net = Mininet(
        topo=topo,
        switch=TestbedBridge,
        controller=None,
        autoSetMacs=True,
        waitConnected=False,
        build=False,
    )
    try:
        with time_limit(start_timeout, "building the network"):
            net.build()
            net.start()
    except BaseException:
        stop_network(net)
        raise
    return net


def stop_network(net: Any, timeout: float = 2.0) -> None:
    """``net.stop()``, also after Ctrl-C or SIGTERM cut a node's shell command short.

    Such a node is left ``waiting`` with the command's output unread, and Mininet's next ``cmd`` on it (every
    ``ip link del`` of ``net.stop()``) would fail an assertion and leave the rest of the network standing.
    So the pending output is read first (up to ``timeout`` seconds, then the command is interrupted).
    """
    for node in [*net.hosts, *net.switches]:
        if getattr(node, "waiting", False) and getattr(node, "shell", None) is not None:
            _finish_pending_command(node, timeout)
    net.stop()


def _finish_pending_command(node: Any, timeout: float) -> None:
    """Read ``node``'s shell output up to its prompt (Mininet's sentinel), bounded in time: the node's own
    buffer first, then its pty only when it is readable (Mininet's ``read`` and ``monitor`` can block)."""
    deadline = time.monotonic() + timeout
    interrupted = False
    try:
        while node.waiting:
            if time.monotonic() >= deadline:
                if interrupted:
                    break
                node.sendInt()
                interrupted, deadline = True, time.monotonic() + 1.0
            if node.readbuf:
                data, node.readbuf = node.readbuf, ""
            elif select.select([node.stdout.fileno()], [], [], 0.1)[0]:  # Mininet's pollOut has POLLOUT too
                raw = os.read(node.stdout.fileno(), 1024)
                if not raw:
                    break
                data = node.decoder.decode(raw)
            else:
                continue
            if _SENTINEL in data:
                node.readbuf = data[data.rindex(_SENTINEL) + 1 :]
                node.waiting = False
    except OSError:  # its shell is gone: nothing to read
        pass
    node.waiting = False


def check_root_names(topo: Any) -> None:
    """Raise :class:`NamesInUseError` when an interface ``topo`` would create in the root namespace exists."""
    wanted = topo.rootInterfaces() if hasattr(topo, "rootInterfaces") else set()
    taken = sorted(name for name in wanted if os.path.lexists(f"/sys/class/net/{name}"))
    if taken:
        raise NamesInUseError(
            f"{', '.join(taken)} already exist in the root namespace (another testbed run, or one that did "
            "not tear down?); use another topology tag, or delete them if no run owns them"
        )


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
    for node, interface, netem in getattr(topo, "netem_links", []):
        run_checked(net[node], f"tc qdisc replace dev {interface} root netem {netem}")
    deadline = time.monotonic() + settle_timeout
    for name, spec in topo.specs.items():
        if any(interface.ipv6_enabled for interface in spec.interfaces.values()):
            _wait_settled(net[name], deadline)


TUNNEL_ICMP_FILTER = (
    "table ip dsmip-tunnel-icmp { chain output { type filter hook output priority 0; policy accept; "
    "icmp type destination-unreachable icmp code port-unreachable @th,136,8 { 4, 41, 47, 55 } drop; }; }"
)
"""For an agent's node: no ICMP port unreachable quoting a tunnel packet (IP protocol 4, 41, 47, 55; the
quoted header's protocol byte is bit 136 of the ICMP message). Where the kernel has the ipip/sit/gre modules
loaded (the VM's full kernel), its tunnel receive handler answers every tunnel packet that no tunnel device
takes with that error, although the agent's raw socket has read the packet: the errors would carry the
inner packets (IPv6 inside, on an FA's network link) and make a kernel tunnel at the peer count link
failures. Without those modules no such error is sent and the rule matches nothing."""


def configure_node(node: Any, spec: NodeSpec) -> None:
    """Sysctls first (IPv6 off where asked, no DAD), then addresses, then routes, then the NAT rule and
    the ingress filter (:mod:`topologies.ingress`); an agent's node also gets :data:`TUNNEL_ICMP_FILTER`."""
    for key, value in spec.all_sysctls().items():
        run_checked(node, f"sysctl -qw {key}={value}")
    if spec.role is not None:
        run_checked(node, f"nft '{TUNNEL_ICMP_FILTER}'")
    for interface in spec.interfaces.values():
        run_checked(node, f"ip link set dev {interface.name} up")
        for address in interface.ipv4:
            run_checked(node, f"ip -4 addr add {address} dev {interface.name}")
        for address in interface.ipv6:
            run_checked(node, f"ip -6 addr add {address} dev {interface.name} nodad")
    for route in spec.routes:
        run_checked(node, route.command())
    if spec.nat_interface is not None:
        # --random: each new mapping gets a random public port, as carrier-grade NATs do, so a mapping the
        # NAT forgot comes back on another port (RFC 3519 §4.6: the HA then moves the binding)
        run_checked(node, f"iptables -t nat -A POSTROUTING -o {spec.nat_interface} -j MASQUERADE --random")
    for command in ingress.commands("-A", spec.ingress_filter):
        run_checked(node, command)


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
