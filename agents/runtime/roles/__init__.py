"""Role runners: each wires a sans-I/O machine to sockets, a datapath and netlink (`python -m agents`)."""
