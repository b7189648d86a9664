"""Home agent crash recovery: how long IPv4 and IPv6 to an away mobile node stay down after `kill -9`
and an immediate restart of the home agent, with and without `[runtime] journal` (needs root).

```
 dsm-k<pid>-cn: cn-home 192.0.2.50, 2001:db8:0:1::50 ── home link ── ha-home: dsm-k<pid>-ha 192.0.2.1,
   pings the HoA 192.0.2.10 and 2001:db8:10::c000:20a       2001:db8:0:1::1 (`python -m agents ha`)
   every --interval (CLOCK_MONOTONIC send/receive times)      ha-mn 198.51.100.1 ── visited link ──
                                                             mn-eth: dsm-k<pid>-mn 198.51.100.10, co-located
                                                             MN (`python -m agents mn`), lifetime --lifetime
```
One run: wait until both families flow, wait a random part of the MN's renewal interval (so the kill falls
at a random phase of it), SIGKILL the HA by its PID, start a new HA at once, and measure, per family, the
time from the kill to the send time of the first echo that is answered again. Without a journal the
restarted HA knows no binding, so the outage lasts until the MN's next renewal (0.75 × lifetime after its
last registration); with one it is the restart time. Figures: median (min–max) of --runs runs each.
Everything made here (three namespaces named with this PID, a temporary directory, the agents) is removed
at the end; agents are stopped by their own PIDs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents.net.netlink import netns_entered

REPO = Path(__file__).resolve().parents[1]
KEY = "00112233445566778899aabbccddeeff"
HOA, MN_V6 = "192.0.2.10", "2001:db8:10::c000:20a"
READY_TIMEOUT = 30.0


def run(namespace: str, command: str) -> str:
    """A shell command inside ``namespace``; RuntimeError with its stderr if it fails."""
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, "sh", "-c", command], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"[{namespace}] {command}: {result.stderr.strip()}")
    return result.stdout


def ha_config(journal: Path | None) -> str:
    journal_line = "" if journal is None else f'journal = "{journal}"\n'
    return f"""
[home_agent]
address = "192.0.2.1"
home_network = "192.0.2.0/24"

[[home_agent.mobile_nodes]]
home_address = "{HOA}"
spi = 256
key = "{KEY}"
allowed_prefixes = ["2001:db8:10::/48"]

[runtime]
name = "ha"
home_interface = "ha-home"
tunnel_interface = "mip-ha"
{journal_line}"""


def mn_config(lifetime: int) -> str:
    return f"""
[mobile_node]
home_address = "{HOA}"
home_agent = "192.0.2.1"
spi = 256
key = "{KEY}"
lifetime = {lifetime}
prefixes = ["2001:db8:10::/48"]

