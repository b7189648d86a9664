"""TCP throughput through the tunnel vs. the same path without it, per datapath (needs root, iperf3).

    sudo python benchmarks/tunnel_throughput.py [--seconds 5] [--repeats 3] [--no-fast-path]
        [--datapath userspace ebpf] [--gre] [--udp]

``--datapath``: each backend in turn (agents/datapath/userspace.py, agents/datapath/ebpf.py), each case with
its native baseline measured right before it in the same run. ``--gre``: GRE (RFC 2784) instead of
IP-in-IP and protocol 41 for every case.

Builds three namespaces of its own (names ``dsm-b<pid>-*``), each link a veth with MTU 1500:
```
 cn (203.0.113.10, 2001:db8:3::10) ── ha (home agent, routes) ── mn (CoA 198.51.100.2, 2001:db8:2::2)
```
The HA and MN datapaths run as separate processes (this script with ``--serve``), so they do not
share a GIL. iperf3 sends from the CN to the MN: natively to the CoA / 2001:db8:2::2, and through the
tunnel to the home address 192.0.2.100 (IPv4-in-IPv4), to 2001:db8:200::1 (IPv6-in-IPv4 to the CoA,
RFC 5454 code 1) and to 2001:db8:100::1 (IPv6-in-IPv4 to the HoA inside IPv4-in-IPv4, code 0).
With ``--udp`` the datapaths are then restarted in RFC 3519 mode (MIP Tunnel Data in UDP between the HA's
port 434 and the MN's port, Next Header 4 and 41) and the IPv4 and IPv6 (code 1) cases run again, so UDP
and IP-in-IP tunnels are compared in the same run.
Prints the median of each case in Gbit/s and the tunnel/native ratio. Everything it made is deleted
on exit, also on failure or Ctrl-C; processes are stopped through their own handles.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Interface, IPv6Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.proc_cpu import stat_cpu_seconds

HA_ADDRESS, CARE_OF, HOME_ADDRESS = "198.51.100.1", "198.51.100.2", "192.0.2.100"
PREFIX_HOA, PREFIX_COA = "2001:db8:100::/64", "2001:db8:200::/64"
MN_UDP_PORT = 40434
UDP_CASES = [
    ("IPv4-in-UDP (RFC 3519)", 4, CARE_OF, HOME_ADDRESS),
    ("IPv6-in-UDP (RFC 5454 §3.9)", 6, "2001:db8:2::2", "2001:db8:200::1"),
]
CASES = [  # (label, family, native destination, tunnel destination)
    ("IPv4-in-IPv4", 4, CARE_OF, HOME_ADDRESS),
    ("IPv6-in-IPv4 (code 1, to CoA)", 6, "2001:db8:2::2", "2001:db8:200::1"),
    ("IPv6-in-IPv4 (code 0, via HoA)", 6, "2001:db8:2::2", "2001:db8:100::1"),
]


GRE_FLAG = "--gre"


def run(namespace: str, command: str) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, "sh", "-c", command], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"[{namespace}] {command}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Bench:
    """Namespaces and processes this run owns."""

    prefix: str = field(default_factory=lambda: f"dsm-b{os.getpid()}")
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    datapaths: list[subprocess.Popen[str]] = field(default_factory=list)
    gre: bool = False
    """Tunnel with GRE (RFC 2784) instead of IP-in-IP / protocol 41."""

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def build(self) -> None:
        for role in ("cn", "ha", "mn"):
            subprocess.run(["ip", "netns", "add", self.ns(role)], check=True)
            self.namespaces.append(self.ns(role))
            run(self.ns(role), "ip link set lo up")
        self._veth("cn", "cn0", "ha", "ha0")
        self._veth("ha", "ha1", "mn", "mn0")
        run(
            self.ns("cn"),
            "ip addr add 203.0.113.10/24 dev cn0; ip route add default via 203.0.113.1; "
            "ip -6 addr add 2001:db8:3::10/64 dev cn0 nodad; ip -6 route add default via 2001:db8:3::1",
        )
        run(
            self.ns("ha"),
            f"ip addr add 203.0.113.1/24 dev ha0; ip addr add {HA_ADDRESS}/24 dev ha1; "
            "ip -6 addr add 2001:db8:3::1/64 dev ha0 nodad; ip -6 addr add 2001:db8:2::1/64 dev ha1 nodad",
        )
        run(
            self.ns("mn"),
            f"ip addr add {CARE_OF}/24 dev mn0; ip route add default via {HA_ADDRESS}; "
            "ip -6 addr add 2001:db8:2::2/64 dev mn0 nodad; ip -6 route add default via 2001:db8:2::1",
        )

    def _veth(self, left: str, left_name: str, right: str, right_name: str) -> None:
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                left_name,
                "netns",
                self.ns(left),
                "type",
                "veth",
                "peer",
                "name",
                right_name,
                "netns",
                self.ns(right),
            ],
            check=True,
        )
        run(self.ns(left), f"ip link set {left_name} up")
        run(self.ns(right), f"ip link set {right_name} up")

    def start_datapath(
        self,
        role: str,
        fast_path: bool,
        txqueuelen: int,
        ipv6_mtu: int,
        udp: bool = False,
        datapath: str = "userspace",
    ) -> subprocess.Popen[str]:
        command = (
            [
                "ip",
                "netns",
                "exec",
                self.ns(role),
                sys.executable,
                __file__,
                "--serve",
                role,
                "--txqueuelen",
                str(txqueuelen),
                "--ipv6-mtu",
                str(ipv6_mtu),
                "--datapath",
                datapath,
            ]
            + ([] if fast_path else ["--no-fast-path"])
            + (["--udp"] if udp else [])
            + (["--gre"] if self.gre else [])
        )
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.processes.append(process)
        self.datapaths.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"{role} datapath did not start: {line!r}")
        return process

    def stop_datapath(self, process: subprocess.Popen[str]) -> dict[str, object]:
        """Close stdin: the child closes its datapath and prints its counters."""
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        output = process.stdout.read()
        process.wait(timeout=20)
        self.processes.remove(process)
        self.datapaths.remove(process)
        return json.loads(output) if output.strip() else {}

    def iperf(self, destination: str, seconds: float, bitrate: str) -> tuple[float, float, int]:
        """One iperf3 TCP run from the CN to ``destination`` in the MN: (bits per second received,
        CPU seconds the datapath processes used per GB received, TCP retransmissions)."""
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("mn"), "iperf3", "-s", "-1", "-B", destination],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(server)  # type: ignore[arg-type]
        try:
            for _attempt in range(20):
                time.sleep(0.2)
                cpu_before = self.datapath_cpu()
                result = subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        self.ns("cn"),
                        "iperf3",
                        "-c",
                        destination,
                        "-t",
                        str(seconds),
                        "-b",
                        bitrate,
                        "-J",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=seconds + 30,
                )
                cpu = self.datapath_cpu() - cpu_before
                report = json.loads(result.stdout or "{}")
                if "error" not in report and "end" in report:
                    received = report["end"]["sum_received"]
                    retransmits = int(report["end"]["sum_sent"].get("retransmits", 0))
                    return float(received["bits_per_second"]), cpu / (received["bytes"] / 1e9), retransmits
            raise RuntimeError(f"iperf3 to {destination} failed: {report.get('error')}")
        finally:
            if server.poll() is None:
                server.terminate()
            server.wait(timeout=10)
            self.processes.remove(server)  # type: ignore[arg-type]

    def datapath_cpu(self) -> float:
        """User + system CPU seconds of every thread of the datapath processes so far."""
        return sum(
            stat_cpu_seconds(stat)
            for process in self.datapaths
            for stat in Path(f"/proc/{process.pid}/task").glob("*/stat")
        )

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], check=False)


def measure(bench: Bench, destination: str, args: argparse.Namespace) -> tuple[float, float]:
    """Medians over ``args.repeats`` runs: Gbit/s, and datapath CPU seconds per GB."""
    samples = [bench.iperf(destination, args.seconds, args.bitrate) for _ in range(args.repeats)]
    rates = "  ".join(f"{rate / 1e9:.2f}" for rate, _cpu, _retransmits in samples)
    retransmits = " ".join(str(count) for _rate, _cpu, count in samples)
    print(f"    {destination:>18}: {rates} Gbit/s  (retransmits {retransmits})", flush=True)
    return (
        statistics.median(rate / 1e9 for rate, _cpu, _retransmits in samples),
        statistics.median(cpu for _rate, cpu, _retransmits in samples),
    )


def measure_cases(
    bench: Bench, cases: list[tuple[str, int, str, str]], args: argparse.Namespace
) -> list[tuple[str, float, float, float]]:
    rows = []
    for label, family, native, tunnel in cases:
        if family not in args.families:
            continue
        print(f"  {label}", flush=True)
        native_rate, _ = measure(bench, native, args)
        tunnel_rate, cpu_per_gb = measure(bench, tunnel, args)
        rows.append((label, native_rate, tunnel_rate, cpu_per_gb))
    return rows


def benchmark(args: argparse.Namespace) -> int:
    bench = Bench(gre=args.gre)
    try:
        bench.build()
        fast = "off" if args.no_fast_path else "on"
        print(
            f"kernel {os.uname().release}, {os.cpu_count()} CPUs, "
            f"{args.repeats}x{args.seconds:g} s per case, fast path {fast}, txqueuelen {args.txqueuelen}"
        )
        rows: list[tuple[str, float, float, float]] = []
        counters: dict[str, dict[str, object]] = {}
        for backend in args.datapath:
            print(f"datapath {backend}", flush=True)
            common = (not args.no_fast_path, args.txqueuelen, args.ipv6_mtu)
            ha = bench.start_datapath("ha", *common, datapath=backend)
            mn = bench.start_datapath("mn", *common, datapath=backend)
            name = f"{backend} GRE" if args.gre else backend  # GRE: the same cases, protocol 47 outside
            rows += [(f"{name} {label}", *rest) for label, *rest in measure_cases(bench, CASES, args)]
            counters |= {f"ha {backend}": bench.stop_datapath(ha), f"mn {backend}": bench.stop_datapath(mn)}
            if args.udp and backend == "userspace":
                ha = bench.start_datapath("ha", *common, udp=True)
                mn = bench.start_datapath("mn", *common, udp=True)
                rows += [
                    (f"{backend} {label}", *rest) for label, *rest in measure_cases(bench, UDP_CASES, args)
                ]
                counters |= {"ha (udp)": bench.stop_datapath(ha), "mn (udp)": bench.stop_datapath(mn)}
        print(f"\n{'case':42} {'native Gbit/s':>13} {'tunnel Gbit/s':>13} {'ratio':>6} {'CPU s/GB':>8}")
        for label, native_rate, tunnel_rate, cpu_per_gb in rows:
            print(
                f"{label:42} {native_rate:13.2f} {tunnel_rate:13.2f} {tunnel_rate / native_rate:6.3f} "
                f"{cpu_per_gb:8.2f}"
            )
        print(
            "CPU s/GB: user+system CPU time of both datapath processes per GB received (less noisy than"
            " Gbit/s on a shared machine; the ebpf datapath works in the kernel's softirq time, not counted)"
        )
        print("datapath drops:", {role: value.get("drops") for role, value in counters.items()})
        return 0
    finally:
        bench.cleanup()


def serve(
    role: str, fast_path: bool, txqueuelen: int, ipv6_mtu: int, udp: bool = False, backend: str = "userspace"
) -> int:
    """Child process: run one datapath with the benchmark's bindings until stdin closes. ``udp``: the
    tunnel runs in UDP (RFC 3519) between the HA's port 434 and the MN's :data:`MN_UDP_PORT`; a thread
    reads the socket and hands each Tunnel Data message to the datapath, as an agent's event loop does."""
    import socket

    from agents.datapath.base import Encapsulation, TunnelTarget
    from agents.datapath.userspace import TunnelOptions, UserspaceHomeAgent, UserspaceMobileNode

    options = TunnelOptions(fast_path=fast_path, txqueuelen=txqueuelen, ipv6_mtu=ipv6_mtu)
    home, agent, care_of = IPv4Address(HOME_ADDRESS), IPv4Address(HA_ADDRESS), IPv4Address(CARE_OF)
    prefixes = {
        IPv6Network(PREFIX_HOA): TunnelTarget.HOME_ADDRESS,
        IPv6Network(PREFIX_COA): TunnelTarget.CARE_OF,
    }
    sock = None
    if udp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("0.0.0.0", 434 if role == "ha" else MN_UDP_PORT))
    datapath: UserspaceHomeAgent | UserspaceMobileNode
    if backend == "ebpf":
        from agents.datapath.ebpf import EbpfHomeAgent, EbpfMobileNode

        datapath = EbpfHomeAgent(agent, options=options) if role == "ha" else EbpfMobileNode(options=options)
    elif role == "ha":
        datapath = UserspaceHomeAgent(agent, options=options, udp_socket=sock)
    else:
        datapath = UserspaceMobileNode(options=options, udp_socket=sock)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        port = (MN_UDP_PORT if role == "ha" else 434) if udp else None  # the far end's UDP port
        encapsulation = Encapsulation.GRE if GRE_FLAG in sys.argv else Encapsulation.IP_IN_IP
        datapath.add_ipv4_tunnel(home, care_of, encapsulation, home_agent=agent, udp_port=port)
        if sock is not None:
            threading.Thread(target=_read_tunnel_data, args=(sock, datapath), daemon=True).start()
        for prefix, target in prefixes.items():
            datapath.add_ipv6_prefix(prefix, home, target)
            if isinstance(datapath, UserspaceMobileNode):
                datapath.add_ipv6_address(IPv6Interface(f"{prefix.network_address + 1}/64"), target)
        print("READY", flush=True)

        def wait_for_stdin_eof() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
        stop.wait()
        print(json.dumps(datapath.counters().to_dict()), flush=True)
    finally:
        datapath.close()
    return 0


