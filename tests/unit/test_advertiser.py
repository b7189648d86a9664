"""Agent Advertisement scheduling (agents/mip/fa/advertiser.py): RFC 5944 §2.1, §2.3; RFC 1256 §4.1, §5.5.

Every test drives :class:`Advertiser` on a fake clock with a seeded ``random.Random`` and decodes
what it sends with :class:`AgentAdvertisement`; each names the RFC section it pins.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.common.config import Encapsulation, HomeAgentConfig
from agents.mip.fa.advertiser import (
    MAX_INITIAL_ADVERT_INTERVAL,
    Advertiser,
    OutgoingAdvertisement,
    foreign_agent_advertiser,
    home_agent_advertiser,
)
from agents.mip.fa.config import AdvertisementConfig, AdvertisementDestination, ForeignAgentConfig
from agents.mip.wire.icmp import ALL_SYSTEMS, LIMITED_BROADCAST, AgentAdvertisement
from agents.mip.wire.icmp import AdvertisementFlag as F

COA = IPv4Address("198.51.100.1")
ACCESS = IPv4Interface("198.51.100.1/24")
NEIGHBOUR = IPv4Address("198.51.100.77")
HOA = IPv4Address("192.0.2.10")
MAC = bytes.fromhex("020000000010")
HA_CONFIG = HomeAgentConfig(IPv4Address("192.0.2.1"), IPv4Network("192.0.2.0/24"))


def fa_config(**changes: Any) -> ForeignAgentConfig:
    advertisement = changes.pop("advertisement", AdvertisementConfig(router_addresses=(ACCESS,)))
    return ForeignAgentConfig((COA,), advertisement=advertisement, **changes)


def make(advertisement: AdvertisementConfig | None = None, seed: int = 1, **changes: Any) -> Advertiser:
    if advertisement is not None:
        changes["advertisement"] = advertisement
    config = fa_config(**changes)
    return foreign_agent_advertiser(config, random.Random(seed))


def fire(advertiser: Advertiser) -> list[OutgoingAdvertisement]:
    """Advance to the advertiser's next deadline and take what it sends."""
    now = advertiser.get_timer()
    assert now is not None
    advertiser.handle_timer(now)
    return advertiser.advertisements_to_send(now)


def unsolicited_times(advertiser: Advertiser, count: int) -> list[float]:
    times = []
    while len(times) < count:
        now = advertiser.get_timer()
        assert now is not None
        advertiser.handle_timer(now)
        times += [now for item in advertiser.advertisements_to_send(now) if not item.solicited]
    return times


def decoded(item: OutgoingAdvertisement) -> AgentAdvertisement:
    return AgentAdvertisement.decode(item.payload)


# -- sequence numbers (RFC 5944 §2.3.2) --------------------------------------------------------------


def test_first_advertisement_is_due_at_once_with_sequence_0_rfc5944_2_3_2() -> None:
    advertiser = make()
    assert advertiser.get_timer() == 0.0  # already due: the runtime fires it immediately
    advertiser.handle_timer(100.0)
    (first,) = advertiser.advertisements_to_send(100.0)
    assert decoded(first).mobility.sequence == 0
    assert [decoded(item).mobility.sequence for item in fire(advertiser) + fire(advertiser)] == [1, 2]


def test_sequence_after_0xffff_is_256_rfc5944_2_3_2() -> None:
    advertiser = make(AdvertisementConfig(max_interval=0.05))
    sequences = [decoded(item).mobility.sequence for _ in range(65537) for item in fire(advertiser)]
    assert sequences[:3] == [0, 1, 2]
    assert sequences[65534:] == [65534, 65535, 256]  # no return to 0..255: that would signal a reboot
    assert advertiser.sequence == 257


def test_solicited_advertisements_take_sequence_numbers_too_rfc5944_2_1_1() -> None:
    advertiser = make()
    fire(advertiser)
    advertiser.receive_solicitation(NEIGHBOUR, 50.0)
    (answer,) = advertiser.advertisements_to_send(50.0)
    assert answer.solicited and decoded(answer).mobility.sequence == 1


# -- intervals and jitter (RFC 1256 §4.1, RFC 5944 §2.3.1) -----------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_intervals_are_jittered_within_min_and_max_rfc1256_4_1(seed: int) -> None:
    advertiser = make(AdvertisementConfig(max_interval=2.0, min_interval=1.0), seed=seed)
    gaps = [b - a for a, b in itertools.pairwise(unsolicited_times(advertiser, 60))]
    assert all(1.0 <= gap <= 2.0 for gap in gaps)
    assert len({round(gap, 9) for gap in gaps}) > 50  # randomised, not a fixed period
    assert max(gaps) - min(gaps) > 0.5


