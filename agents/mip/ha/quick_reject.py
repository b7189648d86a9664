"""A cheap authentication check for the home agent under a flood that forges a known peer's address
(issue 16; pure: no I/O, no clock).

A flood of bad-authenticator requests cannot be dropped unverified, whatever its source: the real request
may be among them (a known peer's renewal, or a mobile node's first registration from a care-of or FA
address the flood forged before it arrived). The full
request pipeline (decode every extension, screen, verify) costs ~50 µs a request, so at ~20,000/s such a
flood alone fills the agent. Once that source's failure budget is spent (RFC 5944 §3.8.2.1: a failure past
it gets no reply and no log line anyway), :func:`fails_quickly` checks the MN-HA Authenticator straight on
the raw bytes (RFC 5944 §3.5.1: computed over the message up to and including the SPI) and only a request
it cannot reject goes the full way. It rejects only what the full pipeline rejects too: a first MN-HA
Authentication extension with another SPI, or whose authenticator does not verify.
"""

from __future__ import annotations

import hmac

from agents.mip.wire.auth import SecurityAssociation, authenticator
from agents.mip.wire.codes import ExtensionType

REQUEST_FIXED = 24
"""A Registration Request's fixed part (RFC 5944 §3.3)."""
_MN_HA = int(ExtensionType.MOBILE_HOME_AUTH)
_KNOWN_TYPES = frozenset(int(kind) for kind in ExtensionType)


def first_mn_ha(raw: bytes) -> tuple[int, int, int] | None:
    """(SPI, end of the covered bytes, end of the extension) of the first MN-HA Authentication extension
    of a raw request (RFC 5944 §3.5.2); None when it is not simply there (the full decoder decides)."""
    position, size = REQUEST_FIXED, len(raw)
    while position + 2 <= size:
        kind = raw[position]
        end = position + 2 + raw[position + 1]
        if end > size or (kind < 128 and kind not in _KNOWN_TYPES):  # torn, or an unknown non-skippable
            return None
        if kind == _MN_HA:
            if end - position < 6:
                return None
            return int.from_bytes(raw[position + 2 : position + 6], "big"), position + 6, end
        position = end
    return None


def fails_quickly(raw: bytes, association: SecurityAssociation) -> bool:
    """True: ``raw`` certainly fails MN-HA authentication with ``association`` (RFC 5944 §3.8.2.1).
    False: it may verify (or is not a plain request): decode and judge it fully."""
    found = first_mn_ha(raw)
    if found is None:
        return False
    spi, covered_end, end = found
    if spi != association.spi:
        return True
    expected = authenticator(association.algorithm, association.key, raw[:covered_end])
    return not hmac.compare_digest(expected, raw[covered_end:end])
