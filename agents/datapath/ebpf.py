"""The tc-eBPF datapath for both roles: ``EbpfHomeAgent`` and ``EbpfMobileNode``.

Same interface, routes, rules, addresses and observable behaviour as :mod:`agents.datapath.userspace`
(whose classes these extend): the kernel still routes packets into the tunnel interface (a TUN device
nobody reads), but a tc egress program on it (``tun_egress`` in ``bpf/tunnel.bpf.c``) encapsulates them
in the kernel and hands them to the underlay interface, and a tc ingress program on every other
Ethernet interface of the namespace (``wire_ingress``) checks reverse-tunnelled packets (RFC 3024
§4.3.2, RFC 5454 §3.3.2 and §4), applies RFC 6040 / RFC 2983 to the inner TOS, strips the outer
header(s) and redirects the inner packet to the tunnel interface's ingress. Bindings, care-of
addresses and prefixes live in BPF maps, so a handover is one map update; drops are counted per
:class:`~agents.datapath.base.DropReason` in a per-CPU array and reported through a ring buffer.

Encapsulations: IP-in-IP (RFC 2003) and GRE (RFC 2784, plain 4-byte header), IPv6 as protocol 41 or in
GRE to a GRE care-of address (RFC 5454 §3.3.2). What it does not carry (refused with a message, or
counted ``malformed`` on the way in): minimal encapsulation, GRE with checksum, key or sequence number,
RFC 3519 UDP tunnels (``datapath = "auto"`` picks userspace for such configurations, :mod:`.selection`),
outer IPv4 options or fragments. Simultaneous bindings (RFC 5944 §3.6.1.3): a copy of each packet goes to
each care-of address, as in userspace: the egress program encapsulates once, sends a ``bpf_clone_redirect``
clone per further care-of address with only the outer destination rewritten, then the packet itself to the
newest. Bounds: at most :data:`MAX_COPIES` (4) care-of addresses, all with the newest one's encapsulation;
a care-of past the bound (the oldest first) or with another encapsulation gets no copy (logged with the
addresses). A clone needs the next hop's neighbour entry already resolved (no ``bpf_redirect_neigh`` for
clones): without one that copy is counted ``send_failed``. Reverse tunnels are accepted from all.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

from agents.datapath.base import Counters, DropCallback, DropEvent, DropReason, Encapsulation, TunnelTarget
from agents.datapath.engine import TunnelOptions
from agents.datapath.libbpf import (
    BPF_TC_EGRESS,
    BPF_TC_INGRESS,
    BpfError,
    BpfObject,
    RingBuffer,
    TcAttachment,
    map_delete,
    map_lookup,
    map_update,
    possible_cpus,
    trial_run,
)
from agents.datapath.projection import Change, HomeBinding
from agents.datapath.tables import HomeAgentTable, MobileNodeTable
from agents.datapath.userspace import UserspaceHomeAgent, UserspaceMobileNode
from agents.mip.common.bindings import effective_target, ipv4_copies, ipv4_sources
from agents.mip.wire.ecn import DscpModel, ingress_table
from agents.net.netlink import netns_fd_entered
from agents.net.tun import TunDevice

logger = logging.getLogger(__name__)

__all__ = ["EbpfHomeAgent", "EbpfMobileNode", "bpf_object_path", "check_loadable"]

SOURCE = Path(__file__).with_name("bpf") / "tunnel.bpf.c"
DEFAULT_OBJECT = Path(__file__).resolve().parents[2] / "build" / "bpf" / "tunnel.bpf.o"
OBJECT_ENV = "DSMIP_BPF_OBJECT"
ROLE_HA, ROLE_MN = 0, 1
TARGET_HOME, TARGET_CARE_OF = 0, 1
COUNTER_SLOTS = 4 + len(DropReason)
REASONS = tuple(DropReason)  # the C enum follows this order
DROP_EVENT = struct.Struct("=IIII B3x 16s 16s")
POLL_MS = 200
PROTO_IPIP = 4
PROTO_GRE = 47
ONE = struct.pack("=I", 1)
TARGET_HOME_BYTES = struct.pack("=I", TARGET_HOME)
TARGET_CARE_OF_BYTES = struct.pack("=I", TARGET_CARE_OF)
MAX_COPIES = 4
"""Care-of addresses one home address's packets are copied to (``MAX_COPIES`` in tunnel.bpf.c)."""
HOME_VALUE = struct.Struct(f"=4sII{4 * MAX_COPIES}s")


