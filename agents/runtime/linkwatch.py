"""Carrier changes of one interface, as the kernel announces them (RTNLGRP_LINK netlink events).

A carrier loss and return is the link-layer hint of a move (RFC 5944 §2.4.2): the mobile node solicits
at once instead of waiting for advertisements to time out. Listening to RTM_NEWLINK notifications (rather
than polling ``/sys/class/net/*/carrier``) tells the agent within microseconds of the kernel noticing.

The socket is a plain ``AF_NETLINK`` one read from the asyncio loop; only ``ifinfomsg`` headers are parsed
(``index`` and ``flags``: carrier = IFF_UP and IFF_LOWER_UP, RFC 2863 operational state "up") and one
attribute, IFLA_CARRIER_DOWN_COUNT: a drop and return faster than the kernel's link watcher runs arrive as a
single "up" message, and only the count tells that the carrier went away meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
_NLMSG_HEADER = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")
IFLA_CARRIER_DOWN_COUNT = 48


def link_messages(data: bytes) -> Iterator[tuple[int, int, int, int | None]]:
    """(message type, interface index, flags, carrier-down count or None) of each RTM_NEWLINK / RTM_DELLINK
    in one netlink read."""
    offset = 0
    while offset + _NLMSG_HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size:
            return
        body = offset + _NLMSG_HEADER.size
        end = min(offset + length, len(data))
        if kind in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= end:
            _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, body)
            yield kind, index, flags, _carrier_down_count(data, body + _IFINFOMSG.size, end)
        offset += (length + 3) & ~3


def _carrier_down_count(data: bytes, offset: int, end: int) -> int | None:
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            return None
        if kind == IFLA_CARRIER_DOWN_COUNT and length >= _RTATTR.size + 4:
            return int(struct.unpack_from("=I", data, offset + _RTATTR.size)[0])
        offset += (length + 3) & ~3
    return None


def has_carrier(flags: int) -> bool:
    return bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)


class _NetlinkWatcher:
    """A non-blocking rtnetlink socket subscribed to ``groups``, read from the asyncio loop by
    :meth:`_readable` (each subclass's); :meth:`close` stops reading and closes it."""

    def __init__(self, groups: int) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, groups))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()


class CarrierWatcher(_NetlinkWatcher):
    """Calls ``on_change(up)`` when ``interface`` gains or loses its carrier."""

    def __init__(self, interface: str, on_change: Callable[[bool], None]) -> None:
        self.interface = interface
        self.on_change = on_change
        self.index = socket.if_nametoindex(interface)
        self.state = self._read_sysfs()
        self.down_count = self._read_down_count()
        super().__init__(RTMGRP_LINK)

    def _read_sysfs(self) -> bool:
        try:
            return (Path("/sys/class/net") / self.interface / "carrier").read_text().strip() == "1"
        except OSError:  # EINVAL while the interface is down
            return False

    def _read_down_count(self) -> int | None:
        try:
            return int((Path("/sys/class/net") / self.interface / "carrier_down_count").read_text())
        except (OSError, ValueError):
            return None

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as error:  # ENOBUFS: events were lost; the file tells the truth
            logger.warning("link events on %s: %s; re-reading the carrier", self.interface, error)
            self._update(self._read_sysfs())
            return
        for kind, index, flags, down_count in link_messages(data):
            if index == self.index:
                up = kind == RTM_NEWLINK and has_carrier(flags)
                missed_drop = self._count_drops(down_count) and up and self.state
                if missed_drop:  # down and up again between two looks of the kernel's link watcher
                    self._update(False)
                self._update(up)

    def _count_drops(self, down_count: int | None) -> bool:
        """True if the carrier went down since the last message (its down count grew)."""
        if down_count is None:
            return False
        grew = self.down_count is not None and down_count > self.down_count
        self.down_count = down_count
        return grew

    def _update(self, state: bool) -> None:
        if state != self.state:
            self.state = state
            self.on_change(state)  # first: the log line can wait, a handover cannot (issue 14)
            logger.info("carrier %s on %s", "up" if state else "down", self.interface)


RTMGRP_IPV4_IFADDR = 0x10
RTM_NEWADDR, RTM_DELADDR = 20, 21
_IFADDRMSG = struct.Struct("=BBBBI")


def address_messages(data: bytes) -> Iterator[tuple[int, int]]:
    """(message type, interface index) of each RTM_NEWADDR / RTM_DELADDR in one netlink read."""
    offset = 0
    while offset + _NLMSG_HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size:
            return
        body = offset + _NLMSG_HEADER.size
        if kind in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDRMSG.size <= offset + length:
            _family, _prefix, _flags2, _scope, index = _IFADDRMSG.unpack_from(data, body)
            yield kind, index
        offset += (length + 3) & ~3


class AddressWatcher(_NetlinkWatcher):
    """Calls ``on_change()`` when an IPv4 address is added to or removed from ``interface`` (e.g. a DHCP
    client on a visited link gave the mobile node a co-located care-of address, RFC 5944 §3.6)."""

    def __init__(self, interface: str, on_change: Callable[[], None]) -> None:
        self.index = socket.if_nametoindex(interface)
        self.on_change = on_change
        super().__init__(RTMGRP_IPV4_IFADDR)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:  # ENOBUFS: events were lost; look again anyway
            self.on_change()
            return
        if any(index == self.index for _kind, index in address_messages(data)):
            self.on_change()
