"""What the home agent remembers between registrations to make a renewal cheap (issue 9), and when it must
forget it.

A renewal (same care-of, same prefixes) repeats the work of the registration before it; issue 9 keeps some
answers: decoded addresses and Prefix Requests (pure functions of the bytes), ``MobileNodeAccount.allows``
(per account: a changed configuration is a new account), an integer index of registered prefixes, a
shortcut in ``BindingTable.replace_prefixes`` when the wanted prefixes are the registered ones, and the
extension offsets found while decoding (the MN-HA check no longer parses the message again). Each test here
fails if the remembered answer outlives what it was computed from.
"""

from __future__ import annotations

import dataclasses
import random
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from agents.mip.common import config as config_module
from agents.mip.common.bindings import BindingTable, PrefixBinding, PrefixOwners, TunnelTarget
from agents.mip.common.config import MobileNodeAccount
from agents.mip.common.events import ReplySent
from agents.mip.wire import dsmip, registration
from agents.mip.wire.auth import SecurityAssociation, append_authentication, verify_located, verify_with
from agents.mip.wire.codes import ExtensionType, PrefixReplyCode, ReplyCode
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest, decode_dsmip_body
from agents.mip.wire.extensions import AuthenticationExtension, UdpTunnelReply
from agents.mip.wire.registration import (
    HashedIPv4Address,
    RegistrationReply,
    RegistrationRequest,
    decoded_ipv4,
    encode_reply,
)
from tests.unit.test_home_agent import (
    ALLOWED,
    HA,
    HOA,
    HOA2,
    KEY,
    OTHER_KEY,
    SPI,
    Clock,
    account,
    make_ha,
    prefixes,
    register,
    rrq,
)

MN_HA = ExtensionType.MOBILE_HOME_AUTH
INSIDE = IPv6Network("2001:db8:10:1::/64")


# -- MobileNodeAccount.allows: remembered per account (RFC 5454 §3.7) -------------------------------


def test_allows_answers_belong_to_one_account_rfc5454_3_7() -> None:
    """A configuration that no longer allows a prefix is a new account: it must not see the old answer
    (fails if the answers were kept anywhere but on the account they were computed for)."""
    before = account()
    assert before.allows(INSIDE)
    after = dataclasses.replace(before, allowed_prefixes=(IPv6Network("2001:db8:99::/48"),))
    assert not after.allows(INSIDE)
    assert before.allows(INSIDE)  # and the first account's answer is still its own


def test_a_changed_configuration_rejects_a_renewal_it_no_longer_allows_rfc5454_3_7() -> None:
    """End to end: a home agent accepts the prefix, a home agent built from the changed configuration
    answers the same renewal with code 9 (administratively prohibited, RFC 5454 §2.2)."""
    clock = Clock()
    ha = make_ha()
    reply = register(ha, clock, extensions=prefixes(ALLOWED))
    assert [item.code for item in reply.prefix_replies] == [PrefixReplyCode.ACCEPTED_TO_HOA]
    narrowed = account(allowed_prefixes=(IPv6Network("2001:db8:99::/48"),))
    changed = make_ha(mobile_nodes=(narrowed,))
    reply = register(changed, clock, extensions=prefixes(ALLOWED))
    assert reply.code == ReplyCode.ACCEPTED
    assert [item.code for item in reply.prefix_replies] == [PrefixReplyCode.REJECTED_ADMIN]


def test_allows_memo_stays_bounded_and_right_when_full() -> None:
    mn = MobileNodeAccount(HOA, SPI, KEY, allowed_prefixes=(IPv6Network("2001:db8::/32"),))
    count = config_module.ALLOWS_MEMO_SIZE * 3
    for index in range(count):
        inside = IPv6Network((int(IPv6Address("2001:db8::")) + (index << 64), 64))
        outside = IPv6Network((int(IPv6Address("2001:db9::")) + (index << 64), 64))
        assert mn.allows(inside) and not mn.allows(outside)
    assert len(mn._allows_memo) <= config_module.ALLOWS_MEMO_SIZE


# -- decoding: the same bytes give the same (immutable) objects -------------------------------------


def test_decoded_addresses_are_shared_and_right_after_the_memo_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registration, "DECODED_ADDRESSES_SIZE", 4)
    monkeypatch.setattr(registration, "_DECODED_ADDRESSES", {})
    first = decoded_ipv4(bytes((10, 0, 0, 1)))
    assert decoded_ipv4(bytes((10, 0, 0, 1))) is first
    for last in range(20):
        assert decoded_ipv4(bytes((10, 0, 1, last))) == IPv4Address(f"10.0.1.{last}")
    assert len(registration._DECODED_ADDRESSES) <= 4
    assert decoded_ipv4(bytes((10, 0, 0, 1))) == first


