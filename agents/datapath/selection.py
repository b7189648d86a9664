"""Which datapath backend runs (``datapath = "userspace" | "kernel" | "ebpf" | "auto"``), and why — the one
place that decides it (design.md §3, issue 9).

``auto`` tries, in order: ``kernel`` (native ipip/sit/gre devices, :mod:`agents.datapath.native`, when the
probe finds all three kinds and the configuration needs nothing they cannot carry: RFC 3519 UDP tunnels,
minimal encapsulation, simultaneous bindings), ``ebpf`` (when
``build/bpf/tunnel.bpf.o`` exists and passes the verifier, and the configuration needs nothing it cannot
carry: RFC 3519 UDP tunnels, minimal encapsulation), else ``userspace``. An explicit ``kernel`` or
``ebpf`` that cannot run is refused with :class:`BackendUnavailableError` naming what is missing;
nothing falls back silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.datapath.kernel import BackendUnavailableError, KernelTunnelSupport, probe_kernel_tunnels

BACKENDS = ("userspace", "kernel", "ebpf", "auto")
EBPF_ENCAPSULATIONS = ("ipip", "gre")
NO_SIMULTANEOUS_BINDINGS = {
    "kernel": "native tunnel devices route a home address to one care-of address and cannot copy a packet "
    "to several (RFC 5944 §3.6.1.3)",
}
"""Backends that cannot send a copy of each packet to each care-of address, and why."""


def simultaneous_bindings_gap(backend: str) -> str | None:
    """Why ``backend`` cannot keep simultaneous bindings, or None (userspace and ebpf copy to each care-of
    address). The home agent then runs with ``simultaneous_bindings = false``: an S request is accepted with
    code 1, "simultaneous mobility bindings unsupported", and replaces the other care-ofs (RFC 5944 §3.4,
    §3.8.3)."""
    return NO_SIMULTANEOUS_BINDINGS.get(backend)


@dataclass(frozen=True)
class Needs:
    """What a role's configuration asks of its datapath beyond IPv4/IPv6-in-IPv4."""

    udp_tunnels: bool = False
    """RFC 3519 UDP tunnelling may be used."""
    other_encapsulations: tuple[str, ...] = ()
    """Encapsulations other than ipip that may be negotiated (gre, minimal)."""
    simultaneous_bindings: bool = False
    """The run needs simultaneous bindings (mobile nodes register with S, RFC 5944 §3.6.1.3: the
    make-before-break handoff): a backend with a :func:`simultaneous_bindings_gap` would answer them with
    code 1, so ``auto`` skips it and an explicit one is refused."""

    def simultaneous_gap(self, backend: str) -> str | None:
        """Why ``backend`` cannot keep the simultaneous bindings this configuration needs, or None."""
        gap = simultaneous_bindings_gap(backend) if self.simultaneous_bindings else None
        return None if gap is None else f"the configuration needs simultaneous bindings: {gap}"

    def kernel_gap(self) -> str | None:
        """Why native tunnel devices cannot serve this configuration (no UDP or minimal device, no copy to
        each care-of address), or None."""
        if self.udp_tunnels:
            return "the configuration uses RFC 3519 UDP tunnels, which have no kernel device"
        if "minimal" in self.other_encapsulations:
            return "the configuration allows minimal encapsulation, which has no kernel device"
        return self.simultaneous_gap("kernel")

    def ebpf_gap(self) -> str | None:
        """Why the ebpf backend cannot serve this configuration, or None."""
        if gap := self.simultaneous_gap("ebpf"):
            return gap
        if self.udp_tunnels:
            return "the configuration uses RFC 3519 UDP tunnels, which the ebpf datapath does not carry"
        missing = [name for name in self.other_encapsulations if name not in EBPF_ENCAPSULATIONS]
        if missing:
            names = ", ".join(missing)
            return f"the configuration allows {names}; the ebpf datapath carries IP-in-IP and GRE only"
        return None


@dataclass(frozen=True)
class Choice:
    """The backend that runs, what was asked, and why (for the trace and meta.json)."""

    backend: str
    requested: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "requested": self.requested, "reason": self.reason}


def ebpf_problem() -> str | None:
    """None if the eBPF object is built and loads here; else why not (imports libbpf lazily)."""
    try:
        from agents.datapath.ebpf import check_loadable
    except OSError as error:  # pragma: no cover - libbpf missing
        return str(error)
    return check_loadable()


