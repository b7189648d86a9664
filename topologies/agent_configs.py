"""Agent configurations for the dual-stack topology, as TOML-shaped dicts, and a small TOML writer.

Each dict has the sections `python -m agents <role> --config X` reads (unknown keys are errors there):
`[home_agent]` (RFC 5944 §3.8, RFC 5454), `[foreign_agent]` (RFC 5944 §3.7, RFC 3024), `[mobile_node]`
(RFC 5944 §3.6.1.1, FA care-of address) and `[runtime]`.

Movement detection (RFC 5944 §2.4.2), the ``detection`` parameter:

The agents (FAs and the HA) always advertise their router address with the Prefix-Lengths extension
(§2.1.2), so the mobile node's algorithm 2 detects a new network on the first advertisement it hears there,
and algorithm 1 when the old agent's advertisement expires (3 × ``adv_interval``).

* ``"link"``: moves drop the carrier, and the mobile node's carrier watcher reacts at once (solicits).
* ``"advert"``: moves keep the carrier up: only the advertisements tell the mobile node it moved.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface

from topologies.addressing import (
    HA4,
    HOME_NETWORK4,
    HOME_ROUTER4,
    HOME_ROUTER6,
    NAT_FA,
    NAT_FA_ACCESS4,
    NAT_FA_CARE_OF4,
    ForeignAgentPlan,
    MobileNodePlan,
)

DETECTIONS = ("link", "advert")
DATAPATHS = ("userspace", "ebpf", "kernel", "auto")
MOBILE_NODE_LIFETIME = 60
"""Seconds the mobile nodes request (RFC 5944 §3.4); the agents allow up to :data:`AGENT_MAX_LIFETIME`."""
AGENT_MAX_LIFETIME = 600
HA_TUNNEL, MN_TUNNEL = "mip-ha", "mip0"

TomlTable = Mapping[str, object]


def home_agent_config(
    mobile_nodes: Sequence[MobileNodePlan],
    *,
    home_interface: str,
    adv_interval: float,
    detection: str = "link",
    datapath: str = "userspace",
    name: str = "ha",
    max_lifetime: int = AGENT_MAX_LIFETIME,
    keepalive_interval: int | None = None,
    journal: str | None = None,
    udp_tunnelling: bool = True,
    simultaneous_bindings: bool = False,
) -> dict[str, object]:
    """The HA on the home link, advertising with the H bit (RFC 5944 §2.1, §2.4.3); it grants at most
    ``max_lifetime`` seconds (a longer request is shortened in the reply, RFC 5944 §3.8.3.1).
    ``simultaneous_bindings``: the run's mobile nodes register with S (make-before-break), so its datapath
    must copy to each care-of address (``auto`` skips kernel, RFC 5944 §3.6.1.3)."""
    advertisement: dict[str, object] = {"advertise_home": True, "max_interval": adv_interval}
    _detection(detection)
    advertisement |= {"router_addresses": [str(HA4)], "prefix_lengths": True}
    accounts = [
        {
            "home_address": str(mn.home_address),
            "spi": mn.spi,
            "key": mn.key,
            "allowed_prefixes": [str(prefix) for prefix in mn.prefixes],
        }
        for mn in mobile_nodes
    ]
    home_agent: dict[str, object] = {
        "address": str(HA4.ip),
        "home_network": str(HOME_NETWORK4),
        "max_lifetime": max_lifetime,
        "reverse_tunnel_supported": True,
        "mobile_nodes": accounts,
    }
    if not udp_tunnelling:  # what the ebpf datapath does not carry is not offered (RFC 5944 §3.8.2.1 code 72)
        home_agent |= {"udp_tunnelling": False, "encapsulations": ["ipip", "gre"]}
    if keepalive_interval is not None:
        home_agent["keepalive_interval"] = keepalive_interval  # K in UDP Tunnel Replies (RFC 3519 §3.2)
    runtime: dict[str, object] = {
        "name": name,
        "home_interface": home_interface,
        "tunnel_interface": HA_TUNNEL,
        "datapath": datapath,
        "advertisement": advertisement,
    }
    if journal is not None:
        runtime["journal"] = journal  # a restarted HA restores its bindings from it (crash recovery)
    if simultaneous_bindings:
        runtime["need_simultaneous_bindings"] = True
    return {"home_agent": home_agent, "runtime": runtime}


def foreign_agent_config(
    plan: ForeignAgentPlan,
    *,
    access_interface: str,
    network_interface: str,
    adv_interval: float,
    detection: str = "link",
    datapath: str = "userspace",
) -> dict[str, object]:
    """An IPv4-only FA: IP-in-IP, reverse tunnelling (RFC 3024); its care-of address is its network end."""
    config = _foreign_agent(
        plan.name, plan.care_of4, plan.access4, access_interface, network_interface, adv_interval, detection
    )
    runtime = config["runtime"]
    assert isinstance(runtime, dict)
    runtime["datapath"] = foreign_agent_datapath(datapath)
    return config


def foreign_agent_datapath(datapath: str) -> str:
    """The FA's backend for a scenario's ``--datapath``: the same, except ``kernel`` (the FA has no kernel
    datapath: userspace)."""
    return "userspace" if datapath == "kernel" else datapath


def nat_foreign_agent_config(
    *,
    access_interface: str,
    network_interface: str,
    adv_interval: float,
    detection: str = "link",
    datapath: str = "userspace",
) -> dict[str, object]:
    """The FA behind the NAT (``fan``): like the others, and it advertises R (registration required) and U
    (UDP tunnelling, behind a NAT), so a co-located mobile node registers through it with the R flag
    (RFC 3519 §3.4, §4.4, §4.11)."""
    config = _foreign_agent(
        NAT_FA, NAT_FA_CARE_OF4, NAT_FA_ACCESS4, access_interface, network_interface, adv_interval, detection
    )
    foreign_agent = config["foreign_agent"]
    assert isinstance(foreign_agent, dict)
    foreign_agent |= {"registration_required": True, "udp_tunnelling": True}
    runtime = config["runtime"]
    assert isinstance(runtime, dict)  # U: RFC 3519, which only the userspace FA carries; auto picks it
    runtime["datapath"] = "userspace" if datapath in ("kernel", "userspace") else "auto"
    return config


def _foreign_agent(
    name: str,
    care_of: IPv4Interface,
    access: IPv4Interface,
    access_interface: str,
    network_interface: str,
    adv_interval: float,
    detection: str,
) -> dict[str, object]:
    advertisement: dict[str, object] = {"max_interval": adv_interval}
    _detection(detection)
    advertisement |= {"router_addresses": [str(access)], "prefix_lengths": True}
    return {
        "foreign_agent": {
            "care_of_addresses": [str(care_of.ip)],
            "max_lifetime": AGENT_MAX_LIFETIME,
            "encapsulations": ["ipip"],
            "reverse_tunnel_supported": True,
            "advertisement": advertisement,
        },
        "runtime": {
            "name": name,
            "access_interface": access_interface,
            "network_interface": network_interface,
        },
    }


def mobile_node_config(
    plan: MobileNodePlan,
    *,
    interface: str,
    detection: str = "link",
    datapath: str = "userspace",
    lifetime: int = MOBILE_NODE_LIFETIME,
    nat_traversal: bool = False,
    agent_wait: float = 0.0,
) -> dict[str, object]:
    """A dual-stack MN registering through foreign agents (RFC 5944 §3.6.1.1, RFC 5454 §3.3.2). At home it
    is a plain host of the home LAN (/24, r0 as IPv4 and IPv6 router, native IPv6; RFC 5944 §4.6).
    A ``plan.colocated`` node registers its own address instead (co-located care-of address, §3.6).
    ``nat_traversal``: care-of mode auto (an FA where one advertises, else the address a visited network's
    DHCP gave) and RFC 3519 UDP tunnelling when that address is behind a NAT; ``agent_wait``: how long it
    waits for an FA requiring registration before registering that address directly (RFC 5944 §3.6)."""
    mobile_node: dict[str, object] = {
        "home_address": str(plan.home_address),
        "home_agent": str(HA4.ip),
        "spi": plan.spi,
        "key": plan.key,
        "lifetime": lifetime,
        "prefixes": [str(prefix) for prefix in plan.prefixes],
        "care_of_mode": "co-located" if plan.colocated else "foreign-agent",
    }
    if nat_traversal:
        mobile_node |= {"care_of_mode": "auto", "udp_tunnelling": "auto", "keepalive_attempts": 2}
        if agent_wait:
            mobile_node["agent_wait"] = agent_wait
    if _detection(detection) == "advert":
        mobile_node["movement_detection"] = "both"  # algorithms 1 and 2 (RFC 5944 §2.4.2.1, §2.4.2.2)
    runtime = {
        "name": plan.name,
        "interface": interface,
        "tunnel_interface": MN_TUNNEL,
        "datapath": datapath,
        "home_prefix_length": HOME_NETWORK4.prefixlen,
        "home_gateway": str(HOME_ROUTER4.ip),
        "home_ipv6_gateway": str(HOME_ROUTER6.ip),
    }
    return {"mobile_node": mobile_node, "runtime": runtime}


def _detection(detection: str) -> str:
    if detection not in DETECTIONS:
        raise ValueError(f"detection {detection!r}: use one of {', '.join(DETECTIONS)}")
    return detection


# -- a TOML writer for the shapes above (tables, arrays of tables, scalars, arrays of scalars) ------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def render_toml(document: TomlTable) -> str:
    """TOML text for ``document``; ``tomllib.loads`` of it gives ``document`` back."""
    lines: list[str] = []
    _render_table(lines, "", document)
    return "\n".join(lines).strip() + "\n"


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: object) -> bool:
    return (
        isinstance(value, list | tuple) and bool(value) and all(isinstance(item, Mapping) for item in value)
    )


def _render_table(lines: list[str], header: str, table: TomlTable) -> None:
    if header:
        lines += ["", header]
    prefix = header.strip("[]")
    nested: list[tuple[str, object]] = []
    for key, value in table.items():
        _check_key(key)
        if _is_table(value) or _is_table_array(value):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_value(value)}")
    for key, value in nested:
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _render_table(lines, f"[{dotted}]", value)
        else:
            assert isinstance(value, list | tuple)
            for item in value:
                _render_table(lines, f"[[{dotted}]]", item)


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not _BARE_KEY.match(key):
        raise ValueError(f"TOML key {key!r}: only bare keys (letters, digits, _ and -) are written")


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML value {value!r}: not a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise ValueError(f"TOML value {value!r}: unsupported type {type(value).__name__}")
