"""The dual-stack topology as data (no root): address plan, names, agent configs, parameters, moves."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import tomllib
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_interface, ip_network
from pathlib import Path

import pytest

from topologies.addressing import ForeignAgentPlan, MobileNodePlan
from topologies.agent_configs import render_toml
from topologies.dualstack import DualStackTopo, process_tag
from topologies.nodes import AgentHost, ProcessStartError
from topologies.spec import MAX_INTERFACE_NAME

REPO = Path(__file__).resolve().parents[2]
ALLOWED = [ip_network(text) for text in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.0.0.0/8")]
ALLOWED += [ip_network("192.168.0.0/16"), ip_network("2001:db8::/32")]


def interfaces(topo: DualStackTopo) -> list[tuple[str, str, str]]:
    """(node, interface, address/len) for every configured address."""
    return [
        (node, intf.name, address)
        for node, spec in topo.specs.items()
        for intf in spec.interfaces.values()
        for address in [*intf.ipv4, *intf.ipv6]
    ]


def test_default_graph() -> None:
    topo = DualStackTopo()
    assert sorted(topo.hosts()) == ["cn", "fa1", "fa2", "ha", "mn1", "nat1", "r0"]
    assert sorted(topo.switches()) == ["dsa1", "dsa2", "dshome", "dspriv"]
    assert len(topo.links()) == 10
    assert topo.agentNodes() == [("ha", "ha"), ("fa1", "fa"), ("fa2", "fa"), ("mn1", "mn")]


@pytest.mark.parametrize("topo", [DualStackTopo(), DualStackTopo(foreign_agents=16, mobile_nodes=25)])
def test_address_plan_is_documentation_or_private_and_never_overlaps(topo: DualStackTopo) -> None:
    addresses = [ip_interface(text) for _, _, text in interfaces(topo)]
    assert len({a.ip for a in addresses}) == len(addresses), "an address is used twice"
    networks = {a.network for a in addresses} | {plan.prefix for plan in topo.mobile_plans.values()}
    for network in networks:
        assert any(network.version == a.version and network.subnet_of(a) for a in ALLOWED), network  # type: ignore[arg-type]
    for left, right in itertools.combinations(networks, 2):
        assert left.version != right.version or not left.overlaps(right), (left, right)  # type: ignore[arg-type]


def test_point_to_point_ends_share_a_subnet() -> None:
    topo = DualStackTopo(foreign_agents=4)
    for _, _, info in topo.links(withInfo=True):
        if topo.isSwitch(info["node2"]):
            continue
        left = topo.specs[info["node1"]].interfaces[info["intfName1"]]
        right = topo.specs[info["node2"]].interfaces[info["intfName2"]]
        for mine, theirs in ((left.ipv4, right.ipv4), (left.ipv6, right.ipv6)):
            assert {ip_interface(a).network for a in mine} == {ip_interface(a).network for a in theirs}


def test_the_address_plan_of_the_brief() -> None:
    topo = DualStackTopo(foreign_agents=2, mobile_nodes=2)
    r0 = topo.specs["r0"].interfaces
    assert r0["r0-cn"].ipv4 == ["203.0.113.1/26"] and r0["r0-cn"].ipv6 == ["2001:db8:ff::1/64"]
    assert r0["r0-home"].ipv4 == ["192.0.2.254/24"] and r0["r0-home"].ipv6 == ["2001:db8:0:1::fe/64"]
    assert r0["r0-fa2"].ipv4 == ["198.51.100.17/28"] and r0["r0-fa2"].ipv6 == ["2001:db8:0:f2::1/64"]
    assert r0["r0-nat1"].ipv4 == ["203.0.113.65/26"]
    assert topo.specs["cn"].interfaces["cn-eth0"].ipv6 == ["2001:db8:ff::10/64"]
    assert topo.specs["ha"].interfaces["ha-eth0"].ipv4 == ["192.0.2.1/24"]
    assert topo.specs["fa1"].interfaces["fa1-net"].ipv4 == ["198.51.100.2/28"]
    assert topo.specs["fa2"].interfaces["fa2-net"].ipv6 == ["2001:db8:0:f2::2/64"]
    assert topo.specs["fa2"].interfaces["fa2-acc"].ipv4 == ["10.0.2.1/24"]
    assert topo.specs["nat1"].interfaces["nat1-priv"].ipv4 == ["192.168.1.1/24"]
    routes = [route.command() for route in topo.specs["r0"].routes]
    assert routes == [
        "ip -6 route add 2001:db8:10::/48 via 2001:db8:0:1::1",
        "ip -6 route add 2001:db8:20::/48 via 2001:db8:0:1::1",
    ]
    assert str(MobileNodePlan(1).address6) == "2001:db8:10::c000:20a"
    assert [MobileNodePlan(i).spi for i in (1, 2)] == [256, 257]
    keys = {MobileNodePlan(i).key for i in range(1, 26)}
    assert len(keys) == 25 and all(len(bytes.fromhex(key)) == 16 for key in keys)
    assert ForeignAgentPlan(16).network == IPv4Network("198.51.100.240/28")
    assert ForeignAgentPlan(16).network6 == IPv6Network("2001:db8:0:f10::/64")


def test_sysctls() -> None:
    topo = DualStackTopo()
    r0, fa1, fa2 = (topo.specs[name].all_sysctls() for name in ("r0", "fa1", "fa2"))
    assert r0["net.ipv4.ip_forward"] == "1" and r0["net.ipv6.conf.all.forwarding"] == "1"
    assert r0["net.ipv6.conf.r0-home.accept_dad"] == "0"
    assert topo.specs["ha"].all_sysctls()["net.ipv4.ip_forward"] == "1"
    assert fa1["net.ipv4.ip_forward"] == "1" and fa1["net.ipv6.conf.all.disable_ipv6"] == "1"
    assert (
        fa1["net.ipv6.conf.fa1-acc.disable_ipv6"] == "1" and fa1["net.ipv6.conf.fa1-net.disable_ipv6"] == "1"
    )
    assert fa2["net.ipv4.ip_forward"] == "1" and "net.ipv6.conf.all.disable_ipv6" not in fa2
    assert topo.specs["nat1"].nat_interface == "nat1-pub"


def test_names_fit_the_kernel_and_bridges_claim_their_ports() -> None:
    topo = DualStackTopo(foreign_agents=16, mobile_nodes=25)
    for node, spec in topo.specs.items():
        assert all(len(name) <= MAX_INTERFACE_NAME for name in spec.interfaces), node
    root = topo.rootInterfaces()
    assert all(len(name) <= MAX_INTERFACE_NAME for name in root)
    dpids = [topo.nodeInfo(name)["dpid"] for name in topo.switches()]
    assert len(set(dpids)) == len(dpids) and all(len(dpid) == 16 for dpid in dpids)
    for switch in topo.switches():
        assert switch.startswith("ds") and switch in root
    for _, _, info in topo.links(withInfo=True):
        assert len(info["intfName1"]) <= MAX_INTERFACE_NAME and len(info["intfName2"]) <= MAX_INTERFACE_NAME
        if topo.isSwitch(info["node2"]):  # LinuxBridge.start adds only ports whose name contains its own
            assert info["intfName2"].startswith(info["node2"] + "-") and info["intfName2"] in root
    for name in topo.hosts():
        assert topo.nodeInfo(name)["ip"] is None  # no Mininet default 10.0.0.x address


def test_a_tag_goes_into_every_root_namespace_name_and_nowhere_else() -> None:
    plain = DualStackTopo(foreign_agents=16, mobile_nodes=25)
    tagged = DualStackTopo(foreign_agents=16, mobile_nodes=25, tag="z9k")
    assert tagged.tag == "z9k" and plain.tag == ""
    assert sorted(DualStackTopo(tag="z9k").switches()) == ["dsz9ka1", "dsz9ka2", "dsz9khome", "dsz9kpriv"]
    root = tagged.rootInterfaces()
    assert len(root) == len(plain.rootInterfaces()) and not root & plain.rootInterfaces()
    assert all(name.startswith("dsz9k") and len(name) <= MAX_INTERFACE_NAME for name in root)
    assert max(len(name) for name in root) == 14  # dsz9khome-mn25, dsz9kpriv-nat1
    for _, _, info in tagged.links(withInfo=True):
        if tagged.isSwitch(info["node2"]):  # LinuxBridge.start adds only ports whose name contains its own
            assert info["intfName2"] == f"{info['node2']}-{info['node1']}" and info["intfName2"] in root
    mn1 = DualStackTopo(tag="z9k").mobileLinks()["mn1"]
    assert (mn1.interface, mn1.port) == ("mn1-eth0", "dsz9khome-mn1")
    assert mn1.attachments == {"home": "dsz9khome", "fa1": "dsz9ka1", "fa2": "dsz9ka2", "nat": "dsz9kpriv"}
    for name, spec in tagged.specs.items():  # names inside the namespaces, addresses, configs: unchanged
        other = plain.specs[name]
        assert spec.interfaces == other.interfaces and spec.routes == other.routes, name
        assert spec.agent_toml() == other.agent_toml(), name


def test_different_tags_never_share_a_root_namespace_name() -> None:
    tags = ["", "a", "1", "a1", "aa", "1a1", "a16", "zzz"]
    names = {tag: DualStackTopo(foreign_agents=16, mobile_nodes=25, tag=tag).rootInterfaces() for tag in tags}
    for left, right in itertools.combinations(tags, 2):
        assert not names[left] & names[right], (left, right)


@pytest.mark.parametrize("tag", ["abcd", "A", "a-b", "a.b", " ", "é", "x/"])
def test_bad_tags_are_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        DualStackTopo(tag=tag)


def test_process_tag_is_three_base36_characters_of_the_pid() -> None:
    expected = {0: "000", 35: "00z", 36: "010", 36**3 - 1: "zzz", 36**3 + 37: "011"}
    assert {pid: process_tag(pid) for pid in expected} == expected
    assert process_tag() == process_tag(os.getpid())
    assert len(process_tag(4194304)) == 3  # pid_max on 64-bit Linux
    DualStackTopo(tag=process_tag())  # always a valid tag


def test_parameters_change_the_graph() -> None:
    topo = DualStackTopo(foreign_agents=3, mobile_nodes=2, nat=False)
    assert sorted(topo.hosts()) == ["cn", "fa1", "fa2", "fa3", "ha", "mn1", "mn2", "r0"]
    assert sorted(topo.switches()) == ["dsa1", "dsa2", "dsa3", "dshome"]
    assert topo.specs["fa3"].interfaces["fa3-net"].ipv6_enabled is False  # odd: IPv4-only visited network
    accounts = topo.specs["ha"].agent_config["home_agent"]["mobile_nodes"]  # type: ignore[index]
    assert [a["home_address"] for a in accounts] == ["192.0.2.10", "192.0.2.20"]
    assert [a["allowed_prefixes"] for a in accounts] == [["2001:db8:10::/48"], ["2001:db8:20::/48"]]
    assert set(topo.mobileLinks()["mn2"].attachments) == {"home", "fa1", "fa2", "fa3"}
    bare = DualStackTopo(foreign_agents=0, mobile_nodes=0, nat=False)
    assert sorted(bare.hosts()) == ["cn", "ha", "r0"] and bare.mobileLinks() == {}


@pytest.mark.parametrize(
    "params",
    [{"foreign_agents": 17}, {"mobile_nodes": 26}, {"detection": "carrier"}, {"datapath": "turbo"}],
)
def test_bad_parameters_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(params))):
        DualStackTopo(**params)  # type: ignore[arg-type]


def test_mobile_links() -> None:
    links = DualStackTopo(mobile_nodes=2).mobileLinks()
    assert set(links) == {"mn1", "mn2"}
    mn1 = links["mn1"]
    assert (mn1.interface, mn1.port, mn1.initial, mn1.carrier_events) == (
        "mn1-eth0",
        "dshome-mn1",
        "home",
        True,
    )
    assert mn1.attachments == {"home": "dshome", "fa1": "dsa1", "fa2": "dsa2", "nat": "dspriv"}
    assert mn1.bridge("fa2") == "dsa2"
    with pytest.raises(KeyError, match="fa9"):
        mn1.bridge("fa9")
    assert DualStackTopo(detection="advert").mobileLinks()["mn1"].carrier_events is False


def test_detection_shapes_the_configs() -> None:
    link, advert = DualStackTopo(detection="link"), DualStackTopo(detection="advert")
    assert "movement_detection" not in link.specs["mn1"].agent_config["mobile_node"]  # type: ignore[index]
    assert advert.specs["mn1"].agent_config["mobile_node"]["movement_detection"] == "both"  # type: ignore[index]
    fa = advert.specs["fa1"].agent_config["foreign_agent"]["advertisement"]  # type: ignore[index]
    assert fa["prefix_lengths"] is True and fa["router_addresses"] == ["10.0.1.1/24"]
    for topo in (link, advert):  # algorithm 2 (RFC 5944 §2.4.2.2) whatever the moves do to the carrier
        fa_any = topo.specs["fa1"].agent_config["foreign_agent"]["advertisement"]  # type: ignore[index]
        assert fa_any["prefix_lengths"] is True and fa_any["router_addresses"] == ["10.0.1.1/24"]
        ha_advert = tomllib.loads(topo.specs["ha"].agent_toml() or "")["runtime"]["advertisement"]
        assert ha_advert["advertise_home"] is True and ha_advert["max_interval"] == 1.0
        assert ha_advert["router_addresses"] == ["192.0.2.1/24"] and ha_advert["prefix_lengths"] is True
    runtime = tomllib.loads(link.specs["mn1"].agent_toml() or "")["runtime"]
    assert (runtime["interface"], runtime["tunnel_interface"]) == ("mn1-eth0", "mip0")
    assert (runtime["home_prefix_length"], runtime["home_gateway"]) == (24, "192.0.2.254")


def test_toml_round_trip() -> None:
    for spec in DualStackTopo(mobile_nodes=2, adv_interval=0.25).specs.values():
        if spec.agent_config is not None:
            assert tomllib.loads(render_toml(spec.agent_config)) == spec.agent_config
    with pytest.raises(ValueError, match="bare keys"):
        render_toml({"a b": 1})


@pytest.mark.parametrize("detection", ["link", "advert"])
def test_every_rendered_config_passes_check(detection: str, tmp_path: Path) -> None:
    topo = DualStackTopo(
        foreign_agents=3, mobile_nodes=2, detection=detection, adv_interval=0.5, datapath="auto"
    )
    for node, role in topo.agentNodes():
        path = tmp_path / f"{node}.toml"
        path.write_text(topo.specs[node].agent_toml() or "")
        result = subprocess.run(
            [sys.executable, "-m", "agents", role, "--config", str(path), "--check"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (node, result.stderr)


# -- process handles, with a host whose popen is a plain Popen (no namespace, no root) ----------------------


def fake_host() -> AgentHost:
    host = object.__new__(AgentHost)
    host.name = "h1"
    host.popen = lambda argv, **kwargs: subprocess.Popen(argv, **kwargs)
    return host


def test_start_process_waits_for_its_ready_line_and_stops_by_handle(tmp_path: Path) -> None:
    script = "import sys,time; print('noise'); print('READY'); print('after', flush=True)\n"
    script += "sys.stderr.write('err\\n'); print('x' * 200000, flush=True); time.sleep(60)"
    process = fake_host().start_process([sys.executable, "-c", script], tmp_path / "p.log", ready=b"READY")
    assert process.running
    deadline = time.monotonic() + 10  # stdout after READY is drained into the log: no full pipe
    while len((tmp_path / "p.log").read_bytes()) < 200000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.stop(timeout=5) == -15
    log = (tmp_path / "p.log").read_text()
    assert "after" in log and "err" in log and "x" * 200000 in log and "noise" not in log


def test_sigkill_only_after_the_timeout(tmp_path: Path) -> None:
    script = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('READY', flush=True)\n"
    script += "time.sleep(60)"
    process = fake_host().start_process([sys.executable, "-c", script], tmp_path / "p.log", ready=b"READY")
    assert process.stop(timeout=0.5) == -9


def test_no_ready_line_is_a_clear_error_with_the_log_tail(tmp_path: Path) -> None:
    script = "import sys,time; sys.stderr.write('config is broken\\n'); sys.stderr.flush(); time.sleep(60)"
    with pytest.raises(ProcessStartError, match=r"(?s)did not print 'READY' within 0.5 s.*config is broken"):
        fake_host().start_process(
            [sys.executable, "-c", script], tmp_path / "p.log", ready=b"READY", timeout=0.5
        )


def test_start_agent_runs_python_m_agents(tmp_path: Path) -> None:
    """A bad config exits at once: start_agent reports the agent's own error line."""
    config = tmp_path / "ha.toml"
    config.write_text("[home_agent]\nbogus = 1\n")
    with pytest.raises(ProcessStartError, match=r"(?s)ha agent .*exit code 2.*bogus"):
        fake_host().start_agent(
            "ha", config, tmp_path / "t.jsonl", tmp_path / "c.sock", tmp_path / "ha.log", timeout=20
        )


