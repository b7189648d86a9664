"""Tunnel datapaths behind one small interface (:mod:`agents.datapath.base`).

* :mod:`~agents.datapath.userspace` — the default backend: ``UserspaceHomeAgent`` and
  ``UserspaceMobileNode`` over a TUN device and raw IPv4 sockets (protocols 4, 41, 47, 55), because
  the development kernel has no ipip/sit/gre modules (design.md §3).
* :mod:`~agents.datapath.ebpf` — ``EbpfHomeAgent`` / ``EbpfMobileNode``: the same routes and bindings, but
  tc programs (``bpf/tunnel.bpf.c``, built by ``tools/build-bpf.sh``) move the packets in the kernel;
  :mod:`~agents.datapath.libbpf` is its ctypes binding to libbpf.so.1.
* :mod:`~agents.datapath.selection` — ``--datapath userspace|ebpf|auto``: which backend runs, and why.
* :mod:`~agents.datapath.tables` — the pure forwarding and acceptance decisions (RFC 3024 §4.3.2,
  RFC 5454 §3.3.2 and §4), unit-tested without root.
* :mod:`~agents.datapath.engine` — the per-packet threads; encapsulation as in :mod:`agents.mip.wire.tunnel`.
* :mod:`~agents.datapath.kernel` — probes whether ipip/sit/gre links can be created here (no kernel
  backend yet).

Nothing is imported here, so importing the package has no side effects and needs no root.
"""
