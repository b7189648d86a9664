"""The make-before-break run needs simultaneous bindings (RFC 5944 §3.6.1.3), and ``datapath = "auto"`` must
not pick a backend whose home agent would answer S with code 1 (RFC 5944 §3.8.3; the kernel backend,
``selection.simultaneous_bindings_gap``). The need is threaded from the scenario to the HA's choice: the
topology writes ``need_simultaneous_bindings`` into the HA's ``[runtime]``, the HA's settings carry it into
its :class:`Needs`, and the harness records the same need in meta.json's ``datapath_choice``. No root: the
kernel probe's result is given where a choice is made."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agents.datapath.kernel import KernelTunnelSupport
from agents.datapath.selection import Needs, select_backend
from agents.runtime.roles.home_agent import datapath_needs, load_settings
from scenarios.harness.runfolder import run_needs
from topologies.agent_configs import render_toml
from topologies.dualstack import DualStackTopo

FULL = KernelTunnelSupport(frozenset({"ipip", "sit", "gre"}))


def ha_runtime(topo: DualStackTopo) -> dict[str, object]:
    config = topo.specs["ha"].agent_config
    assert isinstance(config, dict)
    runtime = config["runtime"]
    assert isinstance(runtime, dict)
    return runtime


def test_the_make_before_break_topology_tells_its_home_agent() -> None:
    assert ha_runtime(DualStackTopo(tag="z9n", second_interfaces=True, datapath="auto"))[
        "need_simultaneous_bindings"
    ]
    assert "need_simultaneous_bindings" not in ha_runtime(DualStackTopo(tag="z9n", datapath="auto"))
    pre = DualStackTopo(tag="z9n", simultaneous_bindings=True, datapath="auto")  # --handoff pre
    assert ha_runtime(pre)["need_simultaneous_bindings"] and not pre.second_interfaces


def test_the_home_agent_reads_the_need_into_its_datapath_choice(tmp_path: Path) -> None:
    config = DualStackTopo(tag="z9n", second_interfaces=True, datapath="auto").specs["ha"].agent_config
    assert isinstance(config, dict)
    path = tmp_path / "ha.toml"
    path.write_text(render_toml(config), encoding="utf-8")
    settings = load_settings(path)
    assert settings.runtime.need_simultaneous_bindings and settings.runtime.datapath == "auto"
    needs = datapath_needs(settings.protocol, settings.runtime)
    assert needs.simultaneous_bindings and not needs.udp_tunnels  # the topology offers no UDP to auto
    chosen = select_backend("auto", needs, kernel_probe=lambda: FULL, ebpf_check=lambda: None)
    assert chosen.backend == "ebpf" and "simultaneous bindings" in chosen.reason


def test_a_need_the_home_agent_refuses_itself_is_a_config_error(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "examples" / "ha.toml").read_text(encoding="utf-8")
    text = text.replace("simultaneous_bindings = true", "simultaneous_bindings = false")
    path = tmp_path / "ha.toml"
    path.write_text(text.replace("[runtime]\n", "[runtime]\nneed_simultaneous_bindings = true\n"))
    with pytest.raises(ValueError, match=r"need_simultaneous_bindings: home_agent\.simultaneous_bindings is"):
        load_settings(path)


def test_the_harness_records_the_runs_needs() -> None:
    mbb = argparse.Namespace(handoff="make-before-break", datapath="auto")
    assert run_needs("handover", mbb) == Needs(simultaneous_bindings=True)
    pre = argparse.Namespace(handoff="pre")  # RFC 4881 §3: the pre-registration carries S
    assert run_needs("handover", pre) == Needs(simultaneous_bindings=True)
    assert run_needs("handover", argparse.Namespace(handoff="post")) == Needs()
    assert run_needs("nat_traversal", argparse.Namespace()) == Needs(udp_tunnels=True)
