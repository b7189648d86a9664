"""The mobile node's sans-I/O machine and DHCPv6-PD client (RFC 5944 §2.4, §3.6; RFC 5454 §3.5)."""