def test_decoded_prefix_requests_are_shared_and_right_after_the_memo_fills(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dsmip, "DECODED_REQUESTS_SIZE", 3)
    monkeypatch.setattr(dsmip, "_DECODED_REQUESTS", {})
    body = PrefixRequest.for_network(ALLOWED).encode()[2:]
    first = decode_dsmip_body(body, 24)
    assert decode_dsmip_body(body, 24) is first and first == PrefixRequest.for_network(ALLOWED)
    for index in range(10):
        network = IPv6Network((int(IPv6Address("2001:db8::")) + (index << 80), 48))
        decoded = decode_dsmip_body(PrefixRequest.for_network(network).encode()[2:], 24)
        assert isinstance(decoded, PrefixRequest) and decoded.network == network
    assert len(dsmip._DECODED_REQUESTS) <= 3
    # host bits set (RFC 5454 §2.1: ignored by the receiver, kept for re-encoding): its own entry
    with_host_bits = PrefixRequest(48, IPv6Address("2001:db8:10::1"))
    decoded = decode_dsmip_body(with_host_bits.encode()[2:], 24)
    assert decoded == with_host_bits and isinstance(decoded, PrefixRequest)
    assert decoded.network == ALLOWED and decoded.has_host_bits


def test_hashed_addresses_hash_and_compare_as_ipv4_addresses() -> None:
    """The hash kept with a decoded address is ``IPv4Address``'s hash of that very value: both kinds of
    object find each other in a dict, and an address made from it by arithmetic gets its own hash (fails
    if the kept hash belonged to anything but the address's own value)."""
    rng = random.Random(9)
    for value in [0, 1, 0xFFFFFFFF, *(rng.getrandbits(32) for _ in range(200))]:
        hashed, plain = HashedIPv4Address(value), IPv4Address(value)
        assert hash(hashed) == hash(plain) and hashed == plain and plain == hashed
        assert {plain: "plain"}[hashed] == "plain" and {hashed: "hashed"}[plain] == "hashed"
        if value < 0xFFFFFFFF:
            assert hash(hashed + 1) == hash(IPv4Address(value + 1)) and hashed + 1 == IPv4Address(value + 1)
    decoded = decoded_ipv4(bytes((198, 51, 100, 7)))
    assert isinstance(decoded, HashedIPv4Address) and hash(decoded) == hash(IPv4Address("198.51.100.7"))
    assert str(decoded) == "198.51.100.7" and decoded.packed == bytes((198, 51, 100, 7))


