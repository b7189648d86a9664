"""The `[runtime]` section shared by the roles, and loading `[<role>]` + `[runtime]` from one TOML file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agents.datapath.kernel import BackendUnavailableError
from agents.datapath.selection import Choice, Needs, select_backend
from agents.mip.common.trace_schema import TraceEvent
from agents.net.netlink import Netlink
from agents.runtime.configfile import ConfigError, parse_sections, read_text
from agents.runtime.frame import AgentContext
from agents.runtime.scheduling import check_priority

logger = logging.getLogger(__name__)
RuntimeT = TypeVar("RuntimeT", bound="TunnelRuntime")


@dataclass(frozen=True)
class TunnelRuntime:
    """Where an agent runs: its name, its tunnel interface and which datapath moves the packets."""

    name: str = ""
    tunnel_interface: str = "mip0"
    datapath: str = "userspace"
    tunnel_mtu: int = 1280
    """Static IPv6 MTU of the tunnel (RFC 4213 §3.2: 1280–1480)."""
    realtime_priority: int = 0
    """1-99: run at this ``SCHED_FIFO`` priority, dropped if the agent runs away
    (:mod:`agents.runtime.scheduling`); 0: normal scheduling."""

    def __post_init__(self) -> None:
        check_priority("realtime_priority", self.realtime_priority)
        if self.datapath not in ("userspace", "ebpf", "kernel", "auto"):
            raise ValueError(f"datapath {self.datapath!r}: use 'userspace', 'ebpf', 'kernel' or 'auto'")
        if not 1280 <= self.tunnel_mtu <= 1480:
            raise ValueError(f"tunnel_mtu {self.tunnel_mtu} must be 1280..1480 (RFC 4213 §3.2)")


def load_role_file(
    path: Path, section: str, protocol: type[Any], runtime: type[RuntimeT]
) -> tuple[Any, RuntimeT]:
    """`[section]` as ``protocol`` (required) and `[runtime]` as ``runtime`` (defaults when absent)."""
    text = read_text(path)  # its errors already name the file
    try:
        sections = parse_sections(text, {section: protocol, "runtime": runtime}, (section,))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return sections[section], sections.get("runtime", runtime())


def choose_datapath(runtime: TunnelRuntime, context: AgentContext, needs: Needs | None = None) -> Choice:
    """Select the backend (:mod:`agents.datapath.selection`), log it and trace ``datapath_selected`` with
    the reason; an explicit backend that cannot run here is a ValueError (exit 2) naming what is missing."""
    try:
        choice = select_backend(runtime.datapath, needs or Needs())
    except BackendUnavailableError as error:
        raise ValueError(f"runtime.datapath: {error}") from None
    logger.info("datapath %s (asked %s): %s", choice.backend, choice.requested, choice.reason)
    context.trace.emit(TraceEvent.DATAPATH_SELECTED, **choice.to_dict())
    return choice


def require_interface(key: str, name: str, purpose: str) -> None:
    """Refuse (ValueError, so exit 2 naming ``key``) an interface that does not exist here or is a loopback
    device: an agent's link must reach its peers (RFC 5944 §3.6 care-of address, §4.6 home link)."""
    with Netlink() as netlink:
        try:
            loopback = netlink.link_is_loopback(name)
        except LookupError:
            raise ValueError(f"{key}: no network interface {name!r} here (set {key})") from None
    if loopback:
        raise ValueError(f"{key}: {name!r} is a loopback interface; {purpose}")


FIELD_MINIMUM_KEEPALIVE = 10.0
"""RFC 3519 §4.9: a mobile node never shortens K below 10 s; shorter ones are for tests."""


def warn_short_keepalive(key: str, seconds: float) -> None:
    """One warning when a configured keepalive interval is below what RFC 3519 allows in the field."""
    if 0 < seconds < FIELD_MINIMUM_KEEPALIVE:
        logging.getLogger("agents.config").warning(
            "%s = %g s is below RFC 3519's 10 s minimum: for tests only", key, seconds
        )
