"""Teardown leaves nothing behind (design.md §9), after a passing run, a failing run, an exception inside the
harness and Ctrl-C in the middle of a run: the root namespace is as it was before, nothing of the run is
left and nothing that was there is gone.

Compared: link names (``ip -o link`` and /sys/class/net), named network namespaces, iptables, ip6tables and
nftables rules (counters aside), our processes (this test process's descendants, and any process whose
environment carries this test's token or whose command line names the run folder) and the scenario's own
TMPDIR (its control sockets). The machine may be shared: links named with another process's topology tag
(``ds<tag>home``, ...) and named namespaces of test tiers and tools (``dsm-...``: a scenario's Mininet nodes
never have named ones) belong to someone else and are left out; when the host tracks bridged frames
(br_netfilter), only translated (NAT) conntrack entries are compared, since anyone's run adds plain ones.
Processes are only ever stopped through the handles this test holds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from scenarios.harness import testbed as harness
from scenarios.harness.runfolder import RunFolder
from tests.support.kernel import ebpf_expected
from tests.support.scenario import Finished, ScenarioProcess, run_scenario
from topologies.dualstack import DualStackTopo, process_tag

pytestmark = [pytest.mark.mininet, pytest.mark.root, pytest.mark.slow]

TOKEN_NAME = "DSMIP_TEARDOWN_TEST"
OTHER_RUNS_LINK = re.compile(r"ds[a-z0-9]{3}(home|priv|col|a[0-9]+)(-[a-z0-9]+)?")
"""Root-namespace names of a tagged topology (topologies/dualstack.py); another tag's are another run's."""
COUNTERS = re.compile(r"\[\d+:\d+\]|packets \d+ bytes \d+")
SETTLE_SECONDS = 5.0
"""The kernel frees a namespace's veth ends asynchronously after its last process exits."""


@dataclass(frozen=True)
class Ours:
    """How to recognise what belongs to the run under test."""

    run_folder: Path
    token: str | None = None
    tmpdir: Path | None = None


@dataclass(frozen=True)
class RootState:
    links: frozenset[str]
    sys_class_net: frozenset[str]
    netns: frozenset[str]
    processes: frozenset[str]
    iptables: tuple[str, ...]
    ip6tables: tuple[str, ...]
    nftables: tuple[str, ...]
    conntrack: frozenset[str]
    tmpdir: frozenset[str]
    clsact: frozenset[str]
    """Root-namespace interfaces with a clsact qdisc (the ebpf datapath's tc hook; issue 9)."""
    bpf_pins: frozenset[str]
    """Everything pinned under /sys/fs/bpf (the ebpf datapath pins nothing)."""