def _read_tunnel_data(sock: object, datapath: object) -> None:
    """What an agent's event loop does with its UDP 434 socket, in a thread: each datagram to the datapath."""
    import socket
    from ipaddress import IPv4Address as Address

    assert isinstance(sock, socket.socket)
    while True:
        try:
            data, (host, port) = sock.recvfrom(65535)
        except OSError:
            return
        datapath.receive_udp_tunnel(data, Address(host), port)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-fast-path", action="store_true", help="encapsulate every packet with tunnel.py")
    parser.add_argument(
        "--bitrate", default="0", help="iperf3 -b (0 = unlimited; e.g. 600M for a CPU-cost run)"
    )
    parser.add_argument("--ipv6-mtu", type=int, default=1280, help="static IPv6 tunnel MTU, 1280-1480")
    parser.add_argument("--txqueuelen", type=int, default=1000, help="TUN transmit queue length")
    parser.add_argument(
        "--families",
        type=int,
        nargs="+",
        default=[4, 6],
        choices=[4, 6],
        help="which inner families to measure",
    )
    parser.add_argument("--udp", action="store_true", help="also the RFC 3519 UDP tunnel (IPv4 and IPv6)")
    parser.add_argument(
        "--datapath",
        nargs="+",
        default=["userspace"],
        choices=["userspace", "ebpf"],
        help="backends to measure, each in the same run as the native baseline (default userspace)",
    )
    parser.add_argument(GRE_FLAG, action="store_true", help="GRE (RFC 2784) instead of IP-in-IP and proto 41")
    parser.add_argument("--serve", choices=["ha", "mn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        backend = args.datapath[0]
        return serve(args.serve, not args.no_fast_path, args.txqueuelen, args.ipv6_mtu, args.udp, backend)
    if os.geteuid() != 0:
        print("needs root (network namespaces, TUN, raw sockets)", file=sys.stderr)
        return 2
    try:
        return benchmark(args)
    except (RuntimeError, subprocess.SubprocessError, OSError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
