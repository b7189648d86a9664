"""Raw rtnetlink requests for the changes on a handover's critical path (issue 14) and the home agent's
per-binding ones (issue 9): routes, neighbour entries (permanent and proxy), policy rules, addresses and
the harness's link moves, built with ``struct`` and sent on a plain ``AF_NETLINK`` socket from the calling
thread.

pyroute2 (behind :class:`agents.net.netlink.Netlink`) costs ~0.25 ms of Python per request, plus a
hand-over to the facade's worker thread; on a loaded machine one request took up to several ms, and the
mobile node's route change (three requests) kept its loop from reading the registration reply. Here a
request is one ``send`` and one ``recv`` of the kernel's acknowledgement (a few µs): rtnetlink applies
the change inside the ``send``.

The messages take the pyroute2 argument dicts the facade already builds (and keeps for its undo), and
are encoded the way pyroute2 encodes them (protocol ``static`` and type ``unicast`` for an added route,
both unspecified for a deletion; a table above 255 in ``RTA_TABLE``/``FRA_TABLE`` with 252 in the
header; NUD_PERMANENT in a neighbour request), so an object added here is found by a pyroute2 deletion and
vice versa. The facade's undo sends its deletions :data:`BATCH` to one ``send``
(:meth:`RtnlSocket.request_all`): the kernel carries them out in order and acknowledges each.

:class:`RtnlSocket` is created in the network namespace whose objects it changes (the facade makes it
on its worker thread) and may then be used from any thread: a socket keeps the namespace it was made in,
for netlink requests and for the ``SIOCGIFINDEX`` lookups alike.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK = 16
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_NEWRULE, RTM_DELRULE = 32, 33
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
RTPROT_STATIC = 4
RTN_UNICAST, RTN_LOCAL = 1, 2
RT_TABLE_LOCAL = 255
RT_TABLE_MAIN = 254
RT_TABLE_COMPAT = 252
FR_ACT_TO_TBL = 1
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_METRICS, RTA_TABLE = 1, 4, 5, 6, 7, 8, 15
RTAX_MTU = 2
NDA_DST, NDA_LLADDR = 1, 2
NTF_PROXY = 0x08
NUD_PERMANENT = 0x80
IFLA_MASTER = 10
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1
FRA_SRC, FRA_IIFNAME, FRA_PRIORITY, FRA_TABLE = 2, 3, 6, 15
SIOCGIFINDEX = 0x8933

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change mask
_FIBMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, res1, res2, action, flags
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_ERRNO = struct.Struct("=i")

ROUTE_COMMANDS = {"add": (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL), "del": (RTM_DELROUTE, 0)}
RULE_COMMANDS = {"add": (RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL), "del": (RTM_DELRULE, 0)}
NEIGH_COMMANDS = {
    "add": (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL),
    "replace": (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE),
    "del": (RTM_DELNEIGH, 0),
    "get": (RTM_GETNEIGH, 0),
}
BATCH = 64
"""Most requests sent in one ``send`` by :meth:`RtnlSocket.request_all`: their acknowledgements (one
datagram each, well under 1 KiB of receive buffer) must all fit in the socket's receive buffer."""
RECEIVE_BUFFER = 1 << 20


class RtnlError(OSError):
    """The kernel refused a request (``errno`` is its error code)."""


