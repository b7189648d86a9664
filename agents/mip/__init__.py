"""Sans-I/O Mobile IPv4 core: wire codecs, authenticators, identification, state machines.

Stdlib only; nothing here opens a socket or reads a clock.
"""
