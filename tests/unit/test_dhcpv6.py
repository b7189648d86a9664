"""The DHCPv6 PD codec (RFC 8415 §8, §11, §21), cross-checked byte for byte against scapy's dhcp6 layers.

scapy is used here only as an independent encoder/decoder; the agents never import it.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp6 import (
    DHCP6,
    DUID_EN,
    DUID_LL,
    DHCP6_Advertise,
    DHCP6_Rebind,
    DHCP6_Release,
    DHCP6_Renew,
    DHCP6_Reply,
    DHCP6_Request,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptElapsedTime,
    DHCP6OptIA_PD,
    DHCP6OptIAPrefix,
    DHCP6OptOptReq,
    DHCP6OptRapidCommit,
    DHCP6OptServerId,
    DHCP6OptStatusCode,
)

from agents.mip.wire.dhcpv6 import (
    IaPd,
    IaPrefix,
    Message,
    MessageType,
    RawOption,
    Status,
    StatusCode,
    duid_en,
    duid_ll,
)
from agents.mip.wire.errors import DecodeError

CLIENT = duid_en(32473, bytes([10, 1, 0, 5]))
SERVER = duid_ll(bytes.fromhex("020000000001"))
PREFIX = IPv6Network("2001:db8:ff00:100::/56")
SCAPY_CLIENT = DHCP6OptClientId(duid=DUID_EN(enterprisenum=32473, id=bytes([10, 1, 0, 5])))
SCAPY_SERVER = DHCP6OptServerId(duid=DUID_LL(lladdr="02:00:00:00:00:01"))


def scapy_prefix(preferred: int, valid: int, prefix: IPv6Network) -> DHCP6OptIAPrefix:
    return DHCP6OptIAPrefix(
        preflft=preferred, validlft=valid, plen=prefix.prefixlen, prefix=str(prefix.network_address)
    )


def test_duids_match_scapy() -> None:
    assert bytes(SCAPY_CLIENT)[4:] == CLIENT
    assert bytes(SCAPY_SERVER)[4:] == SERVER
    assert CLIENT[:2] == b"\x00\x02" and SERVER[:4] == b"\x00\x03\x00\x01"  # RFC 8415 §11.3, §11.4


def test_solicit_with_rapid_commit_and_hint_matches_scapy() -> None:
    ours = Message(
        MessageType.SOLICIT,
        0x123456,
        client_id=CLIENT,
        ia_pds=(IaPd(1, 0, 0, (IaPrefix(0, 0, IPv6Network("::/56")),)),),
        rapid_commit=True,
        elapsed_time=0,
        oro=(),
    )
    theirs = (
        DHCP6_Solicit(trid=0x123456)
        / SCAPY_CLIENT
        / DHCP6OptOptReq(reqopts=[])
        / DHCP6OptElapsedTime(elapsedtime=0)
        / DHCP6OptRapidCommit()
        / DHCP6OptIA_PD(iaid=1, T1=0, T2=0, iapdopt=[scapy_prefix(0, 0, IPv6Network("::/56"))])
    )
    assert ours.encode() == bytes(theirs)
    assert Message.decode(bytes(theirs)) == ours


@pytest.mark.parametrize(
    ("kind", "layer", "with_server"),
    [
        (MessageType.REQUEST, DHCP6_Request, True),
        (MessageType.RENEW, DHCP6_Renew, True),
        (MessageType.REBIND, DHCP6_Rebind, False),
        (MessageType.RELEASE, DHCP6_Release, True),
    ],
)
def test_client_messages_match_scapy(kind: MessageType, layer: type[DHCP6], with_server: bool) -> None:
    ours = Message(
        kind,
        0xABCDEF,
        client_id=CLIENT,
        server_id=SERVER if with_server else None,
        ia_pds=(IaPd(7, 0, 0, (IaPrefix(0, 0, PREFIX),)),),
        elapsed_time=250,
    )
    theirs = layer(trid=0xABCDEF) / SCAPY_CLIENT
    if with_server:
        theirs = theirs / SCAPY_SERVER
    theirs = (
        theirs
        / DHCP6OptElapsedTime(elapsedtime=250)
        / DHCP6OptIA_PD(iaid=7, T1=0, T2=0, iapdopt=[scapy_prefix(0, 0, PREFIX)])
    )
    assert ours.encode() == bytes(theirs)


def test_reply_from_scapy_decodes_with_rapid_commit_and_lifetimes() -> None:
    theirs = (
        DHCP6_Reply(trid=0x000102)
        / SCAPY_SERVER
        / SCAPY_CLIENT
        / DHCP6OptRapidCommit()
        / DHCP6OptIA_PD(iaid=1, T1=1000, T2=1600, iapdopt=[scapy_prefix(2000, 4000, PREFIX)])
    )
    message = Message.decode(bytes(theirs))
    assert message.msg_type == MessageType.REPLY and message.transaction_id == 0x000102
    assert message.client_id == CLIENT and message.server_id == SERVER and message.rapid_commit
    assert message.ia_pds == (IaPd(1, 1000, 1600, (IaPrefix(2000, 4000, PREFIX),)),)
    # Our encoding puts Client ID first: same options, same bytes for each of them.
    assert sorted(message.encode()) == sorted(bytes(theirs))


def test_advertise_with_no_prefix_avail_status_matches_scapy() -> None:
    status = StatusCode(Status.NO_PREFIX_AVAIL, "no prefixes available")
    ours = Message(
        MessageType.ADVERTISE, 5, client_id=CLIENT, server_id=SERVER, ia_pds=(IaPd(1, 0, 0, (), status),)
    )
    theirs = (
        DHCP6_Advertise(trid=5)
        / SCAPY_CLIENT
        / SCAPY_SERVER
        / DHCP6OptIA_PD(iaid=1, iapdopt=[DHCP6OptStatusCode(statuscode=6, statusmsg="no prefixes available")])
    )
    assert ours.encode() == bytes(theirs)
    assert Message.decode(bytes(theirs)).ia_pds[0].status == status


def test_unknown_options_survive_a_round_trip() -> None:
    ours = Message(
        MessageType.ADVERTISE, 9, client_id=CLIENT, server_id=SERVER, other=(RawOption(7, b"\xff"),)
    )
    assert Message.decode(ours.encode()) == ours


@settings(max_examples=40, deadline=None)
@given(
    xid=st.integers(0, 0xFFFFFF),
    iaid=st.integers(0, 2**32 - 1),
    t1=st.integers(0, 2**32 - 1),
    valid=st.integers(0, 2**32 - 1),
    length=st.integers(0, 128),
    bits=st.integers(0, 2**128 - 1),
)
def test_round_trip_agrees_with_scapy(
    xid: int, iaid: int, t1: int, valid: int, length: int, bits: int
) -> None:
    prefix = IPv6Network((bits, length), strict=False)
    ours = Message(
        MessageType.REPLY,
        xid,
        client_id=CLIENT,
        server_id=SERVER,
        ia_pds=(IaPd(iaid, t1, t1, (IaPrefix(valid, valid, prefix),)),),
    )
    wire = ours.encode()
    assert Message.decode(wire) == ours
    parsed = DHCP6_Reply(wire)
    ia_pd = parsed[DHCP6OptIA_PD]
    assert parsed.trid == xid and ia_pd.iaid == iaid and t1 == ia_pd.T1
    assert ia_pd.iapdopt[0].plen == length and IPv6Address(ia_pd.iapdopt[0].prefix) == prefix.network_address


@pytest.mark.parametrize(
    ("wire", "offset"),
    [
        (b"\x07\x00\x00", 0),  # shorter than the header
        (b"\x07\x00\x00\x01\x00\x19\x00\x04abcd", 4),  # IA_PD shorter than 12
        (b"\x07\x00\x00\x01\x00\x01\x00\x08\x00\x02", 4),  # option runs past the end
        (b"\x07\x00\x00\x01\x00\x0e\x00\x01\x00", 4),  # Rapid Commit with data
        (b"\x0c\x00\x00\x01", 0),  # relay-forward
    ],
)
def test_malformed_input_raises_decode_error_with_offset(wire: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        Message.decode(wire)
    assert caught.value.offset == offset


def test_iaprefix_length_above_128_is_refused() -> None:
    body = (1).to_bytes(4, "big") * 2 + bytes([129]) + bytes(16)
    wire = b"\x07\x00\x00\x01" + IaPd(1).encode()[:2] + (12 + 29).to_bytes(2, "big") + bytes(12)
    wire += b"\x00\x1a\x00\x19" + body
    with pytest.raises(DecodeError, match="exceeds 128"):
        Message.decode(wire)