[runtime]
name = "mn"
interface = "mn-eth"
tunnel_interface = "mip0"
"""


@dataclass
class Testbed:
    """Our namespaces, agent processes and temporary directory."""

    prefix: str = field(default_factory=lambda: f"dsm-k{os.getpid()}")
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ha-recovery-")))

    def name(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def build(self) -> None:
        for node in ("ha", "cn", "mn"):
            subprocess.run(["ip", "netns", "add", self.name(node)], check=True)
            self.namespaces.append(self.name(node))
            run(self.name(node), "ip link set lo up && sysctl -qw net.ipv6.conf.all.accept_dad=0")
        for left, right, peer in (("ha-home", "cn-home", "cn"), ("ha-mn", "mn-eth", "mn")):
            veth = ["ip", "link", "add", left, "netns", self.name("ha"), "type", "veth"]
            subprocess.run([*veth, "peer", "name", right, "netns", self.name(peer)], check=True)
        run(
            self.name("ha"),
            "ip addr add 192.0.2.1/24 dev ha-home && ip addr add 2001:db8:0:1::1/64 dev ha-home nodad && "
            "ip addr add 198.51.100.1/24 dev ha-mn && ip link set ha-home up && ip link set ha-mn up",
        )
        run(
            self.name("cn"),
            "ip addr add 192.0.2.50/24 dev cn-home && ip addr add 2001:db8:0:1::50/64 dev cn-home nodad && "
            "ip link set cn-home up && ip -6 route add 2001:db8:10::/48 via 2001:db8:0:1::1",
        )
        run(
            self.name("mn"),
            "ip addr add 198.51.100.10/24 dev mn-eth && ip link set mn-eth up && "
            "ip route add default via 198.51.100.1",
        )

    def start(self, node: str, role: str, config: str, label: str) -> subprocess.Popen[str]:
        """`python -m agents ROLE` in ``node``'s namespace (its PID is the Popen's: `ip netns exec`
        execs in place), after its READY line."""
        path = self.workdir / f"{label}.toml"
        path.write_text(config)
        command = ["ip", "netns", "exec", self.name(node), sys.executable, "-m", "agents", role]
        command += ["--config", str(path), "--control", str(self.workdir / f"{label}.sock")]
        with (self.workdir / f"{label}.stderr").open("w") as stderr:
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.processes.append(process)
        assert process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if (
                select.select([process.stdout], [], [], 0.2)[0]
                and process.stdout.readline().strip() == "READY"
            ):
                return process
        raise RuntimeError(f"{label} not READY: {(self.workdir / f'{label}.stderr').read_text()[-2000:]}")

    def close(self) -> None:
        """Stop our agents (SIGTERM by PID, SIGKILL after 10 s), delete our namespaces and directory."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