def test_same_seed_same_schedule_rfc1256_4_1() -> None:
    first = unsolicited_times(make(seed=9), 20)
    assert first == unsolicited_times(make(seed=9), 20)
    assert first != unsolicited_times(make(seed=10), 20)


def test_50_ms_interval_is_allowed_rfc5944_2_3_1() -> None:
    config = AdvertisementConfig(max_interval=0.05)
    assert config.effective_min_interval == 0.05 and config.effective_lifetime == 1  # ≥ 3 × 0.05
    gaps = [b - a for a, b in itertools.pairwise(unsolicited_times(make(config), 40))]
    assert all(gap == pytest.approx(0.05) for gap in gaps)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_interval": 0.049}, "max_interval"),
        ({"max_interval": 1.0, "min_interval": 0.04}, "min_interval"),
        ({"max_interval": 1.0, "min_interval": 1.5}, "min_interval"),
        ({"max_interval": 10.0, "lifetime": 29}, "3 × max_interval"),
        ({"lifetime": 9001}, "9000"),
        ({"code": 1}, "0 or 16"),
        ({"prefix_lengths": True}, "router_addresses"),
        ({"solicited_min_gap": -1.0}, "solicited_min_gap"),
    ],
)
def test_bad_advertisement_config_is_refused_rfc5944_2_3_1(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdvertisementConfig(**changes)


def test_icmp_lifetime_is_at_least_three_intervals_rfc5944_2_3_1() -> None:
    for interval in (0.05, 0.3, 1.0, 1.7, 600.0):
        config = AdvertisementConfig(max_interval=interval)
        assert config.effective_lifetime >= 3 * interval
        (item,) = fire(make(config))
        assert decoded(item).lifetime == config.effective_lifetime


def test_first_three_advertisements_come_at_most_16_s_apart_rfc1256() -> None:
    advertiser = make(AdvertisementConfig(max_interval=600.0))
    gaps = [b - a for a, b in itertools.pairwise(unsolicited_times(advertiser, 6))]
    assert all(gap <= MAX_INITIAL_ADVERT_INTERVAL for gap in gaps[:3])
    assert all(450.0 <= gap <= 600.0 for gap in gaps[3:])


# -- contents and flags (RFC 5944 §2.1, §2.1.1, §2.1.2; RFC 3024 §3.1) -------------------------------------


def test_fa_advertisement_fields_rfc5944_2_1_1() -> None:
    config = AdvertisementConfig(router_addresses=(ACCESS,), prefix_lengths=True, code=16, preference=5)
    advertisement = decoded(fire(make(config, max_lifetime=900))[0])
    assert advertisement.code == 16
    assert advertisement.router_addresses == ((COA, 5),)
    assert advertisement.prefix_lengths == (24,)
    assert advertisement.mobility.registration_lifetime == 900
    assert advertisement.mobility.care_of_addresses == (COA,)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, F.F | F.M | F.G | F.T),
        ({"encapsulations": frozenset({Encapsulation.IP_IN_IP})}, F.F | F.T),
        ({"encapsulations": frozenset({Encapsulation.IP_IN_IP, Encapsulation.GRE})}, F.F | F.G | F.T),
        ({"reverse_tunnel_supported": False, "encapsulating_delivery_supported": False}, F.F | F.M | F.G),
        ({"registration_required": True}, F.R | F.F | F.M | F.G | F.T),
        ({"busy": True}, F.B | F.F | F.M | F.G | F.T),
        ({"advertisement": AdvertisementConfig(advertise_home=True)}, F.H | F.F | F.M | F.G | F.T),
    ],
)
def test_flags_follow_capabilities_rfc5944_2_1_1_rfc3024_3_1(changes: dict[str, Any], expected: F) -> None:
    advertisement = decoded(fire(make(**changes))[0])
    assert advertisement.mobility.flags == expected
    assert not advertisement.mobility.flags & (F.U | F.X | F.I | F.r)  # nothing claimed that is not done


def test_busy_flag_can_be_set_and_cleared_rfc5944_2_1_1() -> None:
    advertiser = make()
    advertiser.set_busy(True)
    assert F.B in decoded(fire(advertiser)[0]).mobility.flags
    advertiser.set_busy(False)
    assert F.B not in decoded(fire(advertiser)[0]).mobility.flags