def command_lines(argv: list[str]) -> list[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"
    return result.stdout.splitlines()


def rules(argv: list[str]) -> tuple[str, ...]:
    """A ruleset dump without comments (they carry the time) and with counters zeroed."""
    return tuple(COUNTERS.sub("0", line) for line in command_lines(argv) if not line.startswith("#"))


TESTBED_ADDRESSES = re.compile(
    r"(src|dst)=(192\.0\.2|198\.51\.100|203\.0\.113|192\.168\.[12]|10\.0)\.|(src|dst)=2001:db8:"
)


def root_conntrack_flows() -> frozenset[str]:
    """Root-namespace conntrack entries of the testbed's addresses (the NAT's own state lives in its
    namespace and goes with it; the host must not keep any of ours), timers and counters left out.

    Where the host tracks bridged frames, every run's traffic (side-by-side runs' too, with the same
    addresses) makes untranslated entries there; a run removes them at teardown
    (topologies/host_flows.py, tested on its own in tests/netns/test_host_flows.py), and only translated
    entries (NAT state, never ours in the root namespace) are compared here."""
    if shutil.which("conntrack") is None:
        raise AssertionError("conntrack is not installed (tools/provision.sh installs it)")
    result = subprocess.run(["conntrack", "-L"], capture_output=True, text=True, timeout=30, check=False)
    entries = [line for line in result.stdout.splitlines() if TESTBED_ADDRESSES.search(line)]
    if bridged_frames_tracked():
        entries = [line for line in entries if translated(line)]
    return frozenset(" ".join(w for w in line.split()[3:] if not w.isdigit()) for line in entries)


def bridged_frames_tracked() -> bool:
    """``net.bridge.bridge-nf-call-iptables = 1``: frames crossing the root-namespace bridges are tracked."""
    path = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    return path.is_file() and path.read_text().strip() == "1"


FIELD = re.compile(r"\b(src|dst|sport|dport)=(\S+)")


def translated(line: str) -> bool:
    """The reply tuple is not the original one mirrored (any protocol): NAT state."""
    pairs = FIELD.findall(line)
    second = next((i for i, (key, _) in enumerate(pairs) if key == "src" and i > 0), None)
    if second is None:
        return True  # not a two-tuple entry: compared as it is
    original, reply = dict(pairs[:second]), dict(pairs[second:])
    mirror = {"src": "dst", "dst": "src", "sport": "dport", "dport": "sport"}
    return reply != {mirror[key]: value for key, value in original.items()}


def link_names() -> frozenset[str]:
    names = (re.match(r"\d+: ([^:@]+)", line) for line in command_lines(["ip", "-o", "link", "show"]))
    return frozenset(match.group(1) for match in names if match)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process is gone, or a kernel thread
        return b""


def our_processes(ours: Ours) -> frozenset[str]:
    """``pid state command`` of every process that is ours (see the module docstring), but this one."""
    me = os.getpid()
    parents: dict[int, int] = {}
    described: dict[int, str] = {}
    marked: set[int] = set()
    token = f"{TOKEN_NAME}={ours.token}".encode() if ours.token else None
    folder = str(ours.run_folder).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid, stat = int(entry.name), read(entry / "stat").decode(errors="replace")
        if ")" not in stat:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        parents[pid] = int(ppid)
        command = read(entry / "cmdline").replace(b"\0", b" ").strip()
        described[pid] = f"{pid} {state} {command.decode(errors='replace')[:160]}"
        if folder in command or (token is not None and token in read(entry / "environ").split(b"\0")):
            marked.add(pid)

    def descends_from_me(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
            if pid == me:
                return True
        return False

    return frozenset(text for pid, text in described.items() if pid in marked or descends_from_me(pid))


def snapshot(ours: Ours) -> RootState:
    netns = frozenset(line.split()[0] for line in command_lines(["ip", "netns", "list"]) if line.strip())
    return RootState(
        links=link_names(),
        sys_class_net=frozenset(os.listdir("/sys/class/net")),
        netns=netns,
        iptables=rules(["iptables-save"]),
        ip6tables=rules(["ip6tables-save"]),
        nftables=rules(["nft", "list", "ruleset"]),
        conntrack=root_conntrack_flows(),
        tmpdir=frozenset(os.listdir(ours.tmpdir)) if ours.tmpdir is not None else frozenset(),
        clsact=frozenset(
            line.split(" dev ")[1].split()[0]
            for line in command_lines(["tc", "qdisc", "show"])
            if line.startswith("qdisc clsact") and " dev " in line
        ),
        bpf_pins=frozenset(
            str(path.relative_to("/sys/fs/bpf")) for path in Path("/sys/fs/bpf").rglob("*")
        )
        if Path("/sys/fs/bpf").is_dir()
        else frozenset(),
        processes=our_processes(ours),  # last: the commands above are no longer running
    )


def someone_elses(field: str, name: str, tag: str) -> bool:
    """A link of another tagged topology (another run), or a named netns of the netns tier or a benchmark
    (``dsm-t<pid>-*``, ``dsm-b<pid>-*``: a scenario's Mininet nodes never have named namespaces)."""
    if field in ("links", "sys_class_net", "clsact"):
        return OTHER_RUNS_LINK.fullmatch(name) is not None and not name.startswith(f"ds{tag}")
    return field == "netns" and name.startswith("dsm-")  # any test tier's or tool's (e.g. dsm-u<pid>)


def differences(before: RootState, after: RootState, tag: str) -> list[str]:
    """What changed, one line per field, leaving out what belongs to other users of the machine."""
    found = []
    for field in fields(RootState):
        old, new = getattr(before, field.name), getattr(after, field.name)
        if isinstance(old, frozenset):
            left = sorted(name for name in new - old if not someone_elses(field.name, name, tag))
            gone = sorted(name for name in old - new if not someone_elses(field.name, name, tag))
            if field.name == "conntrack":
                gone = []  # entries expire on their own, and a run's teardown clears the plan's ranges
            if left or gone:
                found.append(f"{field.name}: left behind {left}, gone {gone}")
        elif old != new:
            added = [line for line in new if line not in old]
            removed = [line for line in old if line not in new]
            found.append(f"{field.name}: added {added}, removed {removed}")
    return found


def assert_nothing_left(before: RootState, ours: Ours, tag: str) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        problems = differences(before, snapshot(ours), tag)
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    assert problems == [], "\n".join(problems)
    assert before.tmpdir == frozenset(), before.tmpdir


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """The scenario's TMPDIR (its control-socket folder goes there); short, since socket paths are."""
    path = Path(tempfile.mkdtemp(prefix="dsmt"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def scenario_env(token: str, tmpdir: Path) -> dict[str, str]:
    return os.environ | {TOKEN_NAME: token, "TMPDIR": str(tmpdir)}


def run_and_check_teardown(
    args: list[str], run_folder: Path, tmpdir: Path, token: str, scenario: str = "handover"
) -> Finished:
    ours = Ours(run_folder, token, tmpdir)
    before = snapshot(ours)
    assert before.processes == frozenset(), before.processes
    env = scenario_env(token, tmpdir)
    finished = run_scenario([*args, "--out", str(run_folder)], timeout=180, env=env, scenario=scenario)
    assert not finished.timed_out, finished.explain()
    assert_nothing_left(before, ours, process_tag(finished.pid))
    return finished


def test_a_passing_run_leaves_nothing(tmp_path: Path, private_tmp: Path) -> None:
    finished = run_and_check_teardown(
        ["--dwell", "0.5", "--rate", "100"], tmp_path / "run", private_tmp, "passing"
    )
    assert finished.returncode == 0, finished.explain()
    assert "PASSED" in finished.stdout


def test_an_ebpf_run_leaves_nothing(tmp_path: Path, private_tmp: Path) -> None:
    """Issue 9: the ebpf datapath's clsact qdiscs, tc filters, programs and maps go with the run."""
    args = ["--datapath", "ebpf", "--dwell", "0.5", "--rate", "100"]
    finished = run_and_check_teardown(args, tmp_path / "run", private_tmp, "ebpf")
    if not ebpf_expected():  # a kernel the ebpf datapath cannot run on: refused, and still nothing left
        refused = finished.returncode == 2 and "Linux 6.3" in finished.stdout + finished.stderr
        assert refused, finished.explain()
        return
    assert finished.returncode == 0, finished.explain()
    assert "PASSED" in finished.stdout


def test_a_failing_run_names_what_failed_and_leaves_nothing(tmp_path: Path, private_tmp: Path) -> None:
    """Advertisements every 30 s: the MN notices no move within the settle timeout (it never hears an agent
    after its start-up solicitations), so the moves fail for real."""
    args = ["--detection", "advert", "--adv-interval", "30", "--dwell", "0.5", "--settle-timeout", "1"]
    finished = run_and_check_teardown([*args, "--rate", "100"], tmp_path / "run", private_tmp, "failing")
    assert finished.returncode == 1, finished.explain()
    assert "handover: FAILED" in finished.stdout, finished.explain()
    for number, move in ((1, "home → fa1"), (2, "fa1 → fa2"), (3, "fa2 → home")):
        assert f"✘ handover {number} {move} settles: not within 1 s" in finished.stdout, finished.explain()
        assert f"warning: handover {number} {move} settles: not within 1 s" in finished.stderr
    failed_line = next(line for line in finished.stdout.splitlines() if line.startswith("FAIL:"))
    assert "handover 1 home → fa1 settles" in failed_line
    assert "Traceback" not in finished.stderr, finished.explain()


def test_a_node_shell_that_never_starts_is_an_error_not_a_hang(tmp_path: Path, private_tmp: Path) -> None:
    """Mininet waits for each node's shell prompt; with an ``mnexec`` that cannot start shells (seen in a
    chroot: it cannot make "/" a private mount) it would wait forever. The build has a deadline instead."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mnexec").write_text("#!/bin/sh\necho 'mnexec: cannot start' >&2\nexit 1\n")
    (fake / "mnexec").chmod(0o755)
    env = scenario_env("noshell", private_tmp) | {"PATH": f"{fake}:{os.environ['PATH']}"}
    ours = Ours(tmp_path / "run", "noshell", private_tmp)
    before = snapshot(ours)
    args = ["--start-timeout", "2", "--out", str(tmp_path / "run")]
    finished = run_scenario(args, timeout=60, env=env)
    assert not finished.timed_out and finished.returncode == 1, finished.explain()
    assert "building the network took longer than 2 s" in finished.stderr, finished.explain()
    assert "Traceback" not in finished.stderr, finished.explain()
    assert_nothing_left(before, ours, process_tag(finished.pid))


def test_an_exception_inside_the_testbed_propagates_after_teardown(tmp_path: Path) -> None:
    topo = DualStackTopo(foreign_agents=2, mobile_nodes=1, nat=False, tag=process_tag())
    run_folder = tmp_path / "run"
    ours = Ours(run_folder)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    before = snapshot(ours)
    run = RunFolder.create("teardown", run_folder)
    with pytest.raises(RuntimeError, match="inside the testbed"), harness.Testbed(topo, run) as bed:
        assert {agent for agent, _ in topo.agentNodes()} == set(bed.agents)
        assert topo.rootInterfaces() <= set(os.listdir("/sys/class/net"))
        assert snapshot(ours).processes  # agents and tcpdump run as our children
        raise RuntimeError("an error inside the testbed")
    assert bed.exit_codes and all(code == 0 for code in bed.exit_codes.values()), bed.exit_codes
    assert not run.sockets.exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert_nothing_left(before, ours, topo.tag)


def test_ctrl_c_in_the_middle_of_a_run_leaves_nothing(tmp_path: Path, private_tmp: Path) -> None:
    run_folder = tmp_path / "run"
    ours = Ours(run_folder, "sigint", private_tmp)
    before = snapshot(ours)
    args = ["--dwell", "2", "--rate", "100", "--out", str(run_folder)]
    process = ScenarioProcess(args, env=scenario_env("sigint", private_tmp))
    if process.wait_for_output("handover 1", timeout=60):
        process.popen.send_signal(signal.SIGINT)  # our own child, by its handle
    finished = process.finish(timeout=60)
    assert "handover 1" in finished.stdout and not finished.timed_out, finished.explain()
    assert finished.returncode == 130, finished.explain()
    assert "handover: interrupted; everything the run created was removed" in finished.stdout
    assert "handover 2" not in finished.stdout and "PASSED" not in finished.stdout
    assert "Traceback" not in finished.stderr, finished.explain()
    assert (run_folder / "meta.json").exists()  # the partial run stays for a look
    assert_nothing_left(before, ours, process_tag(finished.pid))


def test_a_python_dependency_that_does_not_import_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Missing (or broken) matplotlib: said before anything is built, not as a traceback after the run."""
    fake = tmp_path / "modules" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("broken on purpose")\n')
    env = os.environ | {"PYTHONPATH": str(tmp_path / "modules")}
    finished = run_scenario(["--out", str(tmp_path / "run")], timeout=60, env=env)
    assert finished.returncode == 2, finished.explain()
    assert "matplotlib not importable" in finished.stderr and "Traceback" not in finished.stderr
    assert not (tmp_path / "run").exists()
