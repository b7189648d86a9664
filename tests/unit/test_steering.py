"""The home agent's reuseport steering program (agents/runtime/steering.py), run by a small classic-BPF
interpreter written here from the instruction set (Linux Documentation/networking/filter.rst): which
datagrams go to the priority socket (known peers' requests for a configured home address, RFC 5944 §3.3;
their Tunnel Data, RFC 3519 §3.3) and that every jump stays inside the program, whatever its size."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from agents.runtime.steering import GENERAL, MAX_ADDRESSES, PRIORITY, SKF_NET_OFF, steering_program

HOME = IPv4Address("192.0.2.10")
PEER = IPv4Address("198.51.100.2")
STRANGER = IPv4Address("203.0.113.10")


def run(program: list[tuple[int, int, int, int]], source: IPv4Address, payload: bytes) -> int:
    """Execute ``program`` as a reuseport filter sees a UDP datagram: offset 0 is the payload,
    SKF_NET_OFF + k the IPv4 header (20 bytes, source at 12)."""
    header = bytes(12) + source.packed + bytes(4)
    a, pc, steps = 0, 0, 0
    while True:
        steps += 1
        assert steps < 10_000 and 0 <= pc < len(program), f"ran off the program at {pc}"
        code, jt, jf, k = program[pc]
        if code in (0x20, 0x30):  # ld w/b abs
            size = 4 if code == 0x20 else 1
            if k >= 1 << 31:  # negative offset
                offset = k - (1 << 32) - SKF_NET_OFF
                data = header[offset : offset + size]
            else:
                data = payload[k : k + size]
            if len(data) < size:
                return GENERAL  # the kernel ends the program with 0 on an out-of-bounds load
            a = int.from_bytes(data, "big")
        elif code == 0x80:  # ld len
            a = len(payload)
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x35):  # jeq, jge
            taken = a == k if code == 0x15 else a >= k
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        pc += 1


def request(home: IPv4Address, length: int = 50) -> bytes:
    head = struct.pack("!BBH4s", 1, 0, 3, home.packed)
    return head + bytes(length - len(head))


def test_known_peers_requests_for_configured_home_addresses_go_first() -> None:
    program = steering_program({PEER}, {HOME})
    assert run(program, PEER, request(HOME)) == PRIORITY
    assert run(program, PEER, bytes([4, 0, 0, 0]) + bytes(40)) == PRIORITY  # Tunnel Data, RFC 3519 §3.3


def test_everything_else_shares_the_general_queue() -> None:
    program = steering_program({PEER}, {HOME})
    assert run(program, STRANGER, request(HOME)) == GENERAL  # a new mobile node, or a flood
    assert run(program, PEER, request(IPv4Address("192.0.2.99"))) == GENERAL  # not a configured home
    assert run(program, PEER, request(HOME)[:23]) == GENERAL  # shorter than a request (RFC 5944 §3.3)
    assert run(program, PEER, bytes([1])) == GENERAL  # garbage forging the peer
    assert run(program, PEER, bytes([3]) + bytes(40)) == GENERAL  # a reply type is never sent to an HA
    assert run(steering_program(set(), {HOME}), PEER, request(HOME)) == GENERAL


def test_long_address_lists_keep_every_jump_inside_the_program() -> None:
    peers = [IPv4Address(0x0A000000 + n) for n in range(900)]
    homes = [IPv4Address(0xC0000200 + n) for n in range(450)]
    program = steering_program(peers, homes)
    for code, jt, jf, _k in program:
        assert 0 <= jt <= 255 and 0 <= jf <= 255 and code in (0x20, 0x30, 0x80, 0x05, 0x15, 0x35, 0x06)
    assert len(program) < 4096  # BPF_MAXINSNS
    for peer in (peers[0], peers[199], peers[200], peers[899]):
        for home in (homes[0], homes[449]):
            assert run(program, peer, request(home)) == PRIORITY
    assert run(program, IPv4Address(0x0A000000 + 900), request(homes[0])) == GENERAL
    assert run(program, peers[5], request(IPv4Address(0xC0000200 + 450))) == GENERAL


def test_peers_stay_in_the_program_when_bound_home_addresses_exceed_its_size() -> None:
    """Issue 9: with more bound home addresses than the program holds (all lower than the peer's
    address), the peer's renewals still go first; the home addresses fill what room is left."""
    homes = [IPv4Address(0x0A000100 + n) for n in range(MAX_ADDRESSES + 500)]
    program = steering_program({PEER, *homes}, homes)
    assert run(program, PEER, request(homes[0])) == PRIORITY
    assert run(program, homes[0], request(homes[0])) == PRIORITY  # lowest home: in the room left
    assert run(program, homes[-1], request(homes[-1])) == GENERAL  # past the cap: the general queue


def test_a_home_address_is_steered_first_only_while_its_mobile_node_has_a_binding() -> None:
    """Issue 16 review: a bad-auth flood forging a mobile node's home address must not reach the priority
    socket while there is no binding a deregistration from home (RFC 5944 §3.6.1.2) could remove."""
    from agents.mip.wire.codes import ReplyCode
    from tests.unit.test_home_agent import HOA, OTHER_KEY, Clock, deliver, make_ha, register, rrq

    clock = Clock()
    ha = make_ha()
    forged = rrq(clock, key=OTHER_KEY, care_of=HOA, lifetime=0)

    def queue() -> int:
        return run(steering_program(ha.known_sources(clock.now), ha.home_addresses), HOA, forged)

    assert queue() == GENERAL
    assert register(ha, clock, lifetime=60).code == ReplyCode.ACCEPTED
    assert queue() == PRIORITY  # away: its deregistration from home goes first
    [reply] = deliver(ha, rrq(clock, care_of=HOA, lifetime=0), clock, HOA)
    assert reply.code == ReplyCode.ACCEPTED and ha.table.get(HOA) is None
    assert queue() == GENERAL