def test_invalid_flags_are_refused_and_the_old_ones_kept_rfc5944_2_1_1() -> None:
    advertiser = make()
    with pytest.raises(ValueError, match="neither F nor H"):
        advertiser.set_flags(F.T)
    assert advertiser.flags == F.F | F.M | F.G | F.T


_router_lists = st.lists(
    st.builds(IPv4Interface, st.tuples(st.integers(1, 2**32 - 2), st.integers(0, 32))), max_size=4
)


@settings(max_examples=150, deadline=None)
@given(
    max_interval=st.floats(0.05, 1800.0),
    code=st.sampled_from([0, 16]),
    destination=st.sampled_from(list(AdvertisementDestination)),
    routers=_router_lists,
    prefix_lengths=st.booleans(),
    home=st.booleans(),
    busy=st.booleans(),
    required=st.booleans(),
    reverse=st.booleans(),
    encapsulations=st.sets(st.sampled_from([Encapsulation.GRE, Encapsulation.MINIMAL])),
    max_lifetime=st.integers(1, 0xFFFF),
    care_ofs=st.lists(st.integers(0x0A000001, 0x0AFFFFFE), min_size=1, max_size=8, unique=True),
)
def test_generated_advertisements_always_validate_rfc5944_2_1(**draw: Any) -> None:
    routers = tuple(draw["routers"])
    config = AdvertisementConfig(
        max_interval=draw["max_interval"],
        code=draw["code"],
        destination=draw["destination"],
        router_addresses=routers,
        prefix_lengths=draw["prefix_lengths"] and bool(routers),
        advertise_home=draw["home"],
    )
    fa = ForeignAgentConfig(
        tuple(IPv4Address(value) for value in draw["care_ofs"]),
        advertisement=config,
        busy=draw["busy"],
        registration_required=draw["required"],
        reverse_tunnel_supported=draw["reverse"],
        encapsulating_delivery_supported=draw["reverse"],
        encapsulations=frozenset({Encapsulation.IP_IN_IP, *draw["encapsulations"]}),
        max_lifetime=draw["max_lifetime"],
    )
    advertiser = foreign_agent_advertiser(fa, random.Random(0))
    sent = fire(advertiser) + fire(advertiser)
    advertiser.receive_solicitation(HOA, 1e6, link_address=MAC)
    advertiser.withdraw(2e6)
    sent += advertiser.advertisements_to_send(2e6)
    for item in sent:
        advertisement = decoded(item)
        advertisement.validate()
        assert advertisement.problems() == ()
        assert item.ttl == 1


# -- destinations and TTL (RFC 5944 §2.1, §2.3; RFC 1256 §5.5) ---------------------------------------------


@pytest.mark.parametrize(
    ("destination", "address"),
    [
        (AdvertisementDestination.MULTICAST, ALL_SYSTEMS),
        (AdvertisementDestination.BROADCAST, LIMITED_BROADCAST),
    ],
)
def test_unsolicited_destination_and_ttl_1_rfc5944_2_1(
    destination: AdvertisementDestination, address: IPv4Address
) -> None:
    advertiser = make(AdvertisementConfig(destination=destination))
    for item in fire(advertiser) + fire(advertiser):
        assert (item.destination, item.ttl, item.link_address, item.solicited) == (address, 1, None, False)


@pytest.mark.parametrize(
    ("source", "link", "expected"),
    [
        (HOA, MAC, (HOA, MAC)),  # a visitor's home address: unicast to its MAC, no ARP (RFC 5944 §2.1)
        (NEIGHBOUR, None, (NEIGHBOUR, None)),  # on-link source: plain unicast (RFC 1256 §5.5)
        (HOA, None, (ALL_SYSTEMS, None)),  # off-link, link address unknown: multicast
        (IPv4Address("0.0.0.0"), MAC, (ALL_SYSTEMS, None)),  # no address yet: multicast
    ],
)
def test_solicitation_answer_destination_rfc5944_2_3(
    source: IPv4Address, link: bytes | None, expected: tuple[IPv4Address, bytes | None]
) -> None:
    advertiser = make()
    advertiser.receive_solicitation(source, 10.0, link_address=link)
    (answer,) = advertiser.advertisements_to_send(10.0)
    assert (answer.destination, answer.link_address) == expected
    assert answer.ttl == 1 and answer.solicited


def test_unicast_answers_can_be_switched_off_rfc1256_5_5() -> None:
    advertiser = make(AdvertisementConfig(router_addresses=(ACCESS,), unicast_solicited=False))
    advertiser.receive_solicitation(NEIGHBOUR, 10.0, link_address=MAC)
    (answer,) = advertiser.advertisements_to_send(10.0)
    assert answer.destination == ALL_SYSTEMS and answer.link_address is None


