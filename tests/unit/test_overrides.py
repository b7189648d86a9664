"""`--set NODE.SECTION.KEY=VALUE` (topologies/overrides.py): parsing, applying to a built topology's agent
configs (TOML values, arrays of tables by index), and one clear error for a path into nothing."""

from __future__ import annotations

import pytest

from scenarios.handover import parse_args
from topologies.dualstack import DualStackTopo
from topologies.overrides import OverrideError, apply_overrides, parse_override


def test_values_are_toml_or_else_text() -> None:
    assert parse_override("mn1.mobile_node.reverse_tunnel=false").value is False
    assert parse_override("fa2.foreign_agent.advertisement.max_interval=0.5").value == 0.5
    assert parse_override('mn1.mobile_node.key="00ff"').value == "00ff"
    assert parse_override("mn1.mobile_node.udp_tunnelling=auto").value == "auto"
    override = parse_override("ha.home_agent.mobile_nodes.0.key=abc")
    assert (override.node, override.path) == ("ha", ("home_agent", "mobile_nodes", "0", "key"))


@pytest.mark.parametrize("text", ["mn1=1", "mn1.x", "mn1..key=1", ".a.b=1"])
def test_malformed_settings_are_refused(text: str) -> None:
    with pytest.raises(OverrideError):
        parse_override(text)


def test_a_topology_applies_them_to_the_agent_configs() -> None:
    overrides = [
        parse_override("mn1.mobile_node.reverse_tunnel=false"),
        parse_override("fa2.foreign_agent.advertisement.max_interval=5"),
        parse_override("ha.home_agent.mobile_nodes.0.key=0123456789abcdef0123456789abcdef"),
    ]
    topo = DualStackTopo(foreign_agents=2, mobile_nodes=1, nat=False, overrides=overrides)
    assert topo.nodeSpec("mn1").agent_config["mobile_node"]["reverse_tunnel"] is False  # type: ignore[index]
    fa2 = topo.nodeSpec("fa2").agent_config["foreign_agent"]  # type: ignore[index]
    assert fa2["advertisement"]["max_interval"] == 5  # type: ignore[index]
    fa1 = topo.nodeSpec("fa1").agent_config["foreign_agent"]  # type: ignore[index]
    assert fa1["advertisement"]["max_interval"] == 1.0  # type: ignore[index]  # only fa2 changed
    account = topo.nodeSpec("ha").agent_config["home_agent"]["mobile_nodes"][0]  # type: ignore[index]
    assert account["key"] == "0123456789abcdef0123456789abcdef"
    assert "reverse_tunnel = false" in (topo.nodeSpec("mn1").agent_toml() or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mn9.mobile_node.key=1", "no agent 'mn9'"),
        ("r0.mobile_node.key=1", "no agent 'r0'"),
        ("mn1.nothing.key=1", "no table 'nothing'"),
        ("ha.home_agent.mobile_nodes.7.key=1", "no table '7'"),
        ("mn1.mobile_node.key.deeper=1", "no table 'key'"),
    ],
)
def test_a_path_into_nothing_is_one_clear_error(text: str, message: str) -> None:
    topo = DualStackTopo(foreign_agents=1, mobile_nodes=1, nat=False)
    configs = {name: spec.agent_config for name, spec in topo.specs.items()}
    with pytest.raises(OverrideError, match=message):
        apply_overrides(configs, [parse_override(text)])


@pytest.mark.parametrize("scenario", ["handover", "deregistration", "nat_traversal", "dhcpv6_pd", "security"])
def test_every_scenario_takes_set(scenario: str) -> None:
    import importlib

    parse = importlib.import_module(f"scenarios.{scenario}").parse_args
    args = parse(["--set", "mn1.mobile_node.reverse_tunnel=false"])
    assert [str(item) for item in args.set] == ["mn1.mobile_node.reverse_tunnel"]
    assert parse([]).set == []


def test_set_is_repeatable_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(
        ["--set", "mn1.mobile_node.reverse_tunnel=false", "--set", "fa1.foreign_agent.max_lifetime=9"]
    )
    assert [str(item) for item in args.set] == [
        "mn1.mobile_node.reverse_tunnel",
        "fa1.foreign_agent.max_lifetime",
    ]
    with pytest.raises(SystemExit):
        parse_args(["--set", "mn1=1"])
    assert "want NODE.SECTION.KEY=VALUE" in capsys.readouterr().err
