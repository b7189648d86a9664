"""Mobile IPv4 / DSMIPv4 agents: the sans-I/O core (`agents.mip`), the runtime and the datapaths."""