class Prober:
    """ICMP / ICMPv6 echoes from the CN to one destination every ``interval``; answered send times."""

    def __init__(self, namespace: str, destination: str, interval: float) -> None:
        self.destination, self.interval = destination, interval
        self.v6 = ":" in destination
        family = socket.AF_INET6 if self.v6 else socket.AF_INET
        protocol = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        with netns_entered(namespace):
            self.sock = socket.socket(family, socket.SOCK_RAW, protocol)
        self.sock.settimeout(0.1)
        self.identifier = (os.getpid() + (1 if self.v6 else 0)) & 0xFFFF
        self.sent: dict[int, float] = {}
        self.answered: list[float] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send), threading.Thread(target=self._receive)]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        sequence = 0
        while not self.stopping.is_set():
            sequence = (sequence + 1) & 0xFFFF
            header = struct.pack("!BBHHH", 128 if self.v6 else 8, 0, 0, self.identifier, sequence)
            message = header + b"recovery"
            if not self.v6:
                message = message[:2] + struct.pack("!H", _checksum(message)) + message[4:]
            with self.lock:
                self.sent[sequence] = time.monotonic()
            with contextlib.suppress(OSError):  # no route or neighbour yet: that echo is simply lost
                self.sock.sendto(message, (self.destination, 0))
            self.stopping.wait(self.interval)

    def _receive(self) -> None:
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(2048)
            except (TimeoutError, OSError):
                continue
            icmp = data if self.v6 else data[(data[0] & 0x0F) * 4 :]
            if len(icmp) < 8 or icmp[0] != (129 if self.v6 else 0):
                continue
            identifier, sequence = struct.unpack("!HH", icmp[4:8])
            if identifier == self.identifier:
                with self.lock:
                    sent = self.sent.pop(sequence, None)
                    if sent is not None:
                        self.answered.append(sent)

    def first_answered_after(self, moment: float) -> float | None:
        with self.lock:
            return min((sent for sent in self.answered if sent > moment), default=None)

    def close(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        self.sock.close()


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


@dataclass
class Outage:
    ipv4: float
    ipv6: float
    ready: float
    """Kill to the new home agent's READY line."""


def wait_flowing(probers: list[Prober], timeout: float) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(prober.first_answered_after(time.monotonic() - 0.5) is not None for prober in probers):
            return
        time.sleep(0.05)
    raise RuntimeError("traffic to the mobile node does not flow")


def one_run(
    bed: Testbed,
    ha: subprocess.Popen[str],
    config: str,
    label: str,
    probers: list[Prober],
    args: argparse.Namespace,
) -> tuple[Outage, subprocess.Popen[str]]:
    """Kill ``ha``, start its successor at once, wait for both families; the outage and the successor."""
    wait_flowing(probers, args.lifetime)
    time.sleep(random.uniform(0.0, 0.75 * args.lifetime))
    wait_flowing(probers, args.lifetime)  # a renewal in between may have just restored it
    killed = time.monotonic()
    os.kill(ha.pid, signal.SIGKILL)
    ha.wait(10)
    successor = bed.start(node="ha", role="ha", config=config, label=label)
    ready = time.monotonic() - killed
    deadline = killed + args.lifetime + 10.0
    answered: list[float | None] = [None, None]
    while time.monotonic() < deadline and None in answered:
        answered = [prober.first_answered_after(killed) for prober in probers]
        time.sleep(0.02)
    if None in answered:
        raise RuntimeError(f"{label}: traffic did not come back within {args.lifetime + 10:.0f} s")
    ipv4, ipv6 = (moment - killed for moment in answered if moment is not None)
    return Outage(ipv4, ipv6, ready), successor


def measure(bed: Testbed, journal: bool, args: argparse.Namespace) -> list[Outage]:
    journal_path = bed.workdir / "ha.journal" if journal else None
    mode = "journal" if journal else "plain"
    config = ha_config(journal_path)
    ha = bed.start("ha", "ha", config, f"ha-{mode}-0")
    mn = bed.start("mn", "mn", mn_config(args.lifetime), f"mn-{mode}")
    probers = [Prober(bed.name("cn"), HOA, args.interval), Prober(bed.name("cn"), MN_V6, args.interval)]
    outages = []
    try:
        for index in range(1, args.runs + 1):
            outage, ha = one_run(bed, ha, config, f"ha-{mode}-{index}", probers, args)
            outages.append(outage)
            print(
                f"  {mode} run {index}: IPv4 {outage.ipv4:.3f} s, IPv6 {outage.ipv6:.3f} s, "
                f"READY after {outage.ready:.3f} s",
                flush=True,
            )
    finally:
        for prober in probers:
            prober.close()
        for process in (mn, ha):  # the MN first: it deregisters while the HA still listens
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(10)
        if journal_path is not None:
            journal_path.unlink(missing_ok=True)
    return outages


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.3f} s ({min(values):.3f}–{max(values):.3f})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="kill + restart cycles per mode")
    parser.add_argument("--lifetime", type=int, default=20, help="the MN's requested lifetime (s)")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between echoes")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--modes", default="journal,plain", help="journal, plain or both (comma-separated)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces, TUN, raw sockets)", file=sys.stderr)
        return 2
    random.seed(args.seed)
    results: dict[str, list[Outage]] = {}
    bed = Testbed()
    try:
        bed.build()
        for mode in args.modes.split(","):
            results[mode] = measure(bed, mode == "journal", args)
    finally:
        bed.close()
    print(
        f"\nHA kill -9 + immediate restart, MN lifetime {args.lifetime} s (renews after "
        f"{0.75 * args.lifetime:.0f} s), echo every {args.interval * 1000:.0f} ms; "
        f"median (min–max) of {args.runs} runs"
    )
    print(f"{'':18} {'IPv4 outage':>26} {'IPv6 outage':>26} {'kill → READY':>26}")
    for mode, outages in results.items():
        label = "with journal" if mode == "journal" else "without journal"
        print(
            f"{label:18} {summary([o.ipv4 for o in outages]):>26} {summary([o.ipv6 for o in outages]):>26} "
            f"{summary([o.ready for o in outages]):>26}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
