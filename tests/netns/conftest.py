"""Root-only fixtures: network namespaces made (and deleted) by the tests themselves.

Every namespace is named ``dsm-t<pid>-<n>`` so concurrent runs never collide, and teardown deletes
exactly the namespaces this process created (deleting a namespace deletes its veth ends too).
A test here that cannot run (not root, no ``ip``, no TUN) fails; it never skips.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from agents.net.netlink import netns_entered

_counter = itertools.count()


def require_root() -> None:
    """Fail (not skip) when the tier cannot run here."""
    if os.geteuid() != 0:
        pytest.fail("tests/netns needs root (network namespaces, TUN, raw sockets)")
    if shutil.which("ip") is None:
        pytest.fail("tests/netns needs iproute2's `ip`")
    if not os.path.exists("/dev/net/tun"):
        pytest.fail("this kernel has no /dev/net/tun: the userspace datapath cannot run")


@dataclass
class Namespace:
    """One network namespace this test run created."""

    name: str

    def run(self, command: str, check: bool = True) -> str:
        """Run a shell command inside the namespace; returns stdout."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.name, "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"[{self.name}] {command}: {result.stderr.strip()}")
        return result.stdout

    @contextmanager
    def entered(self) -> Iterator[None]:
        with netns_entered(self.name):
            yield

    def snapshot(self) -> dict[str, str]:
        """Links, addresses, routes, rules, proxy neighbours and the sysctls our code touches."""
        commands = {
            # name, flags, MTU, state, qlen; not the qdisc (the kernel attaches one on first up)
            "links": r"ip -o link show | sed 's/^[0-9]*: //; s/ *link\/.*//; s/qdisc [^ ]* //'",
            "addresses": "ip -o addr show",
            "routes4": "ip route show table all",
            "routes6": "ip -6 route show table all",
            "rules4": "ip rule show",
            "rules6": "ip -6 rule show",
            "proxy": "ip neigh show proxy; ip -6 neigh show proxy",
            # packet filter rules (an agent's, or a crashed predecessor's): counters and comments aside
            "iptables": "iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'",
            "nftables": "nft list ruleset",
            "sysctl": "sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding; "
            "sysctl -a 2>/dev/null | grep -E 'proxy_delay|proxy_ndp|proxy_arp ' | sort",
        }
        snapshot = {key: self.run(command) for key, command in commands.items()}
        for key in ("links", "addresses"):
            snapshot[key] = without_fallback_devices(snapshot[key])
        return snapshot


def wait_settled(*spaces: Namespace, timeout: float = 10.0) -> None:
    """Wait until the links of ``spaces`` are up and their IPv6 link-locals are there (no ``linkdown`` route,
    no tentative address, an ``fe80::`` on each veth): a snapshot taken earlier would see the kernel finish
    bringing its own links up as a difference (slow machines, e.g. the emulated VM, show it)."""

    def settled(namespace: Namespace) -> bool:
        routes = namespace.run("ip route show; ip -6 route show")
        addresses = namespace.run("ip -o addr show")
        listing = namespace.run("ip -o link show type veth").splitlines()
        veths = [line.split(":")[1].strip().split("@")[0] for line in listing]
        with_ipv6 = [
            name
            for name in veths
            if namespace.run(f"cat /proc/sys/net/ipv6/conf/{name}/disable_ipv6", check=False).strip() == "0"
        ]
        return (
            "linkdown" not in routes
            and "tentative" not in addresses
            and all(f"{name}    inet6 fe80::" in addresses for name in with_ipv6)
        )

    for namespace in spaces:
        assert wait_until(lambda namespace=namespace: settled(namespace), timeout), (
            f"{namespace.name} not settled"
        )


KERNEL_FALLBACK_DEVICES = ("tunl0", "sit0", "gre0", "gretap0", "erspan0", "ip6tnl0", "ip6gre0", "ip_vti0")
"""The devices a tunnel module adds to every namespace, existing ones included, when it loads (the VM's full
kernel loads ipip/sit/gre on first use, e.g. by the kernel probe): the kernel's, never ours."""