def test_solicitation_answers_are_rate_limited_per_destination_rfc5944_2_3() -> None:
    config = AdvertisementConfig(max_interval=100.0, router_addresses=(ACCESS,), solicited_min_gap=1.0)
    advertiser = make(config)
    advertiser.handle_timer(0.0)  # the first unsolicited one; the next is at least 16 s away
    advertiser.advertisements_to_send(0.0)
    advertiser.receive_solicitation(NEIGHBOUR, 10.0)
    assert len(advertiser.advertisements_to_send(10.0)) == 1
    for now in (10.2, 10.4, 10.6):  # three more inside the gap share one deferred answer
        advertiser.receive_solicitation(NEIGHBOUR, now)
        assert advertiser.advertisements_to_send(now) == []
    assert advertiser.get_timer() == pytest.approx(11.0)
    advertiser.handle_timer(11.0)
    (deferred,) = advertiser.advertisements_to_send(11.0)
    assert deferred.destination == NEIGHBOUR and deferred.solicited
    advertiser.receive_solicitation(IPv4Address("198.51.100.78"), 11.1)  # another solicitor is not held back
    assert len(advertiser.advertisements_to_send(11.1)) == 1
    assert advertiser.counters["solicitations_coalesced"] == 2


def test_multicast_answer_waits_for_the_gap_after_an_unsolicited_one_rfc5944_2_3() -> None:
    advertiser = make(AdvertisementConfig(max_interval=10.0, solicited_min_gap=0.5))
    advertiser.handle_timer(0.0)
    advertiser.advertisements_to_send(0.0)
    advertiser.receive_solicitation(IPv4Address("0.0.0.0"), 0.1)
    assert advertiser.advertisements_to_send(0.1) == [] and advertiser.get_timer() == pytest.approx(0.5)
    advertiser.handle_timer(0.5)
    assert [item.destination for item in advertiser.advertisements_to_send(0.5)] == [ALL_SYSTEMS]


def test_withdraw_sends_lifetime_0_and_stops_rfc1256() -> None:
    advertiser = make()
    fire(advertiser)
    advertiser.withdraw(5.0)
    (last,) = advertiser.advertisements_to_send(5.0)
    assert decoded(last).lifetime == 0 and last.destination == ALL_SYSTEMS
    assert advertiser.get_timer() is None
    advertiser.receive_solicitation(NEIGHBOUR, 6.0)
    assert advertiser.advertisements_to_send(6.0) == []


# -- the home agent's advertisements (RFC 5944 §2.1.1, §2.4.3) -------------------------------------------


def test_home_agent_advertises_h_without_f_rfc5944_2_4_3() -> None:
    config = AdvertisementConfig(advertise_home=True, router_addresses=(IPv4Interface("192.0.2.1/24"),))
    advertiser = home_agent_advertiser(HA_CONFIG, config, random.Random(3))
    advertisement = decoded(fire(advertiser)[0])
    flags = advertisement.mobility.flags
    assert F.H in flags and not flags & (F.F | F.R | F.B)
    assert flags == F.H | F.M | F.G | F.T  # from the HA's encapsulations and reverse tunnel support
    assert advertisement.mobility.care_of_addresses == ()
    assert advertisement.mobility.registration_lifetime == HA_CONFIG.max_lifetime
    assert advertisement.router_addresses == ((IPv4Address("192.0.2.1"), 0),)


def test_home_agent_flags_follow_its_config_rfc5944_2_1_1() -> None:
    config = dataclasses.replace(
        HA_CONFIG, encapsulations=frozenset({Encapsulation.IP_IN_IP}), reverse_tunnel_supported=False
    )
    advertiser = home_agent_advertiser(config, AdvertisementConfig(advertise_home=True), random.Random(3))
    assert decoded(fire(advertiser)[0]).mobility.flags == F.H


def test_home_agent_advertiser_needs_advertise_home_rfc5944_2_1_1() -> None:
    with pytest.raises(ValueError, match="advertise_home"):
        home_agent_advertiser(HA_CONFIG, AdvertisementConfig(), random.Random(3))


def test_status_is_json_able() -> None:
    advertiser = make()
    fire(advertiser)
    status = advertiser.status()
    assert status["flags"] == "F|M|G|T" and status["next_sequence"] == 1
    assert not math.isnan(float(status["lifetime"]))  # type: ignore[arg-type]
