"""The security scenario's ``nat-loss`` phase: a NAT forgets the mobile node's mapping (as after a NAT
reboot or an idle timeout; issue 16 "NAT binding loss").

mn1 moves from FA1 to the private LAN behind ``nat1`` (MASQUERADE) and registers through it with UDP
tunnelling (RFC 3519); once its binding is there, the NAT's conntrack entries for the node are deleted, so
its next packets leave from a new public port and the HA's downlink goes to a port the NAT no longer maps.
The mapping is dropped right after a renewal; the MN notices by its unanswered keepalives (RFC 3519
§4.9–§4.10) or, with a lifetime shorter than K + 2 s, at its next renewal, and registers from the new port;
the verdicts (:mod:`reports.security_nat`) take the outage from the probes. Then mn1 returns to FA1.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from scenarios.harness.testbed import Testbed, wait_until
from scenarios.security_faults import wait_renewal
from topologies.addressing import NAT_PRIVATE4

if TYPE_CHECKING:
    from scenarios.security_run import SecurityRun

MOBILE, NAT_NODE = "mn1", "nat1"
PRIVATE = NAT_PRIVATE4.network.network_address + 10
"""mn1's address on the private LAN, as a DHCP server there would give it."""


def phase_nat_loss(run: SecurityRun, bed: Testbed) -> None:
    """To the NAT, lose the mapping, wait for the new one at the HA, back to FA1."""
    interface = run.topo.mobileLinks()[MOBILE].interface
    settle = max(run.args.settle_timeout, 3 * run.args.keepalive + 10)
    number = bed.move(MOBILE, "nat", carrier_events=True)
    dhcp(run, bed, interface, bind=True)
    there = run.wait(lambda: run.registered(MOBILE, str(PRIVATE)), "mn1 registered through the NAT")
    bed.finish_move(number, there)
    time.sleep(max(2.0, run.args.dwell))
    renewed = wait_renewal(run, run.args.lifetime + 1.0)  # the worst case: the next renewal is far off
    before = nat_port(run)
    run.mark("nat_mapping_lost", port=before, binding=run.care_ofs(), after_renewal=renewed)
    bed.node(NAT_NODE).cmd(f"conntrack -D -s {PRIVATE} >/dev/null 2>&1")
    run.progress.say(f"NAT mapping lost (public port {before}); waiting for mn1 to notice")
    moved = wait_until(lambda: nat_port(run) not in (None, before), settle, interval=0.05)
    run.mark("nat_rebound", port=nat_port(run), moved=moved)
    time.sleep(max(2.0, run.args.dwell))
    run.mark("nat_left")
    number = bed.move(
        MOBILE, "fa1", carrier_events=True, while_down=lambda: dhcp(run, bed, interface, bind=False)
    )
    back = run.wait(lambda: run.registered(MOBILE, run.fa_care_of), "mn1 back via fa1 after the NAT")
    bed.finish_move(number, back)
    time.sleep(run.args.dwell)


def dhcp(run: SecurityRun, bed: Testbed, interface: str, *, bind: bool) -> None:
    """What the private LAN's DHCP client would do: the address and default route, or their release."""
    node, gateway, address = bed.node(MOBILE), NAT_PRIVATE4.ip, f"{PRIVATE}/{NAT_PRIVATE4.network.prefixlen}"
    if bind:  # the node may drop the previous link's default route itself (its reaction to the carrier);
        # a DHCP client replaces whatever default route is left (the FA's stays: it is no agent's route)
        wait_until(lambda: "default" not in node.cmd("ip -4 route show default"), 2.0)
        commands = [
            f"ip route replace default via {gateway} dev {interface} onlink",
            f"ip addr add {address} dev {interface}",
        ]
    else:
        commands = [
            f"ip route del default via {gateway} dev {interface}",
            f"ip addr del {address} dev {interface}",
        ]
    for command in commands:
        output = node.cmd(command).strip()
        if output:
            run.expect(f"DHCP on the private LAN: {command}", False, output)
    run.mark("dhcp_bound" if bind else "dhcp_released", address=address)


def nat_port(run: SecurityRun) -> int | None:
    """The UDP port of mn1's binding at the HA (None: no UDP-tunnelled binding)."""
    try:
        care_ofs = (run.binding() or {}).get("care_ofs", [])
    except (OSError, RuntimeError):
        return None
    return next((int(entry["port"]) for entry in care_ofs if entry.get("port") is not None), None)