def test_addresses_are_well_formed() -> None:
    for _, name, text in interfaces(DualStackTopo()):
        assert "/" in text and ip_address(text.split("/")[0]), name


def test_a_home_agent_journal_goes_into_its_runtime_table_only_when_asked() -> None:
    """The security scenario restarts the HA after kill -9: with ``ha_journal`` it restores its bindings."""
    plain = tomllib.loads(DualStackTopo(nat=False).nodeSpec("ha").agent_toml() or "")
    assert "journal" not in plain["runtime"]
    journaled = DualStackTopo(nat=False, ha_journal="/run/x/ha-journal.jsonl")
    config = tomllib.loads(journaled.nodeSpec("ha").agent_toml() or "")
    assert config["runtime"]["journal"] == "/run/x/ha-journal.jsonl"
    assert "journal" not in tomllib.loads(journaled.nodeSpec("fa1").agent_toml() or "").get("runtime", {})


def test_nat_fa_puts_a_foreign_agent_advertising_r_and_u_behind_the_nat() -> None:
    """RFC 3519 §4.11: the FA behind the NAT (fan) on the private LAN, its care-of address on its own link to
    nat1 (so its relays and the MN's tunnel share the NAT's public address); it advertises R and U (§3.4)
    and the mobile node waits for it before registering its co-located address directly (RFC 5944 §3.6)."""
    from agents.mip.fa.config import ForeignAgentConfig
    from agents.mip.wire.icmp import AdvertisementFlag
    from agents.runtime.configfile import build_dataclass

    topo = DualStackTopo(foreign_agents=1, nat=True, udp_keepalive=2, nat_fa=True)
    fan = topo.nodeSpec("fan")
    assert fan.interfaces["fan-acc"].ipv4 == ["192.168.1.2/24"]
    assert fan.interfaces["fan-net"].ipv4 == ["192.168.2.2/30"]
    assert topo.nodeSpec("nat1").interfaces["nat1-fan"].ipv4 == ["192.168.2.1/30"]
    assert ("fan", "fa") in topo.agentNodes()
    section = dict(tomllib.loads(fan.agent_toml() or "")["foreign_agent"])
    config = build_dataclass(ForeignAgentConfig, section, "foreign_agent")
    wanted = AdvertisementFlag.R | AdvertisementFlag.U | AdvertisementFlag.F | AdvertisementFlag.T
    assert config.advertisement_flags == wanted
    mobile = tomllib.loads(topo.nodeSpec("mn1").agent_toml() or "")["mobile_node"]
    assert mobile["agent_wait"] == 2.0 and mobile["udp_tunnelling"] == "auto"
    plain = tomllib.loads(DualStackTopo(udp_keepalive=2).nodeSpec("mn1").agent_toml() or "")["mobile_node"]
    assert "agent_wait" not in plain
    with pytest.raises(ValueError, match="nat_fa needs nat and udp_keepalive"):
        DualStackTopo(nat=True, nat_fa=True)


def test_second_interfaces_give_each_moving_mn_a_spare_port_on_the_last_visited_bridge() -> None:
    """Make-before-break (RFC 5944 §3.6.1.3): ``<mn>-eth1`` exists from the start, no address, IPv6 off."""
    topo = DualStackTopo(tag="z9k", second_interfaces=True)
    second = topo.secondLinks()["mn1"]
    assert (second.interface, second.port, second.initial) == ("mn1-eth1", "dsz9ka2-mn1", "fa2")
    assert second.bridge("fa2") == "dsz9ka2" and second.port in topo.rootInterfaces()
    interface = topo.nodeSpec("mn1").interfaces["mn1-eth1"]
    assert interface.ipv4 == [] and interface.ipv6 == [] and interface.ipv6_enabled is False
    assert topo.mobileLinks()["mn1"].interface == "mn1-eth0"  # the agent keeps its one interface
    assert DualStackTopo(tag="z9k").secondLinks() == {}
