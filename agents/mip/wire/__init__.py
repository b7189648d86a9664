"""Wire codecs: registration messages, extensions, ICMP, IP headers, tunnels, DHCPv6.

Modules here import nothing from the machines (ha, fa, mn) nor from common (checked by
tests/unit/test_layering.py).
"""
