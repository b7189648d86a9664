"""The DHCPv6 PD client machine on a fake clock (RFC 8415 §15, §18.2; RFC 5454 §3.7.1)."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from ipaddress import IPv6Network

import pytest

from agents.mip.mn.dhcpv6_timing import Retransmission, RetransmissionParameters
from agents.mip.mn.pd_client import PD_TRANSITIONS, PdClient, PdClientConfig, PdState
from agents.mip.mn.pd_events import (
    DelegationLost,
    Dhcpv6Ignored,
    NoPrefixAvailable,
    PdClientEvent,
    PrefixDelegated,
    ReleaseFinished,
)
from agents.mip.wire.dhcpv6 import (
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
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

CLIENT = duid_en(32473, bytes([10, 1, 0, 5]))
SERVER = duid_ll(bytes.fromhex("020000000001"))
PREFIX = IPv6Network("2001:db8:ff00:100::/56")
CONFIG = PdClientConfig(CLIENT, sol_max_delay=0.0)


def sent(client: PdClient, now: float) -> list[Message]:
    datagrams = client.datagrams_to_send(now)
    assert all(d.destination == ALL_DHCP_RELAY_AGENTS_AND_SERVERS and d.port == 547 for d in datagrams)
    return [Message.decode(d.payload) for d in datagrams]


def events(client: PdClient) -> list[PdClientEvent]:
    out = []
    while (event := client.next_event()) is not None:
        out.append(event)
    return out


def answer(
    to: Message,
    kind: MessageType = MessageType.REPLY,
    prefix: IPv6Network = PREFIX,
    *,
    t1: int = 100,
    t2: int = 160,
    preferred: int = 200,
    valid: int = 300,
    rapid: bool = False,
    client_id: bytes = CLIENT,
    status: StatusCode | None = None,
    other: tuple[RawOption, ...] = (),
) -> bytes:
    prefixes = () if status else (IaPrefix(preferred, valid, prefix),)
    ia_pd = IaPd(1, t1, t2, prefixes, status)
    return Message(
        kind, to.transaction_id, client_id, SERVER, (ia_pd,), rapid_commit=rapid, other=other
    ).encode()


def bound(client: PdClient, now: float = 0.0) -> Message:
    client.start(now)
    client.handle_timer(now)
    (solicit,) = sent(client, now)
    client.receive_datagram(answer(solicit, rapid=True), now + 0.01)
    events(client)
    assert client.state is PdState.BOUND
    return solicit


def test_solicit_carries_client_id_ia_pd_rapid_commit_and_elapsed_zero() -> None:
    client = PdClient(replace(CONFIG, length_hint=56), random.Random(1))
    client.start(0.0)
    client.handle_timer(0.0)
    (solicit,) = sent(client, 0.0)
    assert solicit.msg_type == MessageType.SOLICIT and solicit.client_id == CLIENT
    assert solicit.rapid_commit and solicit.elapsed_time == 0 and solicit.server_id is None
    assert solicit.oro == (82,)  # SOL_MAX_RT, RFC 8415 §18.2.1
    assert solicit.ia_pds == (IaPd(1, 0, 0, (IaPrefix(0, 0, IPv6Network("::/56")),)),)


def test_first_solicit_waits_a_random_delay_up_to_sol_max_delay() -> None:
    client = PdClient(replace(CONFIG, sol_max_delay=1.0), random.Random(3))
    client.start(10.0)
    timer = client.get_timer()
    assert timer is not None and 10.0 < timer <= 11.0
    client.handle_timer(10.0)
    assert sent(client, 10.0) == []
    client.handle_timer(timer)
    assert [m.msg_type for m in sent(client, timer)] == [MessageType.SOLICIT]


def test_solicit_retransmissions_follow_rfc8415_section_15() -> None:
    rng = random.Random(7)
    client = PdClient(replace(CONFIG, sol_max_rt=8.0), rng)
    client.start(0.0)
    now, gaps, xids = 0.0, [], set()
    for _ in range(7):
        client.handle_timer(now)
        (solicit,) = sent(client, now)
        xids.add(solicit.transaction_id)
        timer = client.get_timer()
        assert timer is not None
        gaps.append(timer - now)
        now = timer
    assert len(xids) == 1  # retransmissions keep the transaction id
    assert 1.0 < gaps[0] <= 1.1  # first RT strictly above SOL_TIMEOUT
    for previous, gap in itertools.pairwise(gaps):
        assert gap <= 8.0 * 1.1 + 1e-9
        assert gap >= min(1.9 * previous, 8.0 * 0.9) - 1e-9
    assert gaps[-1] >= 7.2  # capped at SOL_MAX_RT ± 10 %


def test_elapsed_time_counts_hundredths_since_the_first_solicit() -> None:
    client = PdClient(CONFIG, random.Random(2))
    client.start(5.0)
    client.handle_timer(5.0)
    sent(client, 5.0)
    retry = client.get_timer()
    assert retry is not None
    client.handle_timer(retry)
    (second,) = sent(client, retry)
    assert second.elapsed_time == round((retry - 5.0) * 100)


def test_retransmission_randomisation_stays_within_a_tenth() -> None:
    params = RetransmissionParameters(1.0, 4.0, mrc=5)
    schedule = Retransmission(params, random.Random(11), 0.0)
    timeouts = [schedule.next_timeout() for _ in range(5)]
    assert 0.9 <= timeouts[0] <= 1.1
    assert all(t <= 4.4 for t in timeouts) and timeouts[-1] >= 3.6
    assert schedule.exhausted(100.0)


def test_rapid_commit_reply_binds_with_the_server_timers() -> None:
    client = PdClient(CONFIG, random.Random(1))
    client.start(0.0)
    client.handle_timer(0.0)
    (solicit,) = sent(client, 0.0)
    client.receive_datagram(answer(solicit, rapid=True), 0.2)
    delegated = [e for e in events(client) if isinstance(e, PrefixDelegated)]
    assert delegated == [PrefixDelegated(PREFIX, 200, 300, 100.0, 160.0, "rapid-commit", SERVER.hex())]
    assert client.state is PdState.BOUND and client.get_timer() == pytest.approx(100.2)


def test_four_message_exchange_waits_first_rt_then_requests_the_offered_prefix() -> None:
    client = PdClient(replace(CONFIG, rapid_commit=False), random.Random(1))
    client.start(0.0)
    client.handle_timer(0.0)
    (solicit,) = sent(client, 0.0)
    assert not solicit.rapid_commit
    client.receive_datagram(answer(solicit, MessageType.ADVERTISE), 0.1)
    assert sent(client, 0.1) == [] and client.state is PdState.SOLICITING  # collects for the first RT
    first_rt = client.get_timer()
    assert first_rt is not None and first_rt > 1.0
    client.handle_timer(first_rt)
    (request,) = sent(client, first_rt)
    assert request.msg_type == MessageType.REQUEST and request.server_id == SERVER
    assert request.ia_pds[0].prefixes[0].prefix == PREFIX and request.transaction_id != solicit.transaction_id
    client.receive_datagram(answer(request), first_rt + 0.01)
    assert any(isinstance(e, PrefixDelegated) and e.how == "request" for e in events(client))


def test_advertise_with_preference_255_is_taken_at_once() -> None:
    client = PdClient(replace(CONFIG, rapid_commit=False), random.Random(1))
    client.start(0.0)
    client.handle_timer(0.0)
    (solicit,) = sent(client, 0.0)
    client.receive_datagram(answer(solicit, MessageType.ADVERTISE, other=(RawOption(7, b"\xff"),)), 0.1)
    (request,) = sent(client, 0.1)
    assert request.msg_type == MessageType.REQUEST


def test_reply_without_rapid_commit_to_a_solicit_is_ignored() -> None:
    client = PdClient(CONFIG, random.Random(1))
    client.start(0.0)
    client.handle_timer(0.0)
    (solicit,) = sent(client, 0.0)
    client.receive_datagram(answer(solicit), 0.1)
    assert client.state is PdState.SOLICITING
    assert any(isinstance(e, Dhcpv6Ignored) for e in events(client))


@pytest.mark.parametrize("what", ["client", "xid", "outside"])
def test_reply_for_another_client_exchange_or_prefix_is_ignored(what: str) -> None:
    client = PdClient(replace(CONFIG, requested=IPv6Network("2001:db8:ff00::/40")), random.Random(1))
    client.start(0.0)
    client.handle_timer(0.0)
    (solicit,) = sent(client, 0.0)
    if what == "client":
        data = answer(solicit, rapid=True, client_id=duid_en(32473, b"\x0a\x01\x00\x06"))
    elif what == "xid":
        data = answer(replace(solicit, transaction_id=solicit.transaction_id ^ 1), rapid=True)
    else:
        data = answer(solicit, prefix=IPv6Network("2001:db8:aa00::/56"), rapid=True)
    client.receive_datagram(data, 0.1)
    assert client.state is PdState.SOLICITING and client.lease is None
    assert not any(isinstance(e, PrefixDelegated) for e in events(client))


def test_renew_at_t1_then_rebind_at_t2_then_expiry_withdraws_the_prefix() -> None:
    client = PdClient(replace(CONFIG, ren_timeout=5.0, reb_timeout=5.0), random.Random(1))
    bound(client)
    assert client.get_timer() == pytest.approx(100.01)
    client.handle_timer(100.01)
    (renew,) = sent(client, 100.01)
    assert renew.msg_type == MessageType.RENEW and renew.server_id == SERVER
    assert renew.ia_pds[0].prefixes[0].prefix == PREFIX
    now = 100.01
    while (timer := client.get_timer()) is not None and timer < 160.01 - 1e-9:
        now = timer
        client.handle_timer(now)
        assert all(m.msg_type == MessageType.RENEW for m in sent(client, now))
    client.handle_timer(160.01)
    (rebind,) = sent(client, 160.01)
    assert rebind.msg_type == MessageType.REBIND and rebind.server_id is None
    assert client.state is PdState.REBINDING
    client.handle_timer(300.01)
    lost = [e for e in events(client) if isinstance(e, DelegationLost)]
    assert lost == [DelegationLost(PREFIX, "expired")]
    assert client.state is PdState.SOLICITING and client.lease is None


def test_renew_reply_extends_the_lease() -> None:
    client = PdClient(CONFIG, random.Random(1))
    bound(client)
    client.handle_timer(100.01)
    (renew,) = sent(client, 100.01)
    client.receive_datagram(answer(renew, valid=600, preferred=400, t1=0, t2=0), 100.5)
    renewed = [e for e in events(client) if isinstance(e, PrefixDelegated)]
    assert [e.how for e in renewed] == ["renew"] and renewed[0].t1 == 200.0 and renewed[0].t2 == 320.0
    assert client.state is PdState.BOUND and client.lease is not None
    assert client.lease.expires_at == pytest.approx(700.5)


def test_renew_reply_with_another_prefix_is_not_taken() -> None:
    client = PdClient(CONFIG, random.Random(1))
    bound(client)
    client.handle_timer(100.01)
    (renew,) = sent(client, 100.01)
    client.receive_datagram(answer(renew, prefix=IPv6Network("2001:db8:ff00:200::/56")), 100.5)
    assert client.state is PdState.RENEWING and client.lease is not None and client.lease.prefix == PREFIX


def test_renew_reply_with_valid_lifetime_zero_withdraws() -> None:
    client = PdClient(CONFIG, random.Random(1))
    bound(client)
    client.handle_timer(100.01)
    (renew,) = sent(client, 100.01)
    client.receive_datagram(answer(renew, valid=0, preferred=0), 100.5)
    assert DelegationLost(PREFIX, "withdrawn") in events(client)


def test_no_prefix_avail_is_reported_once_and_soliciting_goes_on() -> None:
    client = PdClient(CONFIG, random.Random(1))
    client.start(0.0)
    now = 0.0
    for _ in range(3):
        client.handle_timer(now)
        (solicit,) = sent(client, now)
        status = StatusCode(Status.NO_PREFIX_AVAIL, "pool exhausted")
        client.receive_datagram(answer(solicit, MessageType.ADVERTISE, status=status), now + 0.01)
        timer = client.get_timer()
        assert timer is not None
        now = timer
    said = [e for e in events(client) if isinstance(e, NoPrefixAvailable)]
    assert said == [NoPrefixAvailable("pool exhausted")]
    assert client.state is PdState.SOLICITING


def test_release_stops_using_the_prefix_and_retransmits_up_to_rel_max_rc() -> None:
    client = PdClient(CONFIG, random.Random(1))
    bound(client)
    client.release(50.0)
    (release,) = sent(client, 50.0)
    assert release.msg_type == MessageType.RELEASE and release.server_id == SERVER
    assert release.ia_pds[0].prefixes[0].prefix == PREFIX
    assert events(client)[0] == DelegationLost(PREFIX, "released")
    count = 1
    while (timer := client.get_timer()) is not None:
        client.handle_timer(timer)
        count += len(sent(client, timer))
    assert count == 4 and client.state is PdState.STOPPED
    assert events(client)[-1] == ReleaseFinished(False)


def test_release_confirmed_by_reply() -> None:
    client = PdClient(CONFIG, random.Random(1))
    bound(client)
    client.release(50.0)
    (release,) = sent(client, 50.0)
    client.receive_datagram(answer(release, valid=0, preferred=0), 50.1)
    assert events(client)[-1] == ReleaseFinished(True)
    assert client.state is PdState.STOPPED and client.get_timer() is None


def test_release_before_anything_was_delegated_just_stops() -> None:
    client = PdClient(CONFIG, random.Random(1))
    client.start(0.0)
    client.release(0.5)
    assert client.state is PdState.STOPPED and sent(client, 0.5) == []


def test_every_transition_goes_to_a_state() -> None:
    assert all(isinstance(after, PdState) for after in PD_TRANSITIONS.values())
    assert (PdState.BOUND, PdState.IDLE) not in PD_TRANSITIONS  # type: ignore[comparison-overlap]


def test_a_released_client_can_start_again_with_a_new_transaction() -> None:
    client = PdClient(CONFIG, random.Random(1))
    first = bound(client)
    client.release(50.0)
    sent(client, 50.0)
    for _ in range(4):
        timer = client.get_timer()
        if timer is None:
            break
        client.handle_timer(timer)
        sent(client, timer)
    assert client.state is PdState.STOPPED
    client.start(60.0)
    client.handle_timer(60.0)
    (solicit,) = sent(client, 60.0)
    assert solicit.msg_type == MessageType.SOLICIT and solicit.transaction_id != first.transaction_id
    client.start(60.5)  # already soliciting: nothing new
    assert sent(client, 60.5) == []