def attribute(kind: int, data: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = _ATTR.size + len(data)
    return _ATTR.pack(length, kind) + data + bytes(-length % 4)


def message(kind: int, flags: int, sequence: int, body: bytes) -> bytes:
    """One netlink request (NLM_F_REQUEST | NLM_F_ACK added)."""
    flags |= NLM_F_REQUEST | NLM_F_ACK
    return _HEADER.pack(_HEADER.size + len(body), kind, flags, sequence, 0) + body


def packed_address(family: int, text: str) -> bytes:
    """``text`` (an address of ``family``) in network order; ValueError if it is not one. ``inet_pton``:
    a tenth of ``ipaddress``'s cost, which a home agent pays twice per binding (issue 9)."""
    try:
        return socket.inet_pton(family, str(text))
    except OSError:
        raise ValueError(f"not an address of family {family}: {text!r}") from None


def packed_prefix(family: int, text: str) -> tuple[bytes, int]:
    """``ADDRESS/LENGTH`` (the length may be left out: a host) as network-order bytes and the length;
    ValueError for a bad address or length, or host bits set (as ``ipaddress.ip_network``)."""
    address, slash, length_text = str(text).partition("/")
    packed = packed_address(family, address)
    bits = len(packed) * 8
    length = int(length_text) if slash and length_text.isdigit() else bits
    if (slash and not length_text.isdigit()) or length > bits:
        raise ValueError(f"bad prefix length: {text!r}")
    if int.from_bytes(packed, "big") & ((1 << (bits - length)) - 1):
        raise ValueError(f"{text!r} has host bits set")
    return packed, length


def _table(spec: dict[str, Any]) -> int:
    return int(spec.get("table", RT_TABLE_MAIN))


def route_message(command: str, spec: dict[str, Any], sequence: int = 0) -> bytes:
    """``add`` or ``del`` of a route given as the facade's pyroute2 arguments: ``dst`` (text prefix),
    ``family``, and optionally ``oif``, ``gateway``, ``table``, ``priority``, ``prefsrc``, ``metrics``
    (``{"mtu": n}``), ``scope`` and ``flags`` (e.g. RTNH_F_ONLINK)."""
    kind, flags = ROUTE_COMMANDS[command]
    known = {"dst", "family", "oif", "gateway", "table", "priority", "prefsrc", "metrics", "scope", "flags"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"route: no raw encoding for {sorted(unknown)}")
    family = int(spec["family"])
    destination, length = packed_prefix(family, spec["dst"])
    table = _table(spec)
    adding = command == "add"
    header = _RTMSG.pack(
        family,
        length,
        0,
        0,
        table if table <= 255 else RT_TABLE_COMPAT,
        RTPROT_STATIC if adding else 0,
        int(spec.get("scope", 0)),
        RTN_UNICAST if adding else 0,
        int(spec.get("flags", 0)),
    )
    attributes = []
    if length:
        attributes.append(attribute(RTA_DST, destination))
    attributes.append(attribute(RTA_TABLE, _U32.pack(table)))
    if spec.get("oif") is not None:
        attributes.append(attribute(RTA_OIF, _U32.pack(int(spec["oif"]))))
    if spec.get("gateway") is not None:
        attributes.append(attribute(RTA_GATEWAY, packed_address(family, spec["gateway"])))
    if spec.get("priority") is not None:
        attributes.append(attribute(RTA_PRIORITY, _U32.pack(int(spec["priority"]))))
    if spec.get("prefsrc") is not None:
        attributes.append(attribute(RTA_PREFSRC, packed_address(family, spec["prefsrc"])))
    mtu = (spec.get("metrics") or {}).get("mtu")
    if mtu:
        attributes.append(attribute(RTA_METRICS, attribute(RTAX_MTU, _U32.pack(int(mtu)))))
    return message(kind, flags, sequence, header + b"".join(attributes))


def neigh_message(
    command: str,
    spec: dict[str, Any],
    sequence: int = 0,
    *,
    link_address: bytes | None = None,
    state: int = NUD_PERMANENT,
) -> bytes:
    """``add``, ``replace``, ``del`` or ``get`` of a neighbour entry given as the facade's pyroute2
    arguments: ``dst``, ``ifindex``, ``family`` and optionally ``flags`` (NTF_PROXY: a proxy entry,
    ``ip neigh ... proxy``). As pyroute2 does, ``state`` (NUD_PERMANENT unless given) is sent with every
    command but ``get``, whose header the kernel wants all zero but the flags."""
    kind, flags = NEIGH_COMMANDS[command]
    unknown = set(spec) - {"dst", "ifindex", "family", "flags"}
    if unknown:
        raise ValueError(f"neighbour: no raw encoding for {sorted(unknown)}")
    header = _NDMSG.pack(
        int(spec["family"]),
        int(spec["ifindex"]),
        0 if command == "get" else state,
        int(spec.get("flags", 0)),
        0,
    )
    body = header + attribute(NDA_DST, packed_address(int(spec["family"]), spec["dst"]))
    if link_address is not None:
        body += attribute(NDA_LLADDR, link_address)
    return message(kind, flags, sequence, body)


def neighbour_message(spec: dict[str, Any], link_address: bytes, state: int, sequence: int = 0) -> bytes:
    """``ip neigh replace DST lladdr L dev IFINDEX nud STATE``; ``spec``: ``dst``, ``ifindex``, ``family``."""
    return neigh_message("replace", spec, sequence, link_address=link_address, state=state)


def rule_message(command: str, spec: dict[str, Any], sequence: int = 0) -> bytes:
    """``add`` or ``del`` of ``from SRC/LEN [iif NAME] lookup TABLE priority P`` (the facade's
    ``_rule_spec``: ``src``, ``src_len``, ``table``, ``priority``, ``family``, optional ``iifname``)."""
    kind, flags = RULE_COMMANDS[command]
    unknown = set(spec) - {"src", "src_len", "table", "priority", "family", "iifname"}
    if unknown:
        raise ValueError(f"rule: no raw encoding for {sorted(unknown)}")
    table = int(spec["table"])
    header = _FIBMSG.pack(
        int(spec["family"]), 0, int(spec["src_len"]), 0, table if table <= 255 else RT_TABLE_COMPAT,
        0, 0, FR_ACT_TO_TBL, 0,
    )  # fmt: skip
    attributes = [
        attribute(FRA_SRC, packed_address(int(spec["family"]), spec["src"])),
        attribute(FRA_TABLE, _U32.pack(table)),
        attribute(FRA_PRIORITY, _U32.pack(int(spec["priority"]))),
    ]
    if spec.get("iifname") is not None:
        attributes.append(attribute(FRA_IIFNAME, str(spec["iifname"]).encode() + b"\0"))
    return message(kind, flags, sequence, header + b"".join(attributes))


def link_message(
    index: int, *, up: bool | None = None, master: int | None = None, sequence: int = 0
) -> bytes:
    """``ip link set dev INDEX [up | down] [master MASTER | nomaster (0)]`` as one RTM_NEWLINK.

    rtnetlink's ``do_setlink`` changes the flags before the master, so ``up=False`` with a new
    ``master`` takes a bridge port down while it is still on its old bridge, then moves it: one request
    for what ``ip`` does in three (down, nomaster, master)."""
    flags, change = (0, 0) if up is None else (IFF_UP if up else 0, IFF_UP)
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)
    if master is not None:
        body += attribute(IFLA_MASTER, _U32.pack(master))
    return message(RTM_NEWLINK, 0, sequence, body)


