"""The DHCPv6-PD scenario end to end (issue 11) with a real Kea and short leases: every phase's verdict holds,
tshark shows the DHCPv6 messages inside the tunnels, verdicts are computed from the run folder (a doctored
lease file or trace fails exactly that verdict), and teardown leaves no Kea process, lease file or socket
outside the run folder. A second run with the pool exhausted leaves the node IPv4-only, and says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reports.dhcpv6_pd import render_dhcpv6_pd
from tests.integration.test_teardown import private_tmp, run_and_check_teardown, scenario_env
from tests.support.scenario import Finished, run_scenario, tshark_fields

__all__ = ["private_tmp"]  # the fixture, used below

pytestmark = [pytest.mark.mininet, pytest.mark.root, pytest.mark.slow]

ARGS = ["--lease", "6", "--dwell", "1", "--rate", "200"]
KEA_STATE = (Path("/run/kea"), Path("/var/lib/kea"), Path("/var/log/kea"))


def kea_files() -> set[Path]:
    return {item for folder in KEA_STATE if folder.exists() for item in folder.iterdir()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Finished, Path]:
    run = tmp_path_factory.mktemp("pd") / "run"
    before = kea_files()
    finished = run_and_check_teardown(ARGS, run, tmp_path_factory.mktemp("s"), "pd", scenario="dhcpv6_pd")
    assert kea_files() == before
    return finished, run


def verdicts(run: Path) -> dict[str, bool]:
    metrics = json.loads((run / "metrics.json").read_text())
    return {item["name"]: item["passed"] for item in metrics["verdicts"]}


def test_every_phase_passes(finished_run: tuple[Finished, Path]) -> None:
    finished, run = finished_run
    assert finished.returncode == 0, finished.explain()
    assert "dhcpv6_pd: PASSED" in finished.stdout
    judged = verdicts(run)
    assert all(judged.values()), [name for name, ok in judged.items() if not ok]
    for phase in ("home", "visit-fa1", "link-local", "dhcpv6", "prefix", "traffic", "renew", "move-fa2"):
        assert any(name.startswith(f"{phase}:") for name in judged), phase
    milestones = json.loads((run / "metrics.json").read_text())["milestones_s"]
    assert 0 < milestones["link-local"] < milestones["delegated"] < milestones["first IPv6 from CN"]
    assert (run / "plots" / "phase_timeline.png").stat().st_size > 10_000


def test_kea_left_its_files_in_the_run_folder_only(finished_run: tuple[Finished, Path]) -> None:
    _finished, run = finished_run
    kea = run / "kea"
    assert (kea / "kea-leases6.csv").is_file() and (kea / "kea-dhcp6.json").is_file()
    assert not (kea / "kea6.sock").exists()
    assert "DHCP6_SHUTDOWN" in (kea / "kea-dhcp6.log").read_text()


def test_tshark_shows_dhcpv6_inside_the_tunnel(finished_run: tuple[Finished, Path], tmp_path: Path) -> None:
    _finished, run = finished_run
    fields = ["ip.proto", "ipv6.src", "dhcpv6.msgtype"]
    packets = tshark_fields(run / "pcaps" / "ha-ha-eth0.pcap", fields, tmp_path, "dhcpv6")
    types = {kind for packet in packets for kind in packet["dhcpv6.msgtype"]}
    assert {"1", "7", "5", "8"} <= types, types  # Solicit, Reply, Renew, Release
    via_fa = [p for p in packets if p["ip.proto"][:2] == ["4", "41"]]  # IPv4-in-IPv4, then IPv6-in-IPv4
    assert via_fa and all(p["ipv6.src"][0].startswith("fe80::") for p in via_fa)


def doctored(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


def test_a_lease_file_without_the_lease_fails_the_kea_verdict(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    copy = doctored(finished_run[1], tmp_path)
    leases = copy / "kea" / "kea-leases6.csv"
    leases.write_text(leases.read_text().splitlines()[0] + "\n")
    result = render_dhcpv6_pd(copy)
    failed = [v.name for v in result.verdicts if not v.passed]
    assert failed == [
        "dhcpv6: Kea's lease file holds the prefix for mn1's DUID",
        "deregistration: Release answered and Kea's lease ended",
    ]


def test_a_missing_capture_fails_the_capture_verdict(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    """The run captured (meta.json says so): without the HA's pcap nothing can be seen inside the tunnel."""
    copy = doctored(finished_run[1], tmp_path)
    (copy / "pcaps" / "ha-ha-eth0.pcap").unlink()
    failed = [v.name for v in render_dhcpv6_pd(copy).verdicts if not v.passed]
    assert failed == ["pcap: DHCPv6 seen IPv6-in-IPv4-in-IPv4 on the HA's home link"]
    assert "## The lease as Kea recorded it" in (copy / "report.md").read_text()


def test_a_trace_without_the_renewal_fails_the_renew_verdict(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    copy = doctored(finished_run[1], tmp_path)
    trace = copy / "traces" / "mn1.jsonl"
    lines = trace.read_text().splitlines()
    kept = [line for line in lines if json.loads(line).get("how") != "renew"]
    assert len(kept) < len(lines)
    trace.write_text("\n".join(kept) + "\n")
    failed = [v.name for v in render_dhcpv6_pd(copy).verdicts if not v.passed]
    assert failed[0].startswith("renew:"), failed


def test_an_exhausted_pool_leaves_the_node_ipv4_only(tmp_path: Path, private_tmp: Path) -> None:
    run = tmp_path / "run"
    finished = run_and_check_teardown(
        ["--pool-size", "0", *ARGS], run, private_tmp, "pd0", scenario="dhcpv6_pd"
    )
    assert finished.returncode == 0, finished.explain()
    assert "stays IPv4-only" in finished.stdout
    assert all(verdicts(run).values())
    assert "staying IPv4-only" in (run / "logs" / "mn1.log").read_text()


def test_kea_failing_to_start_is_one_line_and_exit_2(tmp_path: Path, private_tmp: Path) -> None:
    env = scenario_env("pdfail", private_tmp) | {"DSMIP_KEA_DHCP6": "/bin/false"}
    finished = run_scenario(["--out", str(tmp_path / "run")], timeout=120, env=env, scenario="dhcpv6_pd")
    assert finished.returncode == 2, finished.explain()
    errors = [line for line in finished.stderr.splitlines() if line.startswith("dhcpv6_pd:")]
    assert errors == ["dhcpv6_pd: kea-dhcp6 exited with 1: no error logged"], finished.stderr
    assert "Traceback" not in finished.stderr
