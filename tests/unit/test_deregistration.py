"""Pure parts of the deregistration scenario (issue 12): the topology's extra prefixes and co-located
network, the attacker's requests, the probe and state arithmetic behind the verdicts, and bad input."""

from __future__ import annotations

import math
from ipaddress import IPv4Address, IPv6Network
from pathlib import Path

import dpkt
import numpy as np
import pytest

from agents.mip.wire.auth import SecurityAssociation, verify_with
from agents.mip.wire.registration import RegistrationRequest, decode_message
from reports.deregistration import answered_by, load_observations, state_left
from reports.errors import RunFolderError
from reports.probes import FlowData, lost_between, max_gap_ms, received_between, sent_between
from scenarios import deregistration, forge
from scenarios.forgery import captured_requests, last_deregistration, wrong_key_deregistration
from topologies.addressing import MobileNodePlan
from topologies.dualstack import DualStackTopo

MN1 = MobileNodePlan(1)
HA = IPv4Address("192.0.2.1")
FA_COA = IPv4Address("198.51.100.2")


def flow(send: list[float], recv: list[float]) -> FlowData:
    n = len(send)
    return FlowData(
        name="v4-down",
        family=4,
        seq=np.arange(n, dtype=np.int64),
        send_t=np.asarray(send, dtype=np.float64),
        recv_t=np.asarray(recv, dtype=np.float64),
        path_codes=np.zeros(n, dtype=np.int64),
        path_labels=("fa1",),
    )


# -- topology --------------------------------------------------------------------------------------------


def test_extra_prefixes_are_routed_to_the_ha_allowed_and_requested() -> None:
    topo = DualStackTopo(foreign_agents=1, mobile_nodes=1, nat=False, prefixes_per_node=2, ha_max_lifetime=4)
    plan = topo.mobile_plans["mn1"]
    assert plan.prefixes == [IPv6Network("2001:db8:10::/48"), IPv6Network("2001:db8:11::/48")]
    assert [str(a) for a in plan.addresses6] == ["2001:db8:10::c000:20a", "2001:db8:11::c000:20a"]
    routes = {route.destination: route.via for route in topo.nodeSpec("r0").routes if route.family == 6}
    assert routes["2001:db8:11::/48"] == "2001:db8:0:1::1"
    ha = topo.nodeSpec("ha").agent_config["home_agent"]  # type: ignore[index]
    assert ha["max_lifetime"] == 4
    assert ha["mobile_nodes"][0]["allowed_prefixes"] == ["2001:db8:10::/48", "2001:db8:11::/48"]
    assert (
        topo.nodeSpec("mn1").agent_config["mobile_node"]["prefixes"]
        == ha["mobile_nodes"][0]["allowed_prefixes"]
    )  # type: ignore[index]


def test_a_colocated_node_sits_on_its_own_network_with_its_own_address() -> None:
    """RFC 5944 §3.6: the co-located care-of address is the node's own address on the visited network."""
    topo = DualStackTopo(foreign_agents=1, mobile_nodes=1, colocated_nodes=1, nat=False, tag="t1")
    spec = topo.nodeSpec("mn2")
    assert spec.interfaces["mn2-eth0"].ipv4 == ["203.0.113.131/26"]
    assert ("default", "203.0.113.129") in [(r.destination, r.via) for r in spec.routes]
    assert spec.agent_config["mobile_node"]["care_of_mode"] == "co-located"  # type: ignore[index]
    assert "mn2" not in topo.mobileLinks()  # never moved
    assert "dst1col" in topo.rootInterfaces()
    assert topo.nodeSpec("r0").interfaces["r0-col"].ipv4 == ["203.0.113.129/26"]


@pytest.mark.parametrize(
    "bad",
    [{"prefixes_per_node": 0}, {"prefixes_per_node": 11}, {"ha_max_lifetime": 0}, {"colocated_nodes": 25}],
)
def test_topology_refuses_impossible_values(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        DualStackTopo(nat=False, **bad)


# -- the attacker's requests ------------------------------------------------------------------------------


def test_the_wrong_key_deregistration_is_well_formed_but_does_not_verify() -> None:
    """RFC 5944 §3.8.2.1: what the HA must answer with 131 — right SPI, Lifetime 0, wrong authenticator."""
    raw = wrong_key_deregistration(MN1.home_address, HA, FA_COA, MN1.spi, now=1_800_000_000.0)
    message = decode_message(raw)
    assert isinstance(message, RegistrationRequest) and message.is_deregistration
    assert (message.home_address, message.home_agent, message.care_of_address) == (
        MN1.home_address,
        HA,
        FA_COA,
    )
    assert message.authentication(32).spi == MN1.spi  # type: ignore[union-attr]
    right = SecurityAssociation(MN1.spi, bytes.fromhex(MN1.key))
    assert not verify_with(raw, 32, right)
    scapy_mobileip = pytest.importorskip("scapy.layers.mobileip")  # an independent decoder
    decoded = scapy_mobileip.MobileIP(raw)
    assert decoded[scapy_mobileip.MobileIPRRQ].lifetime == 0


def _pcap(path: Path, payloads: list[tuple[float, bytes, int]]) -> None:
    with path.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for when, payload, dport in payloads:
            udp = dpkt.udp.UDP(sport=434, dport=dport, data=payload)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=bytes([198, 51, 100, 2]), dst=bytes([192, 0, 2, 1]), p=17, data=udp)
            ip.len = len(ip)
            frame = dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6, type=0x0800, data=ip)
            writer.writepkt(bytes(frame), ts=when)


