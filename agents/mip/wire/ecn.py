"""ECN and DSCP handling at tunnel ingress and egress (RFC 6040, RFC 3168 §9.1, RFC 2983 §3).

Small pure functions, each testable against its RFC table, plus precomputed lookup tables that the
per-packet code in :mod:`agents.mip.wire.tunnel` indexes directly.
"""

from __future__ import annotations

from enum import IntEnum

from agents.mip.wire.ip import packet_tos, with_tos

NOT_ECT = 0b00
ECT_1 = 0b01
ECT_0 = 0b10
CE = 0b11

# Severity order used by the RFC 6040 §4.2 egress table: CE > ECT(1) > ECT(0) > Not-ECT.
_SEVERITY = {NOT_ECT: 0, ECT_0: 1, ECT_1: 2, CE: 3}

DROP = -1
"""Returned by the egress lookups when RFC 6040 says the packet must be dropped."""


class EcnMode(IntEnum):
    """How the encapsulator sets the outer ECN field."""

    NORMAL = 0
    """RFC 6040 §4.1 normal mode: copy the inner ECN verbatim, CE included."""
    FULL_FUNCTIONALITY = 1
    """RFC 3168 §9.1.1 full functionality: copy, except inner CE becomes outer ECT(0)."""
    LIMITED = 2
    """RFC 3168 §9.1.1 limited functionality = RFC 6040 compatibility mode: outer Not-ECT."""


class DscpModel(IntEnum):
    """RFC 2983 §3 DSCP handling."""

    UNIFORM = 0
    """Copy the DSCP inner → outer at ingress and outer → inner at egress."""
    PIPE = 1
    """Outer DSCP 0 at ingress (a tunnel-local value); the egress keeps the inner DSCP."""


def ecn_ingress(inner_ecn: int, mode: EcnMode = EcnMode.NORMAL) -> int:
    """The outer ECN field the encapsulator writes for an inner ECN field."""
    if not 0 <= inner_ecn <= 3:
        raise ValueError(f"ECN field {inner_ecn} out of range")
    if mode is EcnMode.NORMAL:
        return inner_ecn
    if mode is EcnMode.FULL_FUNCTIONALITY:
        return ECT_0 if inner_ecn == CE else inner_ecn
    return NOT_ECT


def ecn_egress(outer_ecn: int, inner_ecn: int) -> int | None:
    """The inner ECN field after decapsulation (RFC 6040 §4.2); None means drop the packet.

    Inner Not-ECT stays Not-ECT unless the outer is CE (drop); otherwise the result is the more
    severe of outer and inner (CE > ECT(1) > ECT(0) > Not-ECT).
    """
    if not 0 <= outer_ecn <= 3 or not 0 <= inner_ecn <= 3:
        raise ValueError(f"ECN fields {outer_ecn}/{inner_ecn} out of range")
    if inner_ecn == NOT_ECT:
        return None if outer_ecn == CE else NOT_ECT
    return max(outer_ecn, inner_ecn, key=_SEVERITY.__getitem__)


def dscp_ingress(inner_dscp: int, model: DscpModel = DscpModel.UNIFORM) -> int:
    """The outer DSCP at encapsulation (RFC 2983 §3.1 uniform, §3.2 pipe)."""
    return inner_dscp if model is DscpModel.UNIFORM else 0


def dscp_egress(outer_dscp: int, inner_dscp: int, model: DscpModel = DscpModel.UNIFORM) -> int:
    """The inner DSCP after decapsulation (RFC 2983 §3.1 uniform, §3.2 pipe)."""
    return outer_dscp if model is DscpModel.UNIFORM else inner_dscp


def outer_tos(
    inner_tos: int, ecn_mode: EcnMode = EcnMode.NORMAL, dscp_model: DscpModel = DscpModel.UNIFORM
) -> int:
    """The outer TOS byte for an inner TOS / Traffic Class byte."""
    return (dscp_ingress(inner_tos >> 2, dscp_model) << 2) | ecn_ingress(inner_tos & 3, ecn_mode)


def inner_tos_after_egress(
    outer_tos_value: int, inner_tos: int, dscp_model: DscpModel = DscpModel.UNIFORM
) -> int | None:
    """The inner TOS byte after decapsulation, or None when RFC 6040 says drop."""
    new_ecn = ecn_egress(outer_tos_value & 3, inner_tos & 3)
    if new_ecn is None:
        return None
    return (dscp_egress(outer_tos_value >> 2, inner_tos >> 2, dscp_model) << 2) | new_ecn


def _build_ingress_tables() -> tuple[tuple[int, ...], ...]:
    return tuple(
        tuple(outer_tos(tos, ecn_mode, dscp_model) for tos in range(256))
        for ecn_mode in EcnMode
        for dscp_model in DscpModel
    )


def _build_egress_ecn_table() -> tuple[int, ...]:
    table = []
    for index in range(16):
        result = ecn_egress(index >> 2, index & 3)
        table.append(DROP if result is None else result)
    return tuple(table)


INGRESS_TOS_TABLES = _build_ingress_tables()
"""``INGRESS_TOS_TABLES[ecn_mode * len(DscpModel) + dscp_model][inner_tos]`` = outer TOS."""

EGRESS_ECN_TABLE = _build_egress_ecn_table()
"""``EGRESS_ECN_TABLE[outer_ecn << 2 | inner_ecn]`` = new inner ECN, or :data:`DROP`."""


def ingress_table(ecn_mode: EcnMode, dscp_model: DscpModel) -> tuple[int, ...]:
    """The 256-entry inner-TOS → outer-TOS table for one mode pair."""
    return INGRESS_TOS_TABLES[ecn_mode * len(DscpModel) + dscp_model]


def apply_egress(
    outer_tos_value: int, inner: bytes, dscp_model: DscpModel = DscpModel.UNIFORM
) -> bytes | None:
    """The inner datagram (IPv4 or IPv6) with its TOS set by the egress rules; None means drop.

    Table-driven version of :func:`inner_tos_after_egress` for the per-packet path.
    """
    inner_tos = packet_tos(inner)
    new_ecn = EGRESS_ECN_TABLE[((outer_tos_value & 3) << 2) | (inner_tos & 3)]
    if new_ecn == DROP:
        return None
    new_dscp = outer_tos_value & 0xFC if dscp_model == DscpModel.UNIFORM else inner_tos & 0xFC
    new_tos = new_dscp | new_ecn
    return inner if new_tos == inner_tos else with_tos(inner, new_tos)
