"""The security scenario's fault phases (the attacks are in :mod:`scenarios.security_run`):

* ``loss``       30 % of UDP 434 dropped both ways on one leg at a time (iptables ``statistic``, removed
  after): MN↔FA in the mobile node's namespace, FA↔HA in the foreign agent's (only datagrams to and from
  the HA's address); the MN still registers, by retransmission (RFC 5944 §3.6.3: only the MN retransmits,
  so a request lost between FA and HA is sent again by the MN)
* ``ha-restart`` the HA is killed (SIGKILL, our handle) and started again with the same configuration, trace,
  log and control path: it restores the binding from its journal, traffic comes back without the MN acting
* ``fa-restart`` the FA is stopped and started: its advertisements start again at sequence 0, the MN takes
  that for a reboot and registers again (RFC 5944 §2.4.4)
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING, Any

from scenarios.harness.testbed import Testbed, wait_until
from topologies.addressing import HA4

if TYPE_CHECKING:
    from scenarios.security_run import SecurityRun

MOBILE, FOREIGN = "mn1", "fa1"
LOSS_RULES = (("OUTPUT", "--dport", "-d"), ("INPUT", "--sport", "-s"))
"""Requests out (to UDP 434) and the replies in (from UDP 434)."""
LEG_NODES = {"mn-fa": MOBILE, "fa-ha": FOREIGN}
"""Where each leg's rules go; on the FA they match the HA's address (its access link carries UDP 434 too)."""
LOSS_TIMEOUT = 120.0
"""A registration under 30 % loss each way succeeds per attempt with p = 0.49; with the 1, 2, 4, 8, 16 s
backoff the seventh attempt goes out at 47 s and the eleventh at 111 s. Within 60 s (seven attempts, p ≈ 1 %
of failing all) one trial in a full run failed in a 2026-12-05 run, a 78 from the FA having cost one
attempt; within 120 s failing all eleven has p ≈ 0.06 %. A trial that succeeds takes no longer for it."""


def command(node: Any, argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` in ``node`` to its end (10 s at most); (exit status, stdout + stderr)."""
    popen = node.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = popen.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        popen.kill()  # our own handle
        out, _ = popen.communicate()
        return -9, out.decode(errors="replace")
    return popen.returncode, out.decode(errors="replace")


def loss_rule(chain: str, port_option: str, probability: float, peer: list[str] | None = None) -> list[str]:
    """``chain`` drops ``probability`` of UDP 434 (to or from port 434), only to/from ``peer`` if given."""
    return [
        chain, *(peer or []), "-p", "udp", port_option, "434", "-m", "statistic", "--mode", "random",
        "--probability", f"{probability:g}", "-j", "DROP",
    ]  # fmt: skip


COUNT_COMMENT = "dsmip-loss-count"
"""Comment of the counting rules (no target) put before each loss rule: how many packets the leg's match
caught, dropped or not, so a rule that matches nothing shows as 0 matched, not as a lucky 0 dropped."""
EXTRA_TRIALS = 10
"""Registrations added on a leg whose rules have dropped nothing yet (p = 0.7^(2n) of no drop after n):
the verdict wants at least one drop per leg, proof the loss was there."""


def leg_rules(leg: str, probability: float) -> list[list[str]]:
    """The rules of ``leg``, each loss rule after a counting rule with the same match: at the MN any
    UDP 434 (its only peer is the FA), at the FA the HA's."""
    rules = []
    for chain, option, address in LOSS_RULES:
        rule = loss_rule(chain, option, probability, [address, str(HA4.ip)] if leg == "fa-ha" else None)
        match = rule[1 : rule.index("-m")]
        rules.append([chain, *match, "-m", "comment", "--comment", COUNT_COMMENT])
        rules.append(rule)
    return rules


def rule_counts(node: Any, marker: str) -> dict[str, int]:
    """Packets counted so far by the rules whose listing holds ``marker`` (``iptables -L -v -x``)."""
    counts = {}
    for chain, _, _ in LOSS_RULES:
        _, out = command(node, ["iptables", "-w", "-L", chain, "-v", "-x", "-n"])
        counts[chain] = sum(int(line.split()[0]) for line in out.splitlines() if marker in line)
    return counts


def dropped_by_rules(node: Any) -> dict[str, int]:
    """Packets each loss rule dropped so far, by chain."""
    return rule_counts(node, "statistic")


def phase_loss(run: SecurityRun, bed: Testbed) -> None:
    """RFC 5944 §3.6.3: the MN registers although ``--loss`` of its signalling is lost each way, on each
    leg in turn."""
    for leg in run.args.loss_legs:
        bed.ask(MOBILE, "deregister")
        run.wait(lambda: run.binding() is None, f"mn1 deregistered before the loss on {leg}")
        lossy_leg(run, bed, leg)
        bed.ask(MOBILE, "register")
        run.wait(lambda: run.registered(MOBILE, run.fa_care_of), f"mn1 registered after the loss on {leg}")
    time.sleep(run.args.dwell)