def test_the_replay_is_the_last_real_deregistration_seen_before_the_attack(tmp_path: Path) -> None:
    older = wrong_key_deregistration(MN1.home_address, HA, FA_COA, MN1.spi, now=1_800_000_000.0)
    newer = wrong_key_deregistration(MN1.home_address, HA, FA_COA, MN1.spi, now=1_800_000_010.0)
    other = wrong_key_deregistration(IPv4Address("192.0.2.20"), HA, FA_COA, 257, now=1_800_000_011.0)
    pcap = tmp_path / "ha.pcap"
    _pcap(pcap, [(100.0, older, 434), (110.0, newer, 434), (111.0, other, 434), (112.0, b"\x01junk", 9)])
    assert len(list(captured_requests(pcap))) == 3
    assert last_deregistration(pcap, MN1.home_address, before=115.0) == newer
    assert last_deregistration(pcap, MN1.home_address, before=105.0) == older
    assert last_deregistration(pcap, MN1.home_address, before=50.0) is None


# -- verdict arithmetic ---------------------------------------------------------------------------------


def test_probe_arithmetic_counts_what_arrived_in_a_window() -> None:
    probe = flow([0.0, 0.1, 0.2, 0.3, 0.4], [0.01, math.nan, math.nan, 0.31, 0.41])
    assert sent_between(probe, 0.05, 0.35) == 3
    assert received_between(probe, 0.05, 0.35) == 1
    assert lost_between(probe, 0.0, 0.4) == 2
    assert max_gap_ms(probe, 0.0, 1.0) == pytest.approx(300.0)
    assert received_between(None, 0, 1) == 0 and max_gap_ms(flow([0.0], [0.1]), 0, 1) is None


def test_state_left_names_every_leftover() -> None:
    record = {
        "bindings": [{"home_address": "192.0.2.10"}],
        "proxy_arp": ["192.0.2.10"],
        "tunnel_routes4": ["192.0.2.10"],
        "tunnel_routes6": ["2001:db8:10::/48"],
        "visitors": {"fa1": [{"home_address": "192.0.2.10"}]},
    }
    left = state_left(record, "192.0.2.10", ["2001:db8:10::/48"])
    assert left == [
        "binding",
        "proxy ARP entry",
        "IPv4 tunnel route",
        "tunnel route 2001:db8:10::/48",
        "fa1 visitor entry",
    ]
    assert "fa1 visitor entry" not in state_left(record, "192.0.2.10", [], visitors=False)
    assert state_left(record, "192.0.2.20", ["2001:db8:20::/48"]) == []
    assert state_left(None, "192.0.2.10", []) == ["no observation was recorded"]


def test_answered_by_reads_the_routers_resolution() -> None:
    record = {"router_neighbours": {"192.0.2.10": {"lladdr": "00:00:00:00:00:03", "state": ["REACHABLE"]}}}
    assert answered_by(record, "192.0.2.10") == "00:00:00:00:00:03"
    assert answered_by({"router_neighbours": {"192.0.2.10": {"state": ["FAILED"]}}}, "192.0.2.10") is None
    assert answered_by(None, "192.0.2.10") is None


def test_observations_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "observations.jsonl"
    with pytest.raises(RunFolderError, match="missing"):
        load_observations(path)
    path.write_text('{"t": 1, "phase": "p", "label": "l"}\n{"t": 2, "phase"')  # cut last line: tolerated
    assert len(load_observations(path)) == 1
    path.write_text('garbage\n{"t": 1, "phase": "p", "label": "l"}\n')
    with pytest.raises(RunFolderError, match="line 1"):
        load_observations(path)
    path.write_text('{"t": 1}\n')
    with pytest.raises(RunFolderError, match="t, phase and label"):
        load_observations(path)


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "601", "x", "2.5"])
def test_scenario_refuses_a_bad_lifetime(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        deregistration.parse_args(["--lifetime", value])
    assert stop.value.code == 2
    wanted = f"--lifetime: must be a whole number between 2 and 600 (seconds), got {value!r}"
    assert wanted in capsys.readouterr().err


def test_forge_refuses_bad_hex_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert forge.main(["--to", "192.0.2.1", "--hex", "010"]) == 2
    assert "even-length hexadecimal" in capsys.readouterr().err
    assert forge.main(["--to", "192.0.2.1", "--hex", "01", "--timeout", "0"]) == 2