def test_prefix_request_text_is_its_own_prefix_after_the_memo_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``rrp_sent`` prefix text is kept on the (immutable) Prefix Request it was made from: right for
    every request, including link-locals (``/255``, RFC 5454 §2.2) and after the decode memo was emptied."""
    monkeypatch.setattr(dsmip, "DECODED_REQUESTS_SIZE", 3)
    monkeypatch.setattr(dsmip, "_DECODED_REQUESTS", {})
    for index in range(10):
        network = IPv6Network((int(IPv6Address("2001:db8::")) + (index << 80), 48 + index))
        decoded = decode_dsmip_body(PrefixRequest.for_network(network).encode()[2:], 24)
        assert isinstance(decoded, PrefixRequest) and decoded.text == str(network)
    link_local = PrefixRequest.for_link_local(IPv6Address("fe80::c000:205"))
    assert link_local.text == "fe80::c000:205/255"


def test_reply_sent_names_each_renewals_own_prefixes_rfc5454_3_3() -> None:
    """End to end: each mobile node's ``ReplySent`` names the prefix it asked for, renewal after renewal
    (the text made once per Prefix Request must never be another node's)."""
    other = IPv6Network("2001:db8:20::/48")
    clock = Clock()
    ha = make_ha(mobile_nodes=(account(), account(HOA2, allowed_prefixes=(other,))))
    for _ in range(3):
        for home, network in ((HOA, ALLOWED), (HOA2, other)):
            clock.now += 1.0
            register(ha, clock, home=home, extensions=prefixes(network))
            sent = [event for event in iter(ha.next_event, None) if isinstance(event, ReplySent)]
            expected = ((str(network), PrefixReplyCode.ACCEPTED_TO_HOA),)
            assert [event.prefix_replies for event in sent] == [expected]


# -- the MN-HA check from the offsets found while decoding (RFC 5944 §3.5.1, §3.8.2.1) ---------------


@pytest.mark.parametrize(
    ("key", "spi", "expected"),
    [(KEY, SPI, True), (OTHER_KEY, SPI, False), (KEY, SPI + 1, False)],
)
def test_verify_located_agrees_with_verify_with_rfc5944_3_5_1(key: bytes, spi: int, expected: bool) -> None:
    raw = rrq(Clock(), extensions=prefixes(ALLOWED), key=key, spi=spi)
    request, located = RegistrationRequest.decode_located(raw)
    association = SecurityAssociation(SPI, KEY)
    assert verify_located(raw, located, MN_HA, association) is expected
    assert verify_with(raw, MN_HA, association) is expected
    assert request == RegistrationRequest.decode(raw)


def test_verify_located_checks_the_first_mn_ha_and_none_is_false_rfc5944_3_5_1() -> None:
    association = SecurityAssociation(SPI, KEY)
    unsigned = RegistrationRequest.decode(rrq(Clock())).fixed_part()
    assert not verify_located(unsigned, RegistrationRequest.decode_located(unsigned)[1], MN_HA, association)
    signed = append_authentication(unsigned, MN_HA, association)
    twice = append_authentication(signed, MN_HA, SecurityAssociation(SPI, OTHER_KEY))
    located = RegistrationRequest.decode_located(twice)[1]
    assert [type(item.extension) for item in located] == [AuthenticationExtension] * 2
    assert verify_located(twice, located, MN_HA, association) == verify_with(twice, MN_HA, association)


def test_encode_reply_is_the_reply_message_encoding_rfc5944_3_4() -> None:
    extensions = (
        PrefixReply.answering(PrefixRequest.for_network(ALLOWED), PrefixReplyCode.ACCEPTED_TO_COA),
        UdpTunnelReply(0, force=True, keepalive=110),
    )
    for code, lifetime, ident in [
        (ReplyCode.ACCEPTED, 300, 2**64 - 1),
        (ReplyCode.HA_IDENTIFICATION_MISMATCH, 0, 7),
    ]:
        message = RegistrationReply(code, lifetime, HOA, HA, ident, extensions)
        assert encode_reply(code, lifetime, HOA, HA, ident, extensions) == message.encode()
    assert encode_reply(1, 0, HOA, HA, 1, ()) == RegistrationReply(1, 0, HOA, HA, 1).encode()


# -- the binding table's prefixes (RFC 5454 §3.3, §3.8) ----------------------------------------------


def test_replace_prefixes_shortcut_only_for_the_very_same_prefixes_rfc5454_3_8() -> None:
    """The same prefixes again: no change, the registered dict kept. A changed target, a dropped or an added
    prefix must still be reported (fails if the shortcut took those for renewals)."""
    table, other = BindingTable(), IPv6Network("2001:db8:20::/48")
    to_home = PrefixBinding(ALLOWED, TunnelTarget.HOME_ADDRESS)
    first = table.replace_prefixes(HOA, [to_home])
    assert first.added == (to_home,)
    registered = table.get(HOA)
    assert registered is not None
    kept = registered.prefixes
    again = table.replace_prefixes(HOA, [PrefixBinding(IPv6Network(ALLOWED), TunnelTarget.HOME_ADDRESS)])
    assert (again.added, again.removed, again.changed) == ((), (), ())
    assert registered.prefixes is kept
    to_care_of = PrefixBinding(ALLOWED, TunnelTarget.CARE_OF)
    assert table.replace_prefixes(HOA, [to_care_of]).changed == (to_care_of,)
    assert registered.prefixes[ALLOWED].target is TunnelTarget.CARE_OF
    both = table.replace_prefixes(HOA, [to_care_of, PrefixBinding(other, TunnelTarget.CARE_OF)])
    assert [item.prefix for item in both.added] == [other]
    swapped = table.replace_prefixes(HOA, [PrefixBinding(other, TunnelTarget.CARE_OF), to_care_of])
    assert (swapped.added, swapped.removed, swapped.changed) == ((), (), ())
    assert list(registered.prefixes) == [other, ALLOWED]  # the order the MN asked in, as before
    assert table.replace_prefixes(HOA, []).removed == (PrefixBinding(other, TunnelTarget.CARE_OF), to_care_of)
    assert table.prefix_owner(ALLOWED) is None and table.prefix_owner(other) is None


def test_prefix_owner_index_matches_a_brute_force_overlap_check_rfc5454_3_3() -> None:
    """Random adds and removes of nested prefixes: ``overlapping`` (integer index) against the definition
    (one contains the other); fails if a removed prefix stays in the index."""
    rng = random.Random(9)
    owners = PrefixOwners()
    registered: dict[IPv6Network, IPv4Address] = {}
    base = int(IPv6Address("2001:db8::"))

    def some_prefix() -> IPv6Network:
        length = rng.choice([32, 40, 48, 56, 64, 128])
        return IPv6Network(
            (base + (rng.getrandbits(8) << 80) + (rng.getrandbits(4) << 64), length), strict=False
        )

    for step in range(600):
        prefix = some_prefix()
        if prefix in registered and rng.random() < 0.6:
            owners.remove(prefix)
            del registered[prefix]
        else:  # nested prefixes too: the index answers for any set (the core refuses other MNs' overlaps)
            owner = IPv4Address("10.0.0.1") + step
            owners.add(prefix, owner)
            registered[prefix] = owner
        query = some_prefix()
        expected = sorted(owner for other, owner in registered.items() if query.overlaps(other))
        assert sorted(owners.overlapping(query)) == expected
    for prefix in list(registered):
        owners.remove(prefix)
    assert len(owners) == 0 and owners.overlapping(IPv6Network("::/0")) == []