def lossy_leg(run: SecurityRun, bed: Testbed, leg: str) -> None:
    """Rules on, ``--loss-trials`` registrations (each after a deregistration), rules off."""
    name, probability = LEG_NODES[leg], run.args.loss
    node, rules = bed.node(name), leg_rules(leg, probability)
    for rule in rules:
        code, out = command(node, ["iptables", "-w", "-A", *rule])
        run.expect(f"loss rule {rule[0]} installed in {name}", code == 0, out.strip())
    _, listing = command(node, ["iptables", "-w", "-S"])
    run.mark("loss_installed", leg=leg, at=name, probability=probability, rules=listing.splitlines())
    try:
        trials = run.args.loss_trials
        trial = 0
        while trial < trials or (trial < trials + EXTRA_TRIALS and not sum(dropped_by_rules(node).values())):
            if trial:
                bed.ask(MOBILE, "deregister")
                gone = wait_until(lambda: run.binding() is None, LOSS_TIMEOUT)
                run.expect(f"loss {leg}: mn1 deregistered (trial {trial + 1})", gone, "" if gone else "kept")
            run.mark("register_sent", leg=leg, trial=trial)
            bed.ask(MOBILE, "register")
            done = wait_until(lambda: run.registered(MOBILE, run.fa_care_of), LOSS_TIMEOUT, interval=0.05)
            run.mark("registered_seen", leg=leg, trial=trial, registered=done)
            trial += 1
        run.mark(
            "loss_counters",
            leg=leg,
            dropped=dropped_by_rules(node),
            matched=rule_counts(node, COUNT_COMMENT),
            trials=trial,
        )
    finally:
        for rule in rules:
            command(node, ["iptables", "-w", "-D", *rule])
        _, listing = command(node, ["iptables", "-w", "-S"])
        run.mark("loss_removed", leg=leg, at=name, rules=listing.splitlines())


def phase_ha_restart(run: SecurityRun, bed: Testbed) -> None:
    """kill -9 of the HA, then the same agent again: its journal gives it the binding back (no MN action).
    Killed right after a renewal, so the journalled binding outlives the restart (about 1 s)."""
    time.sleep(run.args.dwell)
    fresh = wait_renewal(run, run.args.lifetime + 1.0)
    process = bed.agents["ha"]
    process.popen.kill()  # our own handle: SIGKILL, no cleanup, no deregistration
    code = process.popen.wait(timeout=10)
    run.mark("ha_killed", pid=process.pid, exit_code=code, after_renewal=fresh)
    bed.agents["ha"] = bed.node("ha").start_agent(
        "ha", run.run.config("ha"), run.run.trace("ha"), run.run.control("ha"), run.run.log("ha")
    )
    run.mark("ha_restarted", pid=bed.agents["ha"].pid, counters=run.counters())
    time.sleep(max(2.0, 2 * run.args.dwell))
    run.mark("binding_seen", label="after-ha-restart", care_ofs=run.care_ofs(), counters=run.counters())


def phase_fa_restart(run: SecurityRun, bed: Testbed) -> None:
    """The FA crashes (SIGKILL: no last advertisement with Lifetime 0) and starts again within the MN's
    advertisement lifetime; its sequence numbers restart at 0, so the MN sees a reboot (§2.4.4)."""
    time.sleep(run.args.dwell)
    process = bed.agents[FOREIGN]
    run.mark("fa_stopping", pid=process.pid)
    process.popen.kill()  # our own handle
    code = process.popen.wait(timeout=10)
    run.mark("fa_stopped", exit_code=code)
    bed.agents[FOREIGN] = bed.node(FOREIGN).start_agent(
        "fa", run.run.config(FOREIGN), run.run.trace(FOREIGN), run.run.control(FOREIGN), run.run.log(FOREIGN)
    )
    run.mark("fa_restarted", pid=bed.agents[FOREIGN].pid)
    again = wait_until(lambda: visitor_known(run, bed), run.args.settle_timeout, interval=0.05)
    run.mark("fa_visitor_seen", registered=again)
    time.sleep(max(2.0, 2 * run.args.dwell))


def visitor_known(run: SecurityRun, bed: Testbed) -> bool:
    try:
        visitors = bed.ask(FOREIGN, "visitors")
    except (OSError, RuntimeError):
        return False
    return any(entry.get("home_address") == run.hoa for entry in visitors)


def wait_renewal(run: SecurityRun, timeout: float) -> bool:
    """Poll the HA's binding until its remaining lifetime jumps up (a renewal was accepted)."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        care_ofs = (run.binding() or {}).get("care_ofs") or [{}]
        remaining = care_ofs[0].get("remaining")
        if isinstance(remaining, int | float):
            if last is not None and remaining > last + 0.5:
                return True
            last = remaining
        time.sleep(0.02)
    return False
