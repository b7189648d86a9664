"""The NAT traversal scenario end to end (issue 10): home → behind a real MASQUERADE (UDP tunnelling) → the
NAT forgets the mapping twice → FA1 → home, with short settings; every verdict holds, tshark sees MIP Tunnel
Data with IPv4 and IPv6 inside on the NAT's public side and the private address only on its private side,
and teardown leaves nothing (links, namespaces, iptables/nft rules, processes)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reports.nat_traversal import render_nat_traversal
from tests.integration.test_teardown import run_and_check_teardown
from tests.support.scenario import Finished, tshark_fields

pytestmark = [pytest.mark.mininet, pytest.mark.root, pytest.mark.slow]

ARGS = ["--keepalive", "1", "--dwell", "1", "--rate", "200", "--losses", "2"]
PRIVATE, PUBLIC, HOA = "192.168.1.10", "203.0.113.66", "192.0.2.10"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Finished, Path]:
    run = tmp_path_factory.mktemp("nat") / "run"
    tmpdir = Path(tempfile.mkdtemp(prefix="dsmn"))
    finished = run_and_check_teardown(ARGS, run, tmpdir, "nat", scenario="nat_traversal")
    tmpdir.rmdir()
    return finished, run


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("tshark-home")


def test_every_expectation_holds(finished_run: tuple[Finished, Path]) -> None:
    finished, run = finished_run
    assert finished.returncode == 0, finished.explain()
    metrics = json.loads((run / "metrics.json").read_text())
    failed = [v["name"] for v in metrics["verdicts"] if not v["passed"]]
    assert failed == []
    names = {v["name"].split(":")[0] for v in metrics["verdicts"]}
    assert {"nat", "fa1"} <= names
    nat = metrics["nat_traversal"]
    assert len(nat["recovery_s"]["v4-down"]) == 2  # both losses measured
    assert nat["keepalives"]["quiet_answered"] >= 2 and nat["keepalives"]["while_traffic_flows"] == 0
    assert (run / "plots" / "keepalives.png").stat().st_size > 10_000
    assert "## NAT traversal (RFC 3519)" in (run / "report.md").read_text()


def test_tshark_sees_tunnel_data_with_both_families_on_the_public_side(
    finished_run: tuple[Finished, Path], home: Path
) -> None:
    """RFC 3519 §3.3 / RFC 5454 §3.9 as an independent decoder reads them: UDP 434, MIP type 4, Next Header
    4 with IPv4 inside and 41 with IPv6 inside, between the NAT's public address and the HA."""
    _, run = finished_run
    fields = ["ip.src", "ip.dst", "mip.nattt.nexthdr", "ipv6.src"]
    packets = tshark_fields(
        run / "pcaps" / "nat1-nat1-pub.pcap", fields, home, "udp.port == 434 && mip.type == 4"
    )
    by_header = {header: [p for p in packets if p["mip.nattt.nexthdr"] == [header]] for header in ("4", "41")}
    assert by_header["4"] and by_header["41"]
    inner4 = by_header["4"][0]
    assert PUBLIC in inner4["ip.src"] + inner4["ip.dst"] and HOA in inner4["ip.src"] + inner4["ip.dst"]
    assert all(p["ipv6.src"] for p in by_header["41"])  # the IPv6 packet inside is decoded


def test_the_private_address_stays_on_the_private_side(
    finished_run: tuple[Finished, Path], home: Path
) -> None:
    _, run = finished_run
    public = tshark_fields(run / "pcaps" / "nat1-nat1-pub.pcap", ["ip.addr"], home, f"ip.addr == {PRIVATE}")
    private = tshark_fields(run / "pcaps" / "nat1-nat1-priv.pcap", ["ip.addr"], home, f"ip.addr == {PRIVATE}")
    assert public == [] and len(private) > 100


def doctored(run: Path, work: Path, change: Callable[[Path], None]) -> dict[str, bool]:
    """Copy the run folder, apply ``change``, judge it again: every verdict by name."""
    copy = work / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.png"))
    change(copy)
    render_nat_traversal(copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    return {v["name"]: v["passed"] for v in metrics["verdicts"]}


def without_first_after(node: str, event: str, step: str) -> Callable[[Path], None]:
    """Delete from traces/``node``.jsonl the first ``event`` record at or after the scenario's ``step``."""

    def change(folder: Path) -> None:
        steps = [json.loads(line) for line in (folder / "traces" / "scenario.jsonl").read_text().splitlines()]
        since = next(e["t"] for e in steps if e.get("what") == step)
        path = folder / "traces" / f"{node}.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        records = [json.loads(line) for line in lines]
        index = next(i for i, e in enumerate(records) if e.get("event") == event and e["t"] >= since)
        path.write_text("".join(lines[:index] + lines[index + 1 :]))

    return change


KEEPALIVES = "nat: keepalives only when the tunnel is quiet, every K s, each answered (RFC 3519 §4.9, §4.10)"


def test_one_unanswered_keepalive_in_the_quiet_period_fails_the_keepalive_verdict(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    """RFC 3519 §4.9: each keepalive sent while the tunnel is quiet is answered, paired by ICMP sequence
    number: the MN's trace without the answer to one of them fails that verdict."""
    _, run = finished_run
    assert doctored(run, tmp_path / "as-is", lambda folder: None)[KEEPALIVES]
    judged = doctored(
        run, tmp_path / "doctored", without_first_after("mn1", "keepalive_answered", "quiet_started")
    )
    assert not judged[KEEPALIVES]
