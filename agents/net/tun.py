"""Open a Linux TUN device (layer-3, no packet-information header).

A TUN device made with ``TUNSETIFF`` and no ``TUNSETPERSIST`` lives exactly as long as its file
descriptor: closing :class:`TunDevice` removes the interface, its addresses and every route through it.
The device is created in the network namespace of the thread that opens ``/dev/net/tun``.

Packets read from the device are whole IPv4/IPv6 packets (``IFF_NO_PI``); the IP version is the first
nibble. Linux gives a TUN interface ``POINTOPOINT,MULTICAST,NOARP`` and ARPHRD_NONE (protocol.md §7).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct

logger = logging.getLogger(__name__)

TUN_CLONE_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
IFREQ_SIZE = 40  # sizeof(struct ifreq) on Linux


class TunUnavailableError(RuntimeError):
    """The kernel or this process cannot create a TUN device (no /dev/net/tun, no CAP_NET_ADMIN...)."""


class TunDevice:
    """One non-persistent TUN interface; ``fd`` is blocking, one packet per read/write."""

    def __init__(self, name: str) -> None:
        if not 0 < len(name.encode()) < IFNAMSIZ:
            raise ValueError(f"interface name {name!r} must be 1..{IFNAMSIZ - 1} bytes")
        self.fd = _open_tun(name)
        self.name = _read_back_name(self.fd, name)
        self._closed = False
        logger.debug("opened TUN %s (fd %d)", self.name, self.fd)

    def read_into(self, buffer: bytearray | memoryview) -> int:
        """Read one packet into ``buffer``; returns its length. Blocks until a packet is queued."""
        return os.readv(self.fd, [buffer])

    def write(self, packet: bytes | bytearray | memoryview) -> int:
        """Hand one IPv4/IPv6 packet to the kernel as if it had arrived on this interface."""
        return os.write(self.fd, packet)

    def close(self) -> None:
        """Close the descriptor, which deletes the interface (it was never made persistent)."""
        if not self._closed:
            self._closed = True
            os.close(self.fd)
            logger.debug("closed TUN %s", self.name)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> TunDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _open_tun(name: str) -> int:
    try:
        fd = os.open(TUN_CLONE_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError as error:
        raise TunUnavailableError(f"{TUN_CLONE_DEVICE} is missing: this kernel has no TUN support") from error
    except PermissionError as error:
        raise TunUnavailableError(f"cannot open {TUN_CLONE_DEVICE}: {error}") from error
    request = struct.pack(f"{IFNAMSIZ}sH", name.encode(), IFF_TUN | IFF_NO_PI).ljust(IFREQ_SIZE, b"\0")
    try:
        fcntl.ioctl(fd, TUNSETIFF, request)
    except OSError as error:
        os.close(fd)
        if error.errno == errno.EPERM:
            raise TunUnavailableError(f"TUNSETIFF {name}: needs CAP_NET_ADMIN") from error
        if error.errno == errno.EBUSY:
            raise TunUnavailableError(f"TUNSETIFF {name}: an interface of that name exists") from error
        raise TunUnavailableError(f"TUNSETIFF {name}: {error}") from error
    return fd


def _read_back_name(fd: int, requested: str) -> str:
    """The kernel may expand a pattern such as ``mip%d``; TUNGETIFF tells the final name."""
    tungetiff = 0x800454D2
    try:
        answer = fcntl.ioctl(fd, tungetiff, bytes(IFREQ_SIZE))
    except OSError:
        return requested
    return answer[:IFNAMSIZ].split(b"\0", 1)[0].decode()
