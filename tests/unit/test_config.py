"""Role configuration: dataclass validation and TOML loading with one-line errors naming the key."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from agents.mip.common.config import (
    Encapsulation,
    HomeAgentConfig,
    MobileNodeAccount,
    MobileNodeConfig,
    ReplayProtection,
    link_local_for,
)
from agents.mip.wire.auth import AuthAlgorithm
from agents.runtime.configfile import (
    ConfigError,
    load_config,
    load_home_agent,
    load_mobile_node,
    parse_config,
)

KEY = bytes(range(16))
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
NET = IPv4Network("192.0.2.0/24")

HA_TOML = """
[home_agent]
address = "192.0.2.1"
home_network = "192.0.2.0/24"
max_lifetime = 600
simultaneous_bindings = false
encapsulations = ["ipip", "gre"]
reverse_tunnel_required = true
dsmipv4 = true
honour_tunneling_mode = false
replay_protection = "nonce"
timestamp_tolerance = 5

[[home_agent.mobile_nodes]]
home_address = "192.0.2.10"
spi = 256
key = "000102030405060708090a0b0c0d0e0f"
nai = "mn1@example.test"
allowed_prefixes = ["2001:db8:10::/48"]

[[home_agent.mobile_nodes]]
home_address = "192.0.2.11"
spi = 257
key = "00:01:02:03"
algorithm = "prefix-suffix-md5"
allow_link_local = false
"""

MN_TOML = """
[mobile_node]
home_address = "192.0.2.10"
home_agent = "192.0.2.1"
spi = 256
key = "000102030405060708090a0b0c0d0e0f"
lifetime = 120
prefixes = ["2001:db8:10:1::/64"]
link_local_bootstrap = true
request_tunneling_mode = true
encapsulation = "gre"
retransmit_initial = 1.5
retransmit_max = 30
renewal_fraction = 0.5
interface_identifier = "::1"
"""


def mn_config(**changes: Any) -> MobileNodeConfig:
    return dataclasses.replace(MobileNodeConfig(HOA, HA, 256, KEY), **changes)


def ha_config(**changes: Any) -> HomeAgentConfig:
    return dataclasses.replace(HomeAgentConfig(HA, NET, (MobileNodeAccount(HOA, 256, KEY),)), **changes)


# -- dataclass validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"address": IPv4Address("10.0.0.1")}, "outside home_network"),
        ({"address": IPv4Address("192.0.2.255")}, "broadcast"),
        ({"max_lifetime": 0}, "max_lifetime"),
        ({"max_lifetime": 70000}, "max_lifetime"),
        ({"encapsulations": frozenset({Encapsulation.GRE})}, "ipip"),
        ({"reverse_tunnel_supported": False, "reverse_tunnel_required": True}, "reverse_tunnel_required"),
        ({"timestamp_tolerance": 0.0}, "timestamp_tolerance"),
        ({"timestamp_tolerance": 1.0}, "at least 3 seconds"),  # below it MN resync and 133 can live-lock
        ({"max_bindings_per_node": 0}, "max_bindings_per_node"),
        ({"mobile_nodes": (MobileNodeAccount(IPv4Address("10.1.0.5"), 256, KEY),)}, "outside home_network"),
        ({"mobile_nodes": (MobileNodeAccount(HA, 256, KEY),)}, "own address"),
        ({"mobile_nodes": (MobileNodeAccount(HOA, 256, KEY),) * 2}, "configured twice"),
    ],
)
def test_home_agent_validation(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ha_config(**changes)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"spi": 255}, "reserved"),
        ({"key": b""}, "key"),
        ({"nai": ""}, "nai"),
        ({"allowed_prefixes": (IPv6Network("fe80::/64"),)}, "link-local"),
        ({"allowed_prefixes": (IPv6Network("ff00::/8"),)}, "multicast"),
        ({"allowed_prefixes": (IPv6Network("2001:db8::/48"),) * 2}, "twice"),
    ],
)
def test_account_validation(arguments: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"home_address": HOA, "spi": 256, "key": KEY, **arguments}
    with pytest.raises(ValueError, match=message):
        MobileNodeAccount(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"home_agent": HOA}, "equals home_agent"),
        ({"spi": 3}, "reserved"),
        ({"lifetime": 0}, "lifetime"),
        ({"retransmit_initial": 0.5}, "at least 1 second"),
        ({"retransmit_max": 0.9, "retransmit_initial": 1.0}, "retransmit_max"),
        ({"renewal_fraction": 1.0}, "renewal_fraction"),
        ({"deregister_attempts": 0}, "deregister_attempts"),
        ({"local_port": 70000}, "local_port"),
        ({"prefixes": (IPv6Network("fe80::/10"),)}, "link-local"),
    ],
)
def test_mobile_node_validation(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mn_config(**changes)


def test_derived_values_rfc4213_3_7() -> None:
    config = mn_config()
    assert config.link_local_address == IPv6Address("fe80::c000:20a") == link_local_for(HOA)
    assert config.effective_interface_identifier == IPv6Address("::c000:20a")
    assert mn_config(interface_identifier=IPv6Address("::1")).effective_interface_identifier == IPv6Address(
        "::1"
    )
    account = MobileNodeAccount(HOA, 256, KEY, allowed_prefixes=(IPv6Network("2001:db8:10::/48"),))
    assert account.allows(IPv6Network("2001:db8:10:5::/64"))
    assert not account.allows(IPv6Network("2001:db8::/32"))
    assert account.association.spi == 256


# -- TOML loading ------------------------------------------------------------------------------------


def test_home_agent_toml_loads_every_type(tmp_path: Path) -> None:
    path = tmp_path / "ha.toml"
    path.write_text(HA_TOML)
    config = load_home_agent(path)
    assert config.address == HA and config.home_network == NET and config.max_lifetime == 600
    assert config.encapsulations == frozenset({Encapsulation.IP_IN_IP, Encapsulation.GRE})
    assert config.replay_protection is ReplayProtection.NONCE and config.timestamp_tolerance == 5.0
    first, second = config.mobile_nodes
    assert first.key == KEY and first.nai == "mn1@example.test"
    assert first.allowed_prefixes == (IPv6Network("2001:db8:10::/48"),)
    assert second.key == bytes(range(4)) and second.algorithm is AuthAlgorithm.PREFIX_SUFFIX_MD5
    assert not second.allow_link_local


def test_mobile_node_toml_loads(tmp_path: Path) -> None:
    path = tmp_path / "mn.toml"
    path.write_text(MN_TOML)
    config = load_mobile_node(path)
    assert config.prefixes == (IPv6Network("2001:db8:10:1::/64"),)
    assert config.encapsulation is Encapsulation.GRE and config.retransmit_max == 30.0
    assert config.interface_identifier == IPv6Address("::1") and config.link_local_bootstrap
    assert config.nai is None  # omitted optional key keeps its default


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("spi = 256", "spi = 256\ncolour = 1", "home_agent.mobile_nodes[0].colour: unknown key"),
        ("max_lifetime = 600", "max_lifetme = 600", "home_agent.max_lifetme: unknown key"),
        (
            "max_lifetime = 600",
            'max_lifetime = "600"',
            "home_agent.max_lifetime: expected an integer, got str",
        ),
        ("dsmipv4 = true", "dsmipv4 = 1", "home_agent.dsmipv4: expected a boolean"),
        ('"ipip", "gre"', '"ipip", "vxlan"', "home_agent.encapsulations[1]: expected one of 'ipip'"),
        ('address = "192.0.2.1"', 'address = "192.0.2.300"', "home_agent.address: expected an IPv4 address"),
        ("/48", "/47x", "home_agent.mobile_nodes[0].allowed_prefixes[0]: expected an IPv6 prefix"),
        ('key = "0001', 'key = "zz01', "home_agent.mobile_nodes[0].key: expected a hex string"),
        ("spi = 256", "spi = 5", "home_agent.mobile_nodes[0]: mobile node 192.0.2.10: spi 5 is reserved"),
        ("max_lifetime = 600", "max_lifetime = 0", "home_agent: home agent: max_lifetime 0 must be"),
        ('allowed_prefixes = ["2001:db8:10::/48"]', 'allowed_prefixes = "x"', "expected an array of IPv6"),
        ("timestamp_tolerance = 5", "timestamp_tolerance = true", "expected a number, got bool"),
    ],
)
def test_bad_values_name_the_dotted_key(old: str, new: str, expected: str) -> None:
    assert old in HA_TOML
    with pytest.raises(ConfigError) as error:
        parse_config(HA_TOML.replace(old, new, 1), "ha")
    message = str(error.value)
    assert expected in message and "\n" not in message


def test_missing_key_section_and_unknown_section() -> None:
    with pytest.raises(ConfigError, match="home_agent: missing required key 'home_network'"):
        parse_config('[home_agent]\naddress = "192.0.2.1"\n', "ha")
    with pytest.raises(ConfigError, match=r"missing section \[mobile_node\]"):
        parse_config("# nothing here\n", "mn")
    with pytest.raises(ConfigError, match="home_agent: unknown section"):
        parse_config(HA_TOML, "mn")
    with pytest.raises(ConfigError, match="runtime: unknown section"):
        parse_config(MN_TOML + "\n[runtime]\nx = 1\n", "mn")
    with pytest.raises(ConfigError, match="unknown role 'xx'"):
        parse_config(MN_TOML, "xx")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read"):
        load_config(missing, "ha")
    broken = tmp_path / "broken.toml"
    broken.write_text("[home_agent\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(broken, "ha")
