"""The foreign agent's sans-I/O machine and the agent advertiser (RFC 5944 §2, §3.7; RFC 4881)."""
