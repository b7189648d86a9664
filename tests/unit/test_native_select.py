"""Choosing the ``kernel`` datapath (issue 9/15): taken only where the probe found ipip, sit and gre; refused
elsewhere with what is missing and where to run it; ``auto`` picks it first where the probe finds the three
kinds (issue 9), else ebpf, else userspace. Minimal encapsulation and UDP tunnels have no kernel device.
No root: the probe's result is given."""

from __future__ import annotations

import pytest

from agents.datapath.base import Encapsulation
from agents.datapath.kernel import BackendUnavailableError, KernelTunnelSupport
from agents.datapath.native import native_kind
from agents.datapath.selection import Needs, select_backend


def backend(requested: str, support: KernelTunnelSupport, needs: Needs | None = None) -> str:
    chosen = select_backend(
        requested, needs or Needs(), kernel_probe=lambda: support, ebpf_check=lambda: "not built"
    )
    return chosen.backend

FULL = KernelTunnelSupport(frozenset({"ipip", "sit", "gre"}))
NONE = KernelTunnelSupport(
    frozenset(), {kind: "Operation not supported (95)" for kind in ("ipip", "sit", "gre")}
)


def test_kernel_where_the_modules_exist() -> None:
    assert backend("kernel", FULL) == "kernel"


def test_kernel_refused_where_they_do_not() -> None:
    with pytest.raises(BackendUnavailableError, match=r"ipip: no \(Operation not supported.*\./testbed vm"):
        backend("kernel", NONE)


def test_kernel_refused_for_what_has_no_device() -> None:
    with pytest.raises(BackendUnavailableError, match="UDP tunnels"):
        backend("kernel", FULL, Needs(udp_tunnels=True))
    with pytest.raises(BackendUnavailableError, match="minimal"):
        backend("kernel", FULL, Needs(other_encapsulations=("gre", "minimal")))


def test_auto_picks_kernel_where_the_modules_exist_and_says_so() -> None:
    chosen = select_backend("auto", Needs(), kernel_probe=lambda: FULL, ebpf_check=lambda: None)
    assert chosen.backend == "kernel" and "ipip: yes" in chosen.reason
    assert backend("auto", NONE) == "userspace"
    for needs in (Needs(udp_tunnels=True), Needs(other_encapsulations=("minimal",))):
        chosen = select_backend("auto", needs, kernel_probe=lambda: FULL, ebpf_check=lambda: "not built")
        assert chosen.backend == "userspace" and "no kernel device" in chosen.reason, chosen


def test_auto_skips_kernel_when_the_run_needs_simultaneous_bindings_rfc5944_3_6_1_3() -> None:
    """Make-before-break: the kernel backend's HA would answer S with code 1 (RFC 5944 §3.8.3), so ``auto``
    takes the next backend that copies to each care-of address, and its reason (trace, meta.json) says why."""
    needs = Needs(simultaneous_bindings=True)
    chosen = select_backend("auto", needs, kernel_probe=lambda: FULL, ebpf_check=lambda: None)
    assert chosen.backend == "ebpf", chosen
    assert "needs simultaneous bindings" in chosen.reason and "ipip: yes" in chosen.reason
    chosen = select_backend("auto", needs, kernel_probe=lambda: FULL, ebpf_check=lambda: "not built")
    assert chosen.backend == "userspace" and "needs simultaneous bindings" in chosen.reason, chosen
    chosen = select_backend("ebpf", needs, kernel_probe=lambda: FULL, ebpf_check=lambda: None)
    assert chosen.backend == "ebpf"  # ebpf copies to each care-of address: no gap
    with pytest.raises(BackendUnavailableError, match="needs simultaneous bindings"):
        backend("kernel", FULL, needs)  # asked for explicitly: refused, never a silent code 1


def test_userspace_stays_userspace() -> None:
    assert backend("userspace", NONE) == "userspace"
    with pytest.raises(ValueError):
        backend("turbo", FULL)


def test_kernel_link_kinds() -> None:
    assert native_kind(Encapsulation.IP_IN_IP) == "ipip"
    assert native_kind(Encapsulation.GRE) == "gre"
    with pytest.raises(ValueError, match="no kernel device"):
        native_kind(Encapsulation.MINIMAL)


def test_kernel_routes_follow_the_newest_care_of_and_each_prefix_target_rfc5454_3_3_2() -> None:
    """The kernel backend's routes come from the core's answers: the /32 into the newest care-of's tunnel
    (a route cannot copy, RFC 5944 §3.6.1.3), a code-1 prefix to that care-of, a code-0 prefix (and a code-1
    one whose care-of uses minimal encapsulation, which cannot carry IPv6) to the home address; link-locals
    ride the home-address tunnel and get no route."""
    from ipaddress import IPv4Address, IPv6Network

    from agents.datapath.base import TunnelTarget
    from agents.datapath.native import KernelRoutes, kernel_routes
    from agents.datapath.projection import HomeBinding

    home, agent = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.1")
    old, new = IPv4Address("198.51.100.5"), IPv4Address("198.51.100.6")
    code0, code1 = IPv6Network("2001:db8:1::/64"), IPv6Network("2001:db8:2::/64")
    link_local = IPv6Network("fe80::c000:20a/128")
    prefixes = {code0: TunnelTarget.HOME_ADDRESS, code1: TunnelTarget.CARE_OF}
    prefixes[link_local] = TunnelTarget.CARE_OF
    care_ofs = {old: Encapsulation.IP_IN_IP, new: Encapsulation.GRE}
    routes = kernel_routes(HomeBinding(home, agent, care_ofs, prefixes))
    assert routes == KernelRoutes((new, Encapsulation.GRE), {code0: home, code1: new})
    minimal = HomeBinding(home, agent, {old: Encapsulation.MINIMAL}, prefixes)
    assert kernel_routes(minimal).prefixes == {code0: home, code1: home}
    assert kernel_routes(None) == KernelRoutes() == kernel_routes(HomeBinding(home, agent))