def without_fallback_devices(listing: str) -> str:
    """``ip -o link`` / ``ip -o addr`` lines less those of :data:`KERNEL_FALLBACK_DEVICES` (``sit0@NONE``)."""
    kept = []
    for line in listing.splitlines(keepends=True):
        words = line.split()
        numbered = len(words) > 1 and words[0].rstrip(":").isdigit()  # `ip -o addr`: "3: sit0 inet6 ..."
        name = words[1] if numbered else (words[0] if words else "")
        if name.rstrip(":").split("@")[0] not in KERNEL_FALLBACK_DEVICES:
            kept.append(line)
    return "".join(kept)


@dataclass
class NamespaceFactory:
    created: list[Namespace] = field(default_factory=list)

    def __call__(self) -> Namespace:
        namespace = Namespace(f"dsm-t{os.getpid()}-{next(_counter)}")
        subprocess.run(["ip", "netns", "add", namespace.name], check=True)
        self.created.append(namespace)
        namespace.run("ip link set lo up")
        return namespace

    def cleanup(self) -> None:
        for namespace in reversed(self.created):
            subprocess.run(["ip", "netns", "del", namespace.name], check=False)
        self.created.clear()


@pytest.fixture(scope="module")
def namespaces() -> Iterator[NamespaceFactory]:
    require_root()
    factory = NamespaceFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


def veth(left: Namespace, left_name: str, right: Namespace, right_name: str) -> None:
    """A veth pair between two of our namespaces, both ends up."""
    subprocess.run(
        [
            "ip",
            "link",
            "add",
            left_name,
            "netns",
            left.name,
            "type",
            "veth",
            "peer",
            "name",
            right_name,
            "netns",
            right.name,
        ],
        check=True,
    )
    left.run(f"ip link set {left_name} up")
    right.run(f"ip link set {right_name} up")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def ping(
    namespace: Namespace,
    destination: str,
    source: str | None = None,
    *,
    interface: str | None = None,
    timeout: float = 2.0,
    attempts: int = 3,
) -> bool:
    """ICMP / ICMPv6 echo from inside ``namespace`` (this machine has no ping binary).

    ``interface`` scopes a link-local destination. True when a matching echo reply arrives.
    """
    address = ip_address(destination)
    with namespace.entered():
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        protocol = socket.IPPROTO_ICMP if address.version == 4 else socket.IPPROTO_ICMPV6
        sock = socket.socket(family, socket.SOCK_RAW, protocol)
        scope = socket.if_nametoindex(interface) if interface else 0
    with sock:
        if source:
            sock.bind((source, 0) if family == socket.AF_INET else (source, 0, 0, scope))
        target = (destination, 0) if family == socket.AF_INET else (destination, 0, 0, scope)
        for sequence in range(attempts):
            if _echo_once(sock, target, address, sequence, timeout):
                return True
    return False


def _echo_once(
    sock: socket.socket,
    target: tuple[object, ...],
    address: IPv4Address | IPv6Address,
    sequence: int,
    timeout: float,
) -> bool:
    identifier = os.getpid() & 0xFFFF
    request_type, reply_type = (8, 0) if address.version == 4 else (128, 129)
    body = struct.pack("!HH", identifier, sequence) + b"dsmip-test" * 4
    message = struct.pack("!BBH", request_type, 0, 0) + body
    if address.version == 4:
        message = message[:2] + struct.pack("!H", _checksum(message)) + message[4:]
    sock.sendto(message, target)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, sender = sock.recvfrom(65535)
        except TimeoutError:
            return False
        icmp = data[(data[0] & 0x0F) * 4 :] if address.version == 4 else data
        if ip_address(sender[0].split("%")[0]) == address and icmp[0] == reply_type and icmp[4:8] == body[:4]:
            return True
    return False


@contextmanager
def capture(namespace: Namespace, interface: str) -> Iterator[list[bytes]]:
    """Collect the IP packets (Ethernet header stripped) seen on ``interface`` while the block runs."""
    with namespace.entered():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((interface, 0))
    sock.settimeout(0.1)
    frames: list[bytes] = []
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            try:
                frame = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if frame[12:14] in (b"\x08\x00", b"\x86\xdd"):
                frames.append(frame[14:])

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    try:
        yield frames
    finally:
        time.sleep(0.2)
        stop.set()
        thread.join()
        sock.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