class EbpfUnavailableError(RuntimeError):
    """The eBPF datapath cannot run here or cannot carry what was asked; the message says why."""


def bpf_object_path() -> Path:
    """The compiled object: ``$DSMIP_BPF_OBJECT`` or ``build/bpf/tunnel.bpf.o`` (tools/build-bpf.sh)."""
    return Path(os.environ.get(OBJECT_ENV) or DEFAULT_OBJECT)


def check_loadable() -> str | None:
    """None if the object exists, is not older than its source or headers and passes the verifier."""
    return object_problem(bpf_object_path(), SOURCE, OBJECT_ENV)


def object_problem(path: Path, source: Path, override_env: str) -> str | None:
    """Why the BPF object at ``path`` cannot be used (missing, older than ``source`` or a header it
    includes unless ``$override_env`` names it, refused by the verifier), or None."""
    if not path.is_file():
        return f"no BPF object at {path} (build it: tools/build-bpf.sh, needs clang)"
    if override_env not in os.environ and (newer := newer_input(path, source)) is not None:
        return f"{path} is older than {newer.name}: rebuild it (tools/build-bpf.sh)"
    try:
        loaded = BpfObject(str(path))
    except BpfError as error:
        return str(error)
    try:
        return decap_problem(loaded)
    finally:
        loaded.close()


DECAP_PROBE_FRAME = (
    bytes(12)
    + b"\x08\x00"  # Ethernet, IPv4
    + bytes.fromhex("4500002c00000000400400000a0000010a000002")  # outer IPv4, protocol 4 (RFC 2003)
    + bytes.fromhex("4500001800000000401100000a0000030a000004")  # inner IPv4, UDP
    + bytes(4)
)
"""One IPv4-in-IPv4 frame for ``decap_probe`` (bpf/decap_probe.h); checksums do not matter to the helper."""


def decap_problem(loaded: BpfObject) -> str | None:
    """Why this kernel cannot decapsulate with the loaded object's programs, or None: test-run its
    ``decap_probe`` (Linux < 6.3 loads the programs but refuses BPF_F_ADJ_ROOM_DECAP_L3_IPV4 at run time,
    so every tunnelled packet would be dropped). An object without the probe is not checked."""
    try:
        program = loaded.program_fd("decap_probe")
    except BpfError:
        return None
    try:
        error = trial_run(program, DECAP_PROBE_FRAME)
    except BpfError as failure:
        return f"cannot test-run the decapsulation probe: {failure}"
    if error:
        return (
            f"this kernel ({os.uname().release}) refuses bpf_skb_adjust_room's BPF_F_ADJ_ROOM_DECAP_L3_IPV4 "
            f"({os.strerror(error)}; it needs Linux 6.3 or later): the ebpf datapath could not decapsulate"
        )
    return None


LOCAL_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.MULTILINE)
"""``#include "checksum.h"``: a header of the repository (``<...>`` ones are the system's)."""