def address_message(command: str, spec: dict[str, Any], sequence: int = 0) -> bytes:
    """``ip addr add|del ADDRESS/PREFIXLEN dev INDEX`` given as the facade's pyroute2 arguments
    (``index``, ``address``, ``prefixlen``, ``family``, and for ``add`` optionally ``flags``, e.g.
    IFA_F_NODAD), with IFA_LOCAL and IFA_ADDRESS as pyroute2 sends them (no broadcast address)."""
    adding = command == "add"
    unknown = set(spec) - {"index", "address", "prefixlen", "family", *(("flags",) if adding else ())}
    if unknown:
        raise ValueError(f"address: no raw encoding for {sorted(unknown)}")
    packed = packed_address(int(spec["family"]), spec["address"])
    header = _IFADDRMSG.pack(
        int(spec["family"]), int(spec["prefixlen"]), int(spec.get("flags", 0)), 0, int(spec["index"])
    )
    body = header + attribute(IFA_LOCAL, packed) + attribute(IFA_ADDRESS, packed)
    if adding:
        return message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sequence, body)
    return message(RTM_DELADDR, 0, sequence, body)


def address_deletion(spec: dict[str, Any], sequence: int = 0) -> bytes:
    """``ip addr del`` (:func:`address_message`)."""
    return address_message("del", spec, sequence)


def acknowledgement(data: bytes, sequence: int) -> int | None:
    """The error code (0: done) of the NLMSG_ERROR answering ``sequence`` in ``data``; None if absent."""
    for seq, code in acknowledgements(data):
        if seq == sequence:
            return code
    return None


def netlink_messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(message type, sequence, body)`` of each netlink message in one read, in order."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, seq, _port = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            return
        yield kind, seq, data[offset + _HEADER.size : offset + length]
        offset += (length + 3) & ~3


def acknowledgements(data: bytes) -> Iterator[tuple[int, int]]:
    """``(sequence, error code)`` of each NLMSG_ERROR in ``data`` (0: done), in order; other messages
    (a ``get``'s answer) are skipped."""
    for kind, seq, body in netlink_messages(data):
        if kind == NLMSG_ERROR and len(body) >= _ERRNO.size:
            yield seq, -int(_ERRNO.unpack_from(body)[0])


def route_dump(family: int, sequence: int = 0) -> bytes:
    """``ip route show table all`` for ``family``: one RTM_NEWROUTE per route, then NLMSG_DONE."""
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return (
        _HEADER.pack(_HEADER.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, sequence, 0) + body
    )


