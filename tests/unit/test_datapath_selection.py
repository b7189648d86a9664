"""`datapath = userspace | kernel | ebpf | auto` (agents/datapath/selection.py): pure decisions, no root."""

from __future__ import annotations

import pytest

from agents.datapath.kernel import BackendUnavailableError, KernelTunnelSupport
from agents.datapath.selection import Needs, select_backend, select_foreign_agent_backend
from topologies.agent_configs import foreign_agent_datapath

NO_KERNEL = KernelTunnelSupport(frozenset(), {"ipip": "not supported", "sit": "x", "gre": "x"})


def probe() -> KernelTunnelSupport:
    return NO_KERNEL


def loads() -> str | None:
    return None


def missing() -> str | None:
    return "no BPF object at build/bpf/tunnel.bpf.o"


def test_userspace_is_taken_as_asked() -> None:
    choice = select_backend("userspace", kernel_probe=probe, ebpf_check=missing)
    assert (choice.backend, choice.requested) == ("userspace", "userspace")


def test_auto_prefers_ebpf_when_it_loads_and_says_why_not_kernel() -> None:
    choice = select_backend("auto", kernel_probe=probe, ebpf_check=loads)
    assert choice.backend == "ebpf" and "ipip: no" in choice.reason and "kernel" in choice.reason


def test_auto_falls_back_to_userspace_with_the_reason() -> None:
    choice = select_backend("auto", kernel_probe=probe, ebpf_check=missing)
    assert choice.backend == "userspace" and "no BPF object" in choice.reason


@pytest.mark.parametrize(
    "needs",
    [Needs(udp_tunnels=True), Needs(other_encapsulations=("gre", "minimal"))],
    ids=["RFC 3519", "minimal"],
)
def test_auto_picks_userspace_for_what_ebpf_does_not_carry(needs: Needs) -> None:
    choice = select_backend("auto", needs, kernel_probe=probe, ebpf_check=loads)
    assert choice.backend == "userspace" and "ebpf" in choice.reason


def test_gre_is_carried_by_ebpf() -> None:
    choice = select_backend(
        "auto", Needs(other_encapsulations=("gre",)), kernel_probe=probe, ebpf_check=loads
    )
    assert choice.backend == "ebpf"


def test_explicit_ebpf_that_cannot_run_is_refused_not_replaced() -> None:
    with pytest.raises(BackendUnavailableError, match="no BPF object"):
        select_backend("ebpf", kernel_probe=probe, ebpf_check=missing)
    with pytest.raises(BackendUnavailableError, match="UDP"):
        select_backend("ebpf", Needs(udp_tunnels=True), kernel_probe=probe, ebpf_check=loads)


def test_kernel_is_refused_with_what_the_probe_found() -> None:
    with pytest.raises(BackendUnavailableError, match=r"needs ipip, sit and gre.*ipip: no.*\./testbed vm"):
        select_backend("kernel", kernel_probe=probe, ebpf_check=loads)


def test_unknown_names_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="userspace, kernel, ebpf, auto"):
        select_backend("xdp", kernel_probe=probe, ebpf_check=loads)


def test_only_the_kernel_backend_cannot_keep_simultaneous_bindings_rfc5944_3_6_1_3() -> None:
    """Native routes send to one care-of address; userspace and ebpf copy to each (RFC 5944 §3.6.1.3), so
    only the kernel backend makes the home agent answer S requests with code 1 (RFC 5944 §3.8.3)."""
    from agents.datapath.selection import simultaneous_bindings_gap

    assert simultaneous_bindings_gap("userspace") is None and simultaneous_bindings_gap("ebpf") is None
    gap = simultaneous_bindings_gap("kernel")
    assert gap is not None and "3.6.1.3" in gap


# --- the foreign agent: userspace or ebpf, never kernel (agents/datapath/fa_ebpf.py) ----------------------


def test_fa_userspace_and_ebpf_as_asked() -> None:
    assert select_foreign_agent_backend("userspace", ebpf_check=missing).backend == "userspace"
    assert select_foreign_agent_backend("ebpf", ebpf_check=loads).backend == "ebpf"


def test_fa_kernel_is_refused_with_the_alternatives() -> None:
    with pytest.raises(BackendUnavailableError, match="foreign agent has no kernel datapath"):
        select_foreign_agent_backend("kernel", ebpf_check=loads)


def test_fa_ebpf_without_the_object_is_refused_naming_it() -> None:
    with pytest.raises(BackendUnavailableError, match="no BPF object"):
        select_foreign_agent_backend("ebpf", ebpf_check=missing)


def test_fa_udp_tunnelling_refuses_ebpf_and_auto_takes_userspace_rfc3519() -> None:
    """RFC 3519: only the userspace FA carries UDP tunnels."""
    needs = Needs(udp_tunnels=True)
    with pytest.raises(BackendUnavailableError, match="RFC 3519"):
        select_foreign_agent_backend("ebpf", needs, ebpf_check=loads)
    choice = select_foreign_agent_backend("auto", needs, ebpf_check=loads)
    assert choice.backend == "userspace" and "RFC 3519" in choice.reason


def test_fa_auto_takes_ebpf_when_it_loads_else_userspace() -> None:
    assert select_foreign_agent_backend("auto", ebpf_check=loads).backend == "ebpf"
    fallback = select_foreign_agent_backend("auto", ebpf_check=missing)
    assert fallback.backend == "userspace" and "no BPF object" in fallback.reason


def test_fa_unknown_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="datapath must be one of"):
        select_foreign_agent_backend("xdp")


def test_scenario_datapath_reaches_the_foreign_agents_config() -> None:
    """`--datapath ebpf` applies to the FAs; kernel (no FA backend) gives them userspace."""
    assert foreign_agent_datapath("ebpf") == "ebpf"
    assert foreign_agent_datapath("auto") == "auto"
    assert foreign_agent_datapath("kernel") == "userspace"


def test_ebpf_scenario_refused_up_front_without_the_fa_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--datapath ebpf` starts ebpf foreign agents too: a missing FA object is named before anything runs."""
    from scenarios.harness.options import datapath_problem

    monkeypatch.setenv("DSMIP_FA_BPF_OBJECT", "/nonexistent/fa.bpf.o")
    problem = datapath_problem("handover", "ebpf")
    assert problem is not None and "no BPF object" in problem and "--datapath userspace" in problem


def test_kernel_refusal_gives_its_advice_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--datapath kernel` on a kernel without tunnel modules: one line, one piece of advice (issue 9
    review: the scenario added a second "use --datapath ..." to the one the datapath already gave)."""
    import agents.datapath.selection as selection
    from agents.datapath.kernel import KernelTunnelSupport
    from scenarios.harness.options import datapath_problem

    real = selection.select_backend
    without_modules = KernelTunnelSupport(frozenset(), {"ipip": "Operation not supported"})

    def without_tunnel_modules(requested: str, needs: selection.Needs) -> selection.Choice:
        return real(requested, needs, kernel_probe=lambda: without_modules)

    monkeypatch.setattr(selection, "select_backend", without_tunnel_modules)
    problem = datapath_problem("handover", "kernel")
    assert problem is not None and "\n" not in problem
    assert problem.count("use --datapath") == 1 and "ipip: no (Operation not supported)" in problem