def select_backend(
    requested: str,
    needs: Needs = Needs(),
    *,
    kernel_probe: Callable[[], KernelTunnelSupport] = probe_kernel_tunnels,
    ebpf_check: Callable[[], str | None] = ebpf_problem,
) -> Choice:
    """The backend for ``requested`` (ValueError for an unknown name, BackendUnavailableError when an
    explicit backend cannot run here)."""
    if requested not in BACKENDS:
        raise ValueError(f"datapath must be one of {', '.join(BACKENDS)}, not {requested!r}")
    if requested == "userspace":
        return Choice("userspace", requested, "requested")
    if requested == "kernel":
        support = kernel_probe()
        problem = needs.kernel_gap() or (
            None
            if support.complete
            else f"the kernel datapath needs ipip, sit and gre links ({support.describe()}); "
            "use --datapath userspace or ebpf, or run it in the full-kernel VM (./testbed vm)"
        )
        if problem is not None:
            raise BackendUnavailableError(f"--datapath kernel: {problem}")
        return Choice("kernel", requested, f"requested; {support.describe()}")
    gap = needs.ebpf_gap()
    if requested == "ebpf":
        problem = gap or ebpf_check()
        if problem is not None:
            raise BackendUnavailableError(f"--datapath ebpf: {problem}")
        return Choice("ebpf", requested, "requested; BPF object loads")
    support = kernel_probe()
    kernel_gap = needs.kernel_gap()
    if kernel_gap is None and support.complete:
        return Choice("kernel", requested, f"kernel: {support.describe()}")
    kernel = f"kernel: {kernel_gap} ({support.describe()})" if kernel_gap else f"kernel: {support.describe()}"
    problem = gap or ebpf_check()
    if problem is None:
        return Choice("ebpf", requested, f"{kernel}; ebpf: object built and loads")
    return Choice("userspace", requested, f"{kernel}; ebpf: {problem}")


def make_home_agent(choice: Choice, address: Any, **kwargs: Any) -> Any:
    """The home agent datapath of ``choice.backend`` (imports only that backend)."""
    if choice.backend == "kernel":
        from agents.datapath.native import NativeHomeAgent

        return NativeHomeAgent(address, **kwargs)
    if choice.backend == "ebpf":
        from agents.datapath.ebpf import EbpfHomeAgent

        kwargs.pop("udp_socket", None)
        return EbpfHomeAgent(address, **kwargs)
    from agents.datapath.userspace import UserspaceHomeAgent

    return UserspaceHomeAgent(address, **kwargs)


def make_mobile_node(choice: Choice, **kwargs: Any) -> Any:
    """The mobile node datapath of ``choice.backend``."""
    if choice.backend == "kernel":
        from agents.datapath.native import NativeMobileNode

        return NativeMobileNode(**kwargs)
    if choice.backend == "ebpf":
        from agents.datapath.ebpf import EbpfMobileNode

        kwargs.pop("udp_socket", None)
        return EbpfMobileNode(**kwargs)
    from agents.datapath.userspace import UserspaceMobileNode

    return UserspaceMobileNode(**kwargs)


FOREIGN_AGENT_AUTO_EBPF = True
"""Whether ``auto`` picks ebpf for a foreign agent (its differential netns tests pass, tests/netns)."""


def fa_ebpf_problem() -> str | None:
    """None if the foreign agent's eBPF object is built and loads here; else why not."""
    try:
        from agents.datapath.fa_ebpf import check_fa_loadable
    except OSError as error:  # pragma: no cover - libbpf missing
        return str(error)
    return check_fa_loadable()


def select_foreign_agent_backend(
    requested: str, needs: Needs = Needs(), *, ebpf_check: Callable[[], str | None] = fa_ebpf_problem
) -> Choice:
    """The foreign agent's backend: userspace, or ebpf (:mod:`agents.datapath.fa_ebpf`). There is no kernel
    one (an explicit ``kernel`` is refused); ``auto`` takes ebpf when the object loads and the configuration
    needs nothing it cannot carry (RFC 3519 UDP tunnelling), else userspace."""
    if requested not in BACKENDS:
        raise ValueError(f"datapath must be one of {', '.join(BACKENDS)}, not {requested!r}")
    if requested == "userspace":
        return Choice("userspace", requested, "requested")
    if requested == "kernel":
        raise BackendUnavailableError(
            "--datapath kernel: the foreign agent has no kernel datapath; use userspace, ebpf or auto"
        )
    problem = needs.ebpf_gap() or ebpf_check()
    if requested == "ebpf":
        if problem is not None:
            raise BackendUnavailableError(f"--datapath ebpf: {problem}")
        return Choice("ebpf", requested, "requested; FA BPF object loads")
    if problem is None and FOREIGN_AGENT_AUTO_EBPF:
        return Choice("ebpf", requested, "ebpf: FA object built and loads")
    return Choice("userspace", requested, f"ebpf: {problem or 'not chosen by auto for the foreign agent'}")


def make_foreign_agent(choice: Choice, *args: Any, **kwargs: Any) -> Any:
    """The foreign agent datapath of ``choice.backend``."""
    if choice.backend == "ebpf":
        from agents.datapath.fa_ebpf import EbpfForeignAgent

        return EbpfForeignAgent(*args, **kwargs)
    from agents.datapath.foreign_agent import UserspaceForeignAgent

    return UserspaceForeignAgent(*args, **kwargs)
