"""The foreign agent's eBPF datapath (``EbpfForeignAgent``): tc programs (``bpf/fa.bpf.c``) in front of the
userspace foreign agent it extends (:class:`~agents.datapath.foreign_agent.UserspaceForeignAgent`).

* ``fa_wire_in`` (tc ingress of every Ethernet interface but the access one): the home agent's IPv4-in-IPv4
  packet to a care-of address, for a registered visitor, from that visitor's home agent, is decapsulated
  in the kernel (RFC 2003 §3.1, inner TTL - 1) and redirected out of the access interface to the visitor's
  link-layer address (RFC 5944 §4.2.2).
* ``fa_access_in`` (tc ingress of the access interface): a packet from a visitor granted reverse tunnelling,
  from its home address and link-layer address, that the kernel would forward, is encapsulated from the
  care-of address to the home agent (RFC 3024 §4.3, §5.1) and redirected (``bpf_redirect_neigh`` when the
  next hop is not resolved yet).

Everything else continues into the stack and meets the userspace foreign agent's sockets, TUN and rules,
which stay in place: spoofed outer sources, unknown visitors, malformed packets and TTL 1 are decided,
counted and reported there, with the same :class:`~agents.datapath.base.DropReason` values. Visitors
expected by an L2 trigger and the ends of an edge tunnel (RFC 4881 pre- and post-registration) are in a
``punt`` map, so their packets take the userspace path with its buffer: ``--handoff pre|post`` works
unchanged. Counters add the programs' per-CPU counts to the userspace ones. Not carried by this backend:
RFC 3519 UDP tunnels (the FA's datapath carries IP-in-IP only in every backend; a configuration with
``udp_tunnelling`` gets userspace, :mod:`.selection`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
from ipaddress import IPv4Address
from pathlib import Path

from agents.datapath.base import Counters, DropCallback
from agents.datapath.ebpf import (
    _ethernet_interfaces,
    _remove_stale_filters,
    object_problem,
)
from agents.datapath.fa_tables import VisitorRoute
from agents.datapath.foreign_agent import FrameSender, UserspaceForeignAgent
from agents.datapath.libbpf import (
    BPF_TC_INGRESS,
    BpfError,
    BpfObject,
    TcAttachment,
    map_delete,
    map_lookup,
    map_update,
    possible_cpus,
)
from agents.net.arp import interface_mac
from agents.net.netlink import netns_fd_entered

__all__ = ["EbpfForeignAgent", "check_fa_loadable", "fa_object_path"]

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("bpf") / "fa.bpf.c"
DEFAULT_OBJECT = Path(__file__).resolve().parents[2] / "build" / "bpf" / "fa.bpf.o"
OBJECT_ENV = "DSMIP_FA_BPF_OBJECT"
COUNTER_SLOTS = 4  # C_ENC_PKTS, C_ENC_BYTES, C_DEC_PKTS, C_DEC_BYTES in fa.bpf.c
V_REVERSE = 1
VISITOR = struct.Struct("=4s4s6sBx")
CONFIG = struct.Struct("=I6s2x")
ONE = struct.pack("=I", 1)
STALE_FILTER = re.compile(r"pref (\d+) bpf .*\bfa_(?:wire|access)_in\b")


def fa_object_path() -> Path:
    """The compiled object: ``$DSMIP_FA_BPF_OBJECT`` or ``build/bpf/fa.bpf.o`` (tools/build-bpf.sh)."""
    return Path(os.environ.get(OBJECT_ENV) or DEFAULT_OBJECT)


def check_fa_loadable() -> str | None:
    """None if the FA object exists, is not older than its source or headers and passes the verifier."""
    return object_problem(fa_object_path(), SOURCE, OBJECT_ENV)


class EbpfForeignAgent(UserspaceForeignAgent):
    """The userspace foreign agent with the tc fast path in front; :meth:`close` detaches every filter
    (and the clsact qdiscs it created) before the userspace part undoes its own state."""

    def __init__(
        self,
        care_ofs: tuple[IPv4Address, ...],
        send_frame: FrameSender,
        access_interface: str,
        *,
        tunnel_interface: str = "mip-fa",
        table: int = 110,
        rule_priority: int = 1100,
        on_drop: DropCallback | None = None,
    ) -> None:
        self._obj: BpfObject | None = None
        self._attachments: list[TcAttachment] = []
        self._netns = -1
        self._punted: set[IPv4Address] = set()
        self._cpus = possible_cpus()
        path = fa_object_path()
        if not path.is_file():
            raise BpfError(2, f"no BPF object at {path}: build it with tools/build-bpf.sh")
        super().__init__(
            care_ofs, send_frame, access_interface,
            tunnel_interface=tunnel_interface, table=table, rule_priority=rule_priority, on_drop=on_drop,
        )  # fmt: skip
        try:
            self._netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            self._obj = BpfObject(str(path))
            self._maps = {
                name: self._obj.map_fd(name)
                for name in ("fa_config", "fa_care_ofs", "fa_visitors", "fa_punt", "fa_counters")
            }
            index = socket.if_nametoindex(access_interface)
            config = CONFIG.pack(index, interface_mac(access_interface))
            map_update(self._maps["fa_config"], bytes(4), config)
            for address in care_ofs:
                map_update(self._maps["fa_care_ofs"], address.packed, ONE)
            self._attach(index)
        except BaseException:
            self.close()
            raise

    def _attach(self, access_index: int) -> None:
        assert self._obj is not None
        wire, access = self._obj.program_fd("fa_wire_in"), self._obj.program_fd("fa_access_in")
        for index, name in _ethernet_interfaces():
            _remove_stale_filters(name, STALE_FILTER)
            program = access if index == access_index else wire
            self._attachments.append(TcAttachment(index, BPF_TC_INGRESS, program))
            logger.info("%s on %s", "fa_access_in" if index == access_index else "fa_wire_in", name)

    # --- visitor state into the maps -----------------------------------------------------------------

    def set_visitor(self, route: VisitorRoute) -> None:
        """The userspace state (rule) first, then the map entry the fast path reads."""
        super().set_visitor(route)
        flags = V_REVERSE if route.reverse_tunnel else 0
        value = VISITOR.pack(route.home_agent.packed, route.care_of.packed, route.link_address[:6], flags)
        map_update(self._maps["fa_visitors"], route.home_address.packed, value)

    def remove_visitor(self, home_address: IPv4Address) -> None:
        if self._obj is not None:
            map_delete(self._maps["fa_visitors"], home_address.packed)
        super().remove_visitor(home_address)

    # --- RFC 4881: the userspace path for expected visitors and edge-tunnel ends ----------------------

    def _arm_buffer_timer(self) -> None:
        super()._arm_buffer_timer()  # after expect, attach, and each expiry
        self._sync_punt()

    def forward_to(self, home_address: IPv4Address, peer: IPv4Address) -> None:
        super().forward_to(home_address, peer)
        self._sync_punt()

    def accept_from(self, home_address: IPv4Address, peer: IPv4Address, link_address: bytes) -> None:
        super().accept_from(home_address, peer, link_address)
        self._sync_punt()

    def close_edge_tunnel(self, home_address: IPv4Address, grace: float = 0.0) -> None:
        super().close_edge_tunnel(home_address, grace)
        self._sync_punt()

    def _sync_punt(self) -> None:
        """``fa_punt`` = expected visitors ∪ both ends of edge tunnels: their packets go up."""
        if self._obj is None:
            return
        wanted = set(self.bet_out or ()) | set(self.bet_in or ())
        if self.buffers is not None:
            wanted |= set(self.buffers.expected_addresses())
        for home in wanted - self._punted:
            map_update(self._maps["fa_punt"], home.packed, ONE)
        for home in self._punted - wanted:
            map_delete(self._maps["fa_punt"], home.packed)
        self._punted = wanted

    # --- counters, teardown ---------------------------------------------------------------------------

    def counters(self) -> Counters:
        base = super().counters()
        if self._obj is None:
            return base
        values = []
        for slot in range(COUNTER_SLOTS):
            raw = map_lookup(self._maps["fa_counters"], struct.pack("=I", slot), 8 * self._cpus) or b""
            values.append(sum(struct.unpack(f"={len(raw) // 8}Q", raw)))
        return Counters(
            base.encapsulated_packets + values[0],
            base.encapsulated_bytes + values[1],
            base.decapsulated_packets + values[2],
            base.decapsulated_bytes + values[3],
            base.drops,
        )

    def close(self) -> None:
        """Detach the filters (in this datapath's namespace, whatever the calling thread), free the object,
        then the userspace part's close. Idempotent."""
        try:
            if self._attachments:
                with netns_fd_entered(self._netns, "the foreign agent's namespace"):
                    for attachment in reversed(self._attachments):
                        try:
                            attachment.remove()
                        except BpfError as error:
                            logger.error("tc detach: %s", error)
                self._attachments = []
            if self._obj is not None:
                self._obj.close()
                self._obj = None
            if self._netns >= 0:
                os.close(self._netns)
                self._netns = -1
        finally:
            super().close()
