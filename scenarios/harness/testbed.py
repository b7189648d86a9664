"""`Testbed`: a Mininet network with our agents, captures and probes that always tears down (design.md §2).

Order in: network → captures (before the agents, so their first packets are seen) → agents (HA, FAs, MNs).
Order out, on success, exception or Ctrl-C alike: probes → agents (reverse order, SIGTERM so each removes
what it installed) → captures → network → control-socket folder. Every process is stopped by its own
handle; Ctrl-C (SIGINT) or SIGTERM during teardown is held until teardown has finished, then raised.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from agents.runtime.mipctl import send_request
from agents.runtime.scheduling import realtime_thread
from agents.runtime.trace import TraceWriter, monotonic_now
from scenarios.harness.links import LinkMover, MoveError
from scenarios.harness.probes import Flow, ProbeSet, Timeline
from scenarios.harness.runfolder import RunFolder
from scenarios.harness.signals import Interrupted, raise_interrupted
from topologies.build import build_network, configure, stop_network
from topologies.dualstack import DualStackTopo
from topologies.host_flows import forget_testbed_flows
from topologies.nodes import start_scale

logger = logging.getLogger(__name__)
SNAPLEN = 256
"""Bytes kept per captured packet: every header of a doubly encapsulated probe and a whole DSMIPv4 RRQ."""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def capture_points(topo: DualStackTopo) -> list[tuple[str, str]]:
    """(node, interface) captured in a run: every interface of the agents and of the correspondent."""
    nodes = [name for name, _ in topo.agentNodes()] + [name for name in topo.hosts() if name.startswith("cn")]
    return [(node, interface) for node in nodes for interface in topo.nodeSpec(node).interfaces]


LOSS_SEEN_TIMEOUT = 0.05
"""Seconds the harness waits, with the link down, for the mobile node's agent to handle the carrier loss."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Testbed:
    """``with Testbed(topo, run) as bed:`` builds, starts and later removes everything of one run."""

    def __init__(
        self, topo: DualStackTopo, run: RunFolder, *, pcap: bool = True, start_timeout: float = 60.0
    ) -> None:
        self.topo = topo
        self.start_timeout = start_timeout
        self.run = run
        self.pcap = pcap
        self.net: Any = None
        self.agents: dict[str, Any] = {}
        self.captures: list[Any] = []
        self.probes: ProbeSet | None = None
        self.exit_codes: dict[str, int] = {}
        self.trace = TraceWriter(run.trace("scenario"), "scenario")
        self.links = topo.mobileLinks()
        self.timelines = {name: Timeline(link.initial) for name, link in self.links.items()}
        self.attachment = {name: link.initial for name, link in self.links.items()}
        self.handovers = 0
        self.mover: LinkMover | None = None
        self._previous_sigterm: Any = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        self._previous_sigterm = signal.signal(signal.SIGTERM, raise_interrupted)
        try:
            self.net = build_network(self.topo, self.start_timeout)  # built and started
            configure(self.net, self.topo)
            if self.pcap:
                self._start_captures()
            self._start_agents()
        except BaseException:
            self._close_quietly()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if error is None:
            self.close()
        else:
            self._close_quietly()

    def _close_quietly(self) -> None:
        """:meth:`close` while another exception is on its way: that one propagates, a teardown error is
        only logged."""
        try:
            self.close()
        except Exception:  # not Interrupted or KeyboardInterrupt: those still count
            logger.exception("teardown failed")

    def close(self) -> None:
        """Tear everything down; safe to call twice and after a partial start. SIGINT or SIGTERM arriving
        meanwhile is raised afterwards (KeyboardInterrupt, :class:`Interrupted`), so it is not lost."""
        held: list[int] = []

        def hold(signum: int, _frame: FrameType | None) -> None:
            held.append(signum)

        previous_sigint = signal.signal(signal.SIGINT, hold)
        previous_sigterm = signal.signal(signal.SIGTERM, hold)
        if self._previous_sigterm is None:
            self._previous_sigterm = previous_sigterm
        failures: list[Exception] = []
        try:
            for step in (
                self._stop_probes_now,
                self._stop_agents,
                self._close_mover,
                self._stop_captures,
                self._stop_network,
                self._forget_host_flows,
                self.trace.close,
                self.run.remove_sockets,
            ):
                try:
                    step()
                except Exception as error:  # one failed step must not leave the later ones undone
                    logger.exception("teardown step %s failed", step.__name__)
                    failures.append(error)
            if signal.SIGTERM in held:
                raise Interrupted("SIGTERM during teardown")
            if signal.SIGINT in held:
                raise KeyboardInterrupt
            if failures:
                raise failures[0]
        finally:
            signal.signal(signal.SIGINT, previous_sigint)
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None

    def _stop_probes_now(self) -> None:
        if self.probes is not None:
            self.exit_codes |= {f"probe {k}": v for k, v in self.probes.stop().items()}

    def _stop_agents(self) -> None:
        for name in reversed(list(self.agents)):
            self.exit_codes[f"agent {name}"] = self.agents[name].stop(timeout=8.0)
            del self.agents[name]

    def _close_mover(self) -> None:
        if self.mover is not None:
            mover, self.mover = self.mover, None
            mover.close()

    def _stop_captures(self) -> None:
        while self.captures:
            self.captures[-1].stop(timeout=5.0)
            self.captures.pop()

    def _stop_network(self) -> None:
        if self.net is not None:
            net, self.net = self.net, None
            stop_network(net)

    def _forget_host_flows(self) -> None:
        """The root namespace's conntrack entries of our bridged traffic (topologies/host_flows.py)."""
        deleted = forget_testbed_flows()
        if deleted:
            self.trace.emit(TraceEvent.HOST_FLOWS_FORGOTTEN, entries=deleted)

    # -- parts -------------------------------------------------------------------------------------------

    def node(self, name: str) -> Any:
        return self.net[name]

    def _start_captures(self) -> None:
        for node, interface in capture_points(self.topo):
            path = self.run.pcap(node, interface)
            argv = ["tcpdump", "-i", interface, "-w", str(path), "-U", "-n", "-s", str(SNAPLEN)]
            log = self.run.log(f"tcpdump-{node}-{interface}")
            self.captures.append(
                self.node(node).start_process(argv, log, ready=b"tcpdump: listening", ready_on="stderr")
            )
        self.trace.emit(TraceEvent.CAPTURES_STARTED, count=len(self.captures))

    def _start_agents(self) -> None:
        for node, role in self.topo.agentNodes():
            config = self.run.config(node)
            text = self.topo.nodeSpec(node).agent_toml()
            if text is None:
                raise ValueError(f"{node} runs {role} but has no agent configuration")
            config.write_text(text)
            self.agents[node] = self.node(node).start_agent(
                role, config, self.run.trace(node), self.run.control(node), self.run.log(node)
            )
            self.trace.emit(TraceEvent.AGENT_STARTED, agent=node, role=role)

    def ask(self, node: str, command: str, **args: Any) -> Any:
        """One control-socket request to ``node``'s agent (design.md §5); raises on an error answer. The
        answer may take 5 s (scaled by ``DSMIP_START_SCALE``) plus the command's own ``timeout``."""
        line = json.dumps({"command": command, "args": args}).encode() + b"\n"
        within = 5.0 * start_scale() + float(args.get("timeout", 0.0))
        answer = send_request(self.run.control(node), line, within)
        if not answer.get("ok"):
            raise RuntimeError(f"{node} {command}: {answer.get('error', answer)}")
        return answer["result"]

    # -- probes and moves --------------------------------------------------------------------------------

    def start_probes(self, flows: list[Flow], rate: float) -> None:
        self.probes = ProbeSet(self.node, self.run, flows, rate)
        self.trace.emit(TraceEvent.PROBES_STARTED, flows=[flow.name for flow in flows], rate=rate)
        self.probes.start()

    def stop_probes(self) -> None:
        """Stop the probes and write ``probes/<flow>.csv`` from their logs."""
        if self.probes is None:
            return
        probes = self.probes
        codes = probes.stop()  # interrupted here, close() stops the rest: the handles are still ours
        self.probes = None
        self.exit_codes |= {f"probe {k}": v for k, v in codes.items()}
        self.trace.emit(TraceEvent.PROBES_STOPPED)
        timeline = next(iter(self.timelines.values()))
        probes.merge(timeline)

    def move(
        self,
        mobile_node: str,
        to: str,
        *,
        carrier_events: bool | None = None,
        while_down: Callable[[], None] | None = None,
    ) -> int:
        """Re-attach ``mobile_node``'s link to the access network ``to``; returns the handover number."""
        link = self.links[mobile_node]
        if to not in link.attachments:
            known = ", ".join(link.attachments)
            raise MoveError(f"{mobile_node} cannot move to {to!r}: attachments are {known}")
        if to == self.attachment[mobile_node]:
            raise MoveError(f"{mobile_node} is on {to} already")
        events = link.carrier_events if carrier_events is None else carrier_events
        self.handovers += 1
        number, source = self.handovers, self.attachment[mobile_node]
        detection = "link" if events else "advert"
        now = monotonic_now()
        self.trace.emit_at(
            now, TraceEvent.MOVE_STARTED, handover=number, to=to, detection=detection, **{"from": source}
        )
        self.timelines[mobile_node].moved(now, to)
        if self.mover is None:
            self.mover = LinkMover()
        seen = self._loss_seen(mobile_node, while_down)
        with realtime_thread(self.topo.agent_priority):  # the move stands for hardware: never kept waiting
            self.mover.reattach(link, to, self.trace.emit_at, number, events, seen)
        self.attachment[mobile_node] = to
        return number

    def _loss_seen(self, mobile_node: str, while_down: Callable[[], None] | None) -> Callable[[], None]:
        """What runs while the carrier is down: ``while_down``, then a wait (at most
        :data:`LOSS_SEEN_TIMEOUT`, scaled) until the node's agent has written a trace line since the link
        went down, i.e. has handled the carrier loss. A station drives its own roam, so its stack knows the
        old link is gone before the new one is up; without the wait the raw-netlink move brings the link
        back within ~1 ms of the loss, and an agent not yet scheduled meanwhile still held its home link's
        routes there (an IPv6 home-router lookup on a visited link, RFC 5944 §4.6's rule for ARP)."""
        path = self.run.trace(mobile_node)
        before = _size(path)

        def seen() -> None:
            if while_down is not None:
                while_down()
            wait_until(lambda: _size(path) != before, LOSS_SEEN_TIMEOUT * start_scale(), interval=0.0002)

        return seen

    def finish_move(self, number: int, restored: bool) -> None:
        self.trace.emit(TraceEvent.MOVE_FINISHED, handover=number, restored=restored)
