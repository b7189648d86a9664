"""What a topology says about each node, as plain data: interfaces and addresses, routes, sysctls and the
agent it runs. :func:`topologies.build.configure` applies it; unit tests read it without root."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_interface

from topologies.agent_configs import render_toml

MAX_INTERFACE_NAME = 15
"""Linux interface names are at most IFNAMSIZ - 1 = 15 characters."""

ROLES = ("ha", "fa", "mn")
"""The `python -m agents` roles a node may run."""


@dataclass
class InterfaceSpec:
    """One interface of a node: its name, addresses (``a.b.c.d/len``, ``x::y/len``) and IPv6 switch."""

    name: str
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    ipv6_enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= MAX_INTERFACE_NAME:
            raise ValueError(f"interface name {self.name!r} must be 1..{MAX_INTERFACE_NAME} characters")
        for text in self.ipv4:
            if not isinstance(ip_interface(text), IPv4Interface):
                raise ValueError(f"{self.name}: {text} is not an IPv4 interface address")
        for text in self.ipv6:
            if not isinstance(ip_interface(text), IPv6Interface):
                raise ValueError(f"{self.name}: {text} is not an IPv6 interface address")
        if self.ipv6 and not self.ipv6_enabled:
            raise ValueError(f"{self.name}: IPv6 addresses on an interface with IPv6 disabled")

    @property
    def addresses(self) -> list[IPv4Interface | IPv6Interface]:
        return [ip_interface(text) for text in [*self.ipv4, *self.ipv6]]


@dataclass(frozen=True)
class Route:
    """A static route: ``destination`` (``default`` or a prefix) via a gateway and/or out of ``device``."""

    destination: str
    via: str | None = None
    device: str | None = None
    family: int = 4

    def command(self) -> str:
        """The `ip route add` command line that installs it."""
        words = ["ip", "-6" if self.family == 6 else "-4", "route", "add", self.destination]
        if self.via is not None:
            words += ["via", self.via]
        if self.device is not None:
            words += ["dev", self.device]
        return " ".join(words)


@dataclass
class NodeSpec:
    """Everything :func:`topologies.build.configure` does to one Mininet host, and the agent it runs."""

    name: str
    kind: str = "host"  # "host" or "router" (forwarding on; see topologies.nodes.RouterHost)
    interfaces: dict[str, InterfaceSpec] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    nat_interface: str | None = None
    """MASQUERADE everything leaving this interface (iptables, in the node's own namespace)."""
    ingress_filter: list[str] = field(default_factory=list)
    """Interfaces where packets with a source address that cannot come from there are dropped (BCP 38,
    :mod:`topologies.ingress`)."""
    role: str | None = None
    """The agent role (`ha`, `fa`, `mn`) or None for a node without an agent."""
    agent_config: dict[str, object] | None = None
    """The agent's configuration as TOML-shaped data; :meth:`agent_toml` renders it."""

    def all_sysctls(self) -> dict[str, str]:
        """:attr:`sysctls`, then per interface: IPv6 off where disabled, else no duplicate address detection
        (the testbed's addresses are unique by plan, and DAD would delay them by a second)."""
        result = dict(self.sysctls)
        for name, interface in self.interfaces.items():
            if interface.ipv6_enabled:
                result[f"net.ipv6.conf.{name}.accept_dad"] = "0"
            else:
                result[f"net.ipv6.conf.{name}.disable_ipv6"] = "1"
        return result

    def add_interface(self, interface: InterfaceSpec) -> InterfaceSpec:
        if interface.name in self.interfaces:
            raise ValueError(f"{self.name}: interface {interface.name} defined twice")
        self.interfaces[interface.name] = interface
        return interface

    def agent_toml(self) -> str | None:
        """The agent's configuration file text, or None when the node runs no agent."""
        return None if self.agent_config is None else render_toml(self.agent_config)


@dataclass(frozen=True)
class MobileLink:
    """How a mobile node's one interface is moved: its switch-side ``port`` (root namespace) is detached
    from one bridge and attached to another (``ip link set PORT down master BRIDGE``, then ``up``)."""

    node: str
    interface: str
    """The mobile node's own interface (inside its namespace)."""
    port: str
    """The switch-side veth end in the root namespace: what a move re-attaches."""
    attachments: dict[str, str]
    """Attachment label (``home``, ``fa1``, ``fa2``, ``nat``, ...) → bridge name."""
    initial: str = "home"
    carrier_events: bool = True
    """True: a move takes the port down, re-attaches it and brings it up (a link event the MN sees).
    False: re-attach only; the MN must notice the move from agent advertisements (RFC 5944 §2.4.2)."""

    def bridge(self, label: str) -> str:
        try:
            return self.attachments[label]
        except KeyError:
            known = ", ".join(self.attachments)
            raise KeyError(f"{self.node}: no attachment {label!r} (known: {known})") from None
