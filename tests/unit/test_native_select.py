"""Choosing the ``kernel`` datapath (issue 9/15): taken only where the probe found ipip, sit and gre; refused
elsewhere with what is missing and where to run it; ``auto`` stays userspace. Minimal encapsulation has no
kernel device. No root: the probe's result is given."""

from __future__ import annotations

import pytest

from agents.datapath.base import Encapsulation
from agents.datapath.kernel import BackendUnavailableError, KernelTunnelSupport, select_backend
from agents.datapath.native import native_kind

FULL = KernelTunnelSupport(frozenset({"ipip", "sit", "gre"}))
NONE = KernelTunnelSupport(
    frozenset(), {kind: "Operation not supported (95)" for kind in ("ipip", "sit", "gre")}
)


def test_kernel_where_the_modules_exist() -> None:
    assert select_backend("kernel", FULL) == "kernel"


def test_kernel_refused_where_they_do_not() -> None:
    with pytest.raises(BackendUnavailableError, match=r"ipip: no \(Operation not supported.*\./testbed vm"):
        select_backend("kernel", NONE)


def test_auto_and_userspace_stay_userspace() -> None:
    assert select_backend("auto", FULL) == "userspace"
    assert select_backend("userspace", NONE) == "userspace"
    with pytest.raises(ValueError):
        select_backend("turbo", FULL)


def test_kernel_link_kinds() -> None:
    assert native_kind(Encapsulation.IP_IN_IP) == "ipip"
    assert native_kind(Encapsulation.GRE) == "gre"
    with pytest.raises(ValueError, match="no kernel device"):
        native_kind(Encapsulation.MINIMAL)
