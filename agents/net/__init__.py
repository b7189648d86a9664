"""The lowest layer: plumbing the datapath and the runtime both use, with no Mobile IP in it.

* :mod:`~agents.net.netlink` — links, addresses, routes, rules, neighbours and sysctls through pyroute2.
* :mod:`~agents.net.tun` — opening a TUN device.
* :mod:`~agents.net.arp` — proxy and gratuitous ARP frames (RFC 5944 §4.6).
* :mod:`~agents.net.packetfilter` — classic BPF socket filters for the access-link sniffers.

Imports point down only (tests/unit/test_layering.py): ``agents.net`` imports nothing else from
``agents``; ``agents.mip`` imports only the standard library; ``agents.datapath`` never imports
``agents.runtime``.
"""
