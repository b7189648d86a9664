"""The home agent's sans-I/O machine (RFC 5944 §3.8, RFC 3024 §4, RFC 5454 §3.3)."""