def local_route(body: bytes) -> tuple[bytes, int] | None:
    """``(address, interface index)`` of an RTM_NEWROUTE body if it is a host's ``local`` route in table
    local (the kernel's "this address is mine" entry); None for any other route."""
    _family, _dst_len, _src_len, _tos, table, _protocol, _scope, kind, _flags = _RTMSG.unpack_from(body)
    attributes: dict[int, bytes] = {}
    offset = _RTMSG.size
    while offset + _ATTR.size <= len(body):
        length, attribute_kind = _ATTR.unpack_from(body, offset)
        if length < _ATTR.size:
            break
        attributes[attribute_kind] = body[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    if RTA_TABLE in attributes:
        table = _U32.unpack(attributes[RTA_TABLE])[0]
    if kind != RTN_LOCAL or table != RT_TABLE_LOCAL or RTA_DST not in attributes or RTA_OIF not in attributes:
        return None
    return attributes[RTA_DST], int(_U32.unpack(attributes[RTA_OIF])[0])


class RtnlSocket:
    """A NETLINK_ROUTE socket for requests only (no groups), and a UDP socket for interface indexes,
    both in the namespace of the thread that creates them; thread-safe."""

    TIMEOUT = 2.0

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.ioctl_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self.sock.bind((0, 0))
            self.sock.settimeout(self.TIMEOUT)
        except OSError:
            self.close()
            raise
        self._sequence = 0
        self._lock = threading.Lock()

    def index_of(self, name: str) -> int:
        """The index of link ``name`` in this socket's namespace; LookupError if there is none."""
        request = struct.pack("16s16x", name.encode()[:15])
        try:
            answer = fcntl.ioctl(self.ioctl_sock, SIOCGIFINDEX, request)
        except OSError:
            raise LookupError(f"no network interface {name!r}") from None
        return int(struct.unpack_from("=i", answer, 16)[0])

    def next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def request(self, build: Callable[[int], bytes]) -> float:
        """Send ``build(sequence)`` and wait for its acknowledgement; RtnlError on a refusal (a ValueError
        from ``build`` goes to the caller, nothing sent). Returns the CLOCK_MONOTONIC time the ``send``
        returned: the kernel applied the change inside it."""
        with self._lock:
            sequence = self.next_sequence()
            codes, applied = self._exchange([(sequence, build(sequence))])
        if codes[0]:
            raise RtnlError(codes[0], errno.errorcode.get(codes[0], str(codes[0])))
        return applied

    def request_all(self, builds: Sequence[Callable[[int], bytes]]) -> list[int]:
        """Send every ``build(sequence)``, in order, :data:`BATCH` to one ``send``; the error code of each
        (0: done), in the same order. The kernel carries out the messages of one ``send`` one after the
        other and acknowledges each (a refused one does not stop the next); a request whose answer never
        comes counts as ETIMEDOUT, one the socket could not send as that error, one that cannot be encoded
        (ValueError from ``build``) as EINVAL, unsent."""
        codes: list[int] = []
        with self._lock:
            for start in range(0, len(builds), BATCH):
                requests: list[tuple[int, bytes | None]] = []
                for build in builds[start : start + BATCH]:
                    sequence = self.next_sequence()
                    try:
                        requests.append((sequence, build(sequence)))
                    except (ValueError, KeyError, TypeError, struct.error):
                        requests.append((sequence, None))
                codes += self._exchange(requests)[0]
        return codes

    def dump(self, build: Callable[[int], bytes]) -> list[tuple[int, bytes]]:
        """Send the dump request ``build(sequence)``; ``(message type, body)`` of each answer, up to its
        NLMSG_DONE (RtnlError on a refusal, TimeoutError after :attr:`TIMEOUT`)."""
        answers: list[tuple[int, bytes]] = []
        with self._lock:
            sequence = self.next_sequence()
            self.sock.send(build(sequence))
            while True:
                for kind, seq, body in netlink_messages(self.sock.recv(65536)):
                    if seq != sequence:
                        continue  # an older request's late answer
                    if kind == NLMSG_ERROR and (code := -int(_ERRNO.unpack_from(body)[0])):
                        raise RtnlError(code, errno.errorcode.get(code, str(code)))
                    if kind in (NLMSG_DONE, NLMSG_ERROR):
                        return answers
                    answers.append((kind, body))

    def _exchange(self, requests: Sequence[tuple[int, bytes | None]]) -> tuple[list[int], float]:
        """One ``send`` of the encoded requests (None: not encodable, EINVAL): their answers, and the
        CLOCK_MONOTONIC time the ``send`` returned."""
        answers = {sequence: errno.EINVAL for sequence, data in requests if data is None}
        wanted = {sequence for sequence, data in requests if data is not None}
        applied = time.clock_gettime(time.CLOCK_MONOTONIC)
        if wanted:
            try:
                self.sock.send(b"".join(data for _sequence, data in requests if data is not None))
            except OSError as error:  # e.g. ENOBUFS: reported like a refusal
                failed = error.errno or errno.EIO
                return [answers.get(sequence, failed) for sequence, _data in requests], applied
            applied = time.clock_gettime(time.CLOCK_MONOTONIC)
        while wanted:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError as error:
                failed = error.errno or errno.EIO
                return [answers.get(sequence, failed) for sequence, _data in requests], applied
            for sequence, code in acknowledgements(data):
                if sequence in wanted:  # anything else: an older request's late answer
                    wanted.discard(sequence)
                    answers[sequence] = code
        return [answers.get(sequence, errno.ETIMEDOUT) for sequence, _data in requests], applied

    def close(self) -> None:
        self.sock.close()
        self.ioctl_sock.close()