def build_inputs(source: Path) -> list[Path]:
    """``source`` and the local headers it includes, followed recursively (found next to the file that
    includes them, as clang looks first): what its object is built from. Missing files are left out."""
    found: list[Path] = []
    pending = [source]
    while pending:
        path = pending.pop(0)
        if path in found or not path.is_file():
            continue
        found.append(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        pending.extend(path.parent / name for name in LOCAL_INCLUDE.findall(text))
    return found


def newer_input(path: Path, source: Path) -> Path | None:
    """The first of :func:`build_inputs` modified after the object at ``path`` (None: up to date)."""
    built = path.stat().st_mtime
    return next((item for item in build_inputs(source) if item.stat().st_mtime > built), None)


def _v6_key(prefix: IPv6Network) -> bytes:
    return struct.pack("=I", prefix.prefixlen) + prefix.network_address.packed


@dataclass
class _Programs:
    """The loaded object and where its programs are attached."""

    obj: BpfObject
    maps: dict[str, int]
    attachments: list[TcAttachment] = field(default_factory=list)


class EbpfEngine:
    """Stands where :class:`~agents.datapath.engine.PacketEngine` does: owns the TUN (unread), the BPF
    object, the tc attachments and a thread reading drop reports."""

    def __init__(
        self,
        interface_name: str,
        options: TunnelOptions,
        on_drop: DropCallback | None,
        role: int,
        self_address: IPv4Address | None = None,
    ) -> None:
        self.options = options
        self.table: object = None  # the userspace classes publish tables here; the maps are what counts
        self._on_drop = on_drop
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._udp_drops = 0
        self._cpus = possible_cpus()
        path = bpf_object_path()
        if not path.is_file():
            raise EbpfUnavailableError(f"no BPF object at {path}: build it with tools/build-bpf.sh")
        self.tun = TunDevice(interface_name)
        self._netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            obj = BpfObject(str(path))
        except BaseException:
            self.tun.close()
            os.close(self._netns)
            raise
        names = ("config", "tos_out", "counters", "homes", "care_ofs", "accepts", "owners", "mobile", "drops")
        self._bpf = _Programs(obj, {name: obj.map_fd(name) for name in names})
        try:
            self._configure(role, self_address)
            self._ring = RingBuffer(self._bpf.maps["drops"], self._report)
        except BaseException:
            self._release()
            raise

    def fd(self, name: str) -> int:
        return self._bpf.maps[name]

    def _configure(self, role: int, self_address: IPv4Address | None) -> None:
        options, fd = self.options, self.fd
        index = socket.if_nametoindex(self.tun.name)
        address = self_address.packed if self_address else bytes(4)
        pipe = int(options.dscp_model is DscpModel.PIPE)
        config = struct.pack("=II4sII", role, index, address, options.ttl, pipe)
        map_update(fd("config"), bytes(4), config)
        for tos, outer in enumerate(ingress_table(options.ecn_mode, options.dscp_model)):
            map_update(fd("tos_out"), struct.pack("=I", tos), bytes((outer,)))

    def start(self) -> None:
        """Attach the programs (egress of the TUN, ingress of the other Ethernet interfaces), start the
        drop-report reader."""
        obj, attachments = self._bpf.obj, self._bpf.attachments
        with self._own_namespace():
            tun_index = socket.if_nametoindex(self.tun.name)
            attachments.append(TcAttachment(tun_index, BPF_TC_EGRESS, obj.program_fd("tun_egress")))
            ingress = obj.program_fd("wire_ingress")
            for index, name in _ethernet_interfaces():
                if index != tun_index:
                    _remove_stale_filters(name)
                    attachments.append(TcAttachment(index, BPF_TC_INGRESS, ingress))
                    logger.info("wire_ingress on %s", name)
        self._thread = threading.Thread(target=self._poll, name=f"{self.tun.name}-drops", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._ring.poll(POLL_MS)

    def _report(self, record: bytes) -> None:
        if self._on_drop is None or len(record) < DROP_EVENT.size:
            return
        reason, protocol, source, destination, version, inner_src, inner_dst = DROP_EVENT.unpack_from(record)
        inner: tuple[str | None, str | None] = (None, None)
        if version == 4:
            inner = (str(IPv4Address(inner_src[:4])), str(IPv4Address(inner_dst[:4])))
        elif version == 6:
            inner = (str(IPv6Address(inner_src)), str(IPv6Address(inner_dst)))
        try:
            self._on_drop(
                DropEvent(
                    REASONS[reason],
                    protocol,
                    IPv4Address(struct.pack("=I", source)),
                    IPv4Address(struct.pack("=I", destination)),
                    *inner,
                )
            )
        except Exception:
            logger.exception("on_drop callback failed")

    def counters(self) -> Counters:
        values = []
        for slot in range(COUNTER_SLOTS):
            raw = map_lookup(self.fd("counters"), struct.pack("=I", slot), 8 * self._cpus) or b""
            values.append(sum(struct.unpack(f"={len(raw) // 8}Q", raw)))
        drops = {reason.value: values[4 + i] for i, reason in enumerate(REASONS) if values[4 + i]}
        if self._udp_drops:
            key = DropReason.UNKNOWN_OUTER_SOURCE.value
            drops[key] = drops.get(key, 0) + self._udp_drops
        return Counters(values[0], values[1], values[2], values[3], drops)

    def receive_udp(self, payload: bytes, source: bytes, port: int) -> None:
        """No RFC 3519 UDP tunnel is registered with this backend: Tunnel Data is refused and counted."""
        self._udp_drops += 1

    def stop(self, delete_interface: object) -> None:
        """Detach every filter (and the clsact qdiscs this engine created), stop the reader, delete the TUN
        (``delete_interface``) and free the programs and maps."""
        self._stopping.set()
        try:
            with self._own_namespace():  # libbpf's tc calls open netlink sockets where the thread is
                for attachment in reversed(self._bpf.attachments):
                    try:
                        attachment.remove()
                    except BpfError as error:
                        logger.error("tc detach: %s", error)
            if callable(delete_interface):
                delete_interface()
        finally:
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._ring.close()
            self._release()

    def _release(self) -> None:
        self._bpf.obj.close()
        self.tun.close()
        os.close(self._netns)

    def _own_namespace(self) -> contextlib.AbstractContextManager[None]:
        """Run the block in the network namespace this engine was made in (close() may come from any
        thread, e.g. a test's main thread outside the namespace)."""
        return netns_fd_entered(self._netns, "the datapath's namespace")  # libbpf acts in the caller's


SIOCGIFHWADDR = 0x8927
ARPHRD_ETHER = 1


def _ethernet_interfaces() -> Iterable[tuple[int, str]]:
    """(index, name) of the calling thread's namespace's Ethernet interfaces (loopback and TUNs excluded).

    Asked with ioctl(SIOCGIFHWADDR) on a socket made here: /sys/class/net shows the namespace sysfs was
    mounted in, which is not the thread's after setns()."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for index, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(probe, SIOCGIFHWADDR, struct.pack("16s16x", name.encode()))
            except OSError:
                continue
            if struct.unpack_from("=H", answer, 16)[0] == ARPHRD_ETHER:
                yield index, name


STALE_FILTER = re.compile(r"pref (\d+) bpf .*\bwire_ingress\b")


def _remove_stale_filters(interface: str, pattern: re.Pattern[str] = STALE_FILTER) -> None:
    """Filters of a datapath that was killed (SIGKILL: no close()) still hold its programs on the ingress
    hook: remove them, with the clsact qdisc when nothing else is attached, so this engine owns a fresh one
    and its close() leaves the link as it was before either (HA crash recovery, design.md §9)."""
    shown = subprocess.run(
        ["tc", "filter", "show", "dev", interface, "ingress"], capture_output=True, text=True, check=False
    ).stdout
    filters = [line for line in shown.splitlines() if " handle " in line]
    stale = [match.group(1) for line in filters if (match := pattern.search(line))]
    if not stale:
        return
    if len(stale) == len(filters):
        subprocess.run(["tc", "qdisc", "del", "dev", interface, "clsact"], capture_output=True, check=False)
    else:
        for pref in dict.fromkeys(stale):
            command = ["tc", "filter", "del", "dev", interface, "ingress", "pref", pref]
            subprocess.run(command, capture_output=True, check=False)
    logger.warning(
        "removed %d stale filter(s) matching %s on %s left by a killed datapath",
        len(stale),
        pattern.pattern,
        interface,
    )


def _protocol(encapsulation: Encapsulation) -> bytes:
    """The map value of an outer protocol: 4 (RFC 2003) or 47 (RFC 2784)."""
    return struct.pack("=I", PROTO_GRE if encapsulation is Encapsulation.GRE else PROTO_IPIP)


def _refuse_unsupported(encapsulation: Encapsulation, udp_port: int | None) -> None:
    if udp_port is not None:
        raise EbpfUnavailableError(
            "the ebpf datapath does not carry RFC 3519 UDP tunnels: use datapath userspace (or auto)"
        )
    if encapsulation is Encapsulation.MINIMAL:
        raise EbpfUnavailableError(
            "the ebpf datapath carries IP-in-IP and GRE, not minimal encapsulation: use datapath userspace"
        )


@dataclass(frozen=True)
class _HomeEntries:
    """What one binding put into the maps (so a change writes and deletes exactly the difference)."""

    home: bytes = b""
    """The ``homes`` value: home agent, outer protocol, number of copies, their care-of addresses."""
    care_ofs: dict[bytes, bytes] = field(default_factory=dict)
    """``accepts``: care-of address → the outer protocol negotiated with it (4 or 47)."""
    prefixes: dict[IPv6Network, bytes] = field(default_factory=dict)
    """``owners`` values: home address + target."""
    left_out: tuple[IPv4Address, ...] = ()
    """Care-of addresses the core gave a copy that this backend does not send one (see module doc)."""


def home_entries(binding: HomeBinding) -> _HomeEntries:
    """The map entries of ``binding``, compiled from the core's answers (:mod:`agents.mip.common.bindings`): a
    copy to each care-of address (RFC 5944 §3.6.1.3), the newest first, up to :data:`MAX_COPIES` with the
    newest one's encapsulation (the egress program rewrites only the outer destination per copy)."""
    care_ofs = binding.encapsulations()
    copies = ipv4_copies(care_ofs)  # the egress program derives IPv6's copies from these and the target
    newest_first = copies[::-1]
    protocol = newest_first[0].protocol if newest_first else PROTO_IPIP
    sent = [copy for copy in newest_first if copy.protocol == protocol][:MAX_COPIES]
    addresses = b"".join(copy.care_of.address.packed for copy in sent)
    home = HOME_VALUE.pack(binding.home_agent.packed, protocol, len(sent), addresses)
    sources = ipv4_sources(care_ofs, copies)
    accepts = {address.packed: struct.pack("=I", proto) for address, proto in sources.items()}
    owner = binding.home_address.packed
    prefixes = {
        prefix: owner + (TARGET_CARE_OF_BYTES if target is TunnelTarget.CARE_OF else TARGET_HOME_BYTES)
        for prefix, registered in binding.prefixes.items()
        for target in [effective_target(prefix, registered)]
    }
    left_out: tuple[IPv4Address, ...] = ()
    if len(sent) < len(copies):
        left_out = tuple(copy.care_of.address for copy in newest_first if copy not in sent)
    return _HomeEntries(home, accepts, prefixes, left_out)


class EbpfHomeAgent(UserspaceHomeAgent):
    """Home agent datapath in tc-eBPF; the core's events are recorded as in the userspace backend
    (:class:`~agents.datapath.projection.HomeProjection`), the packet path is the maps this class keeps
    in step (a binding change costs a few map updates, whatever the table size)."""

    def __init__(self, address: IPv4Address, **kwargs: object) -> None:
        self._map_entries: dict[IPv4Address, _HomeEntries] = {}
        self._care_of_users: dict[bytes, int] = {}
        super().__init__(address, **kwargs)  # type: ignore[arg-type]

    def _make_engine(  # type: ignore[override]
        self,
        interface_name: str,
        table: HomeAgentTable | MobileNodeTable,
        options: TunnelOptions,
        on_drop: DropCallback | None,
        underlay_interface: str | None,
        udp_socket: socket.socket | None,
    ) -> EbpfEngine:
        return EbpfEngine(interface_name, options, on_drop, ROLE_HA, self.address)

    @property
    def maps(self) -> EbpfEngine:
        return self._engine  # type: ignore[return-value]

    def add_ipv4_tunnel(
        self,
        home_address: IPv4Address,
        care_of: IPv4Address,
        encapsulation: Encapsulation = Encapsulation.IP_IN_IP,
        *,
        home_agent: IPv4Address,
        reverse_tunnel: bool = True,
        udp_port: int | None = None,
    ) -> None:
        _refuse_unsupported(encapsulation, udp_port)
        super().add_ipv4_tunnel(
            home_address, care_of, encapsulation, home_agent=home_agent, reverse_tunnel=reverse_tunnel
        )

    def _install(self, change: Change) -> None:
        """Make the maps say what the new binding says (None: forget the home address), writing only what
        changed: new entries first, then stale ones go, so a packet in between finds the old or the new
        binding, never none. A handover is one ``homes`` update and one ``accepts`` insert (the userspace
        table is not kept: no thread reads it here)."""
        home_address, binding = change.home_address, change.new
        fd, home = self.maps.fd, home_address.packed
        old = self._map_entries.get(home_address, _HomeEntries())
        new = _HomeEntries() if binding is None else home_entries(binding)
        if new.home and new.home != old.home:
            map_update(fd("homes"), home, new.home)
        for care_of, protocol in new.care_ofs.items():
            if old.care_ofs.get(care_of) != protocol:
                map_update(fd("accepts"), care_of + home, protocol)
            if care_of not in old.care_ofs:
                self._count_care_of(care_of, +1)
        for prefix, value in new.prefixes.items():
            if old.prefixes.get(prefix) != value:
                map_update(fd("owners"), _v6_key(prefix), value)
        for prefix in old.prefixes.keys() - new.prefixes.keys():
            map_delete(fd("owners"), _v6_key(prefix))
        for care_of in old.care_ofs.keys() - new.care_ofs.keys():
            map_delete(fd("accepts"), care_of + home)
            self._count_care_of(care_of, -1)
        if binding is None:
            map_delete(fd("homes"), home)
            self._map_entries.pop(home_address, None)
            return
        self._map_entries[home_address] = new
        if new.left_out and new.left_out != old.left_out:
            logger.warning(
                "%s: no copy to %s: the ebpf datapath copies to at most %d care-of addresses sharing the "
                "newest one's encapsulation (RFC 5944 §3.6.1.3; the userspace datapath copies to all)",
                home_address,
                ", ".join(map(str, new.left_out)),
                MAX_COPIES,
            )

    def _count_care_of(self, care_of: bytes, change: int) -> None:
        """``care_ofs``: the care-of addresses some binding uses (RFC 3024 §4.3.2 "known source"); the
        reference count stays here, the map changes only when an address comes or goes."""
        left = self._care_of_users.get(care_of, 0) + change
        if left > 0:
            self._care_of_users[care_of] = left
            if left == change:
                map_update(self.maps.fd("care_ofs"), care_of, ONE)
        else:
            self._care_of_users.pop(care_of, None)
            map_delete(self.maps.fd("care_ofs"), care_of)


class EbpfMobileNode(UserspaceMobileNode):
    """Mobile node datapath in tc-eBPF: the tunnel (home agent, care-of, reverse tunnelling) is one map
    entry and the source prefixes an LPM map, published whenever the userspace class publishes its table."""

    def __init__(self, **kwargs: object) -> None:
        self._published_sources: set[IPv6Network] = set()
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def _make_engine(  # type: ignore[override]
        self,
        interface_name: str,
        table: HomeAgentTable | MobileNodeTable,
        options: TunnelOptions,
        on_drop: DropCallback | None,
        underlay_interface: str | None,
        udp_socket: socket.socket | None,
    ) -> EbpfEngine:
        return EbpfEngine(interface_name, options, on_drop, ROLE_MN)

    def _configure_interface(self, options: TunnelOptions) -> None:
        super()._configure_interface(options)
        # The egress program's FIB lookup is a forwarding lookup "from" the tunnel interface.
        self._netlink.set_sysctl(f"net/ipv4/conf/{self.interface_name}/forwarding", 1)

    def add_ipv4_tunnel(
        self,
        home_address: IPv4Address,
        care_of: IPv4Address,
        encapsulation: Encapsulation = Encapsulation.IP_IN_IP,
        *,
        home_agent: IPv4Address,
        reverse_tunnel: bool = True,
        colocated: bool = True,
        udp_port: int | None = None,
    ) -> None:
        _refuse_unsupported(encapsulation, udp_port)
        super().add_ipv4_tunnel(
            home_address,
            care_of,
            encapsulation,
            home_agent=home_agent,
            reverse_tunnel=reverse_tunnel,
            colocated=colocated,
        )

    def _publish(self) -> None:
        super()._publish()
        engine: EbpfEngine = self._engine  # type: ignore[assignment]
        tunnel, home = self._tunnel, self._home
        if tunnel is None or home is None:
            value = bytes(24)
        else:
            care_of = tunnel.care_of.packed if tunnel.care_of else bytes(4)
            value = (
                home.packed
                + tunnel.home_agent.packed
                + care_of
                + struct.pack("=II", tunnel.reverse_tunnel, 1)
                + _protocol(tunnel.encapsulation)
            )
        sources = dict(self._sources)
        for prefix, target in sources.items():
            direct = target is TunnelTarget.CARE_OF and not prefix.is_link_local
            value_prefix = bytes(4) + struct.pack("=I", TARGET_CARE_OF if direct else TARGET_HOME)
            map_update(engine.fd("owners"), _v6_key(prefix), value_prefix)
        map_update(engine.fd("mobile"), bytes(4), value)
        for prefix in self._published_sources - sources.keys():
            map_delete(engine.fd("owners"), _v6_key(prefix))
        self._published_sources = set(sources)
