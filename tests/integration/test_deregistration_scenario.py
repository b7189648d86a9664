"""The deregistration scenario end to end (issue 12): every phase's verdict holds on a real run, each verdict
is computed from what was observed (a doctored observation or trace makes exactly that verdict fail), and
teardown leaves nothing behind.

One short run (HA maximum lifetime 3 s, 1 s dwell) serves every test in this module."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.deregistration import render_deregistration
from tests.integration.test_teardown import run_and_check_teardown
from tests.support.scenario import Finished

pytestmark = [pytest.mark.mininet, pytest.mark.root, pytest.mark.slow]

ARGS = ["--lifetime", "3", "--dwell", "1", "--rate", "200"]
HOA = "192.0.2.10"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Finished, Path]:
    base = tmp_path_factory.mktemp("dereg")
    tmpdir = Path(tmp_path_factory.mktemp("s"))
    run = base / "run"
    finished = run_and_check_teardown(ARGS, run, tmpdir, "dereg", scenario="deregistration")
    return finished, run


def verdicts(run: Path) -> dict[str, bool]:
    metrics = json.loads((run / "metrics.json").read_text())
    return {item["name"]: item["passed"] for item in metrics["verdicts"]}


def test_every_phase_passes_and_the_run_folder_is_complete(finished_run: tuple[Finished, Path]) -> None:
    finished, run = finished_run
    assert finished.returncode == 0, finished.explain()
    assert "deregistration: PASSED" in finished.stdout
    judged = verdicts(run)
    assert all(judged.values()), [name for name, ok in judged.items() if not ok]
    for phase in (
        "omission",
        "visited-fa",
        "visited-colocated",
        "return-home",
        "lifetime",
        "forged",
        "silent-death",
    ):
        assert any(name.startswith(f"{phase}:") for name in judged), phase
    assert (run / "plots" / "state_timeline.png").stat().st_size > 10_000
    report = (run / "report.md").read_text()
    assert "black-hole" in report.lower() or "silent death" in report
    figures = json.loads((run / "metrics.json").read_text())["figures"]
    assert figures["black_hole"]["remaining_lifetime_s"] <= 3
    assert figures["renewals"]["count"] >= 3


def test_the_black_hole_window_is_the_remaining_lifetime(finished_run: tuple[Finished, Path]) -> None:
    """RFC 5944 §3.8.3.1: an unrenewed binding lasts until its granted lifetime runs out, not longer;
    measured from the home-link capture (the HA's last tunnelled packet), not from the HA's own trace."""
    _, run = finished_run
    hole = json.loads((run / "metrics.json").read_text())["figures"]["black_hole"]
    assert hole["reason"] == "expired"
    assert abs(hole["measured_s"] - hole["remaining_lifetime_s"]) <= 0.25
    assert 0 < hole["measured_s"] <= 3.25


def doctored(run: Path, work: Path, change: Callable[[Path], None]) -> dict[str, bool]:
    """Copy the run folder (without pcaps: they are not changed), apply ``change``, re-render, verdicts."""
    copy = work / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.png"))
    change(copy)
    render_deregistration(copy)
    return verdicts(copy)


def edit_observation(
    phase: str, label: str, edit: Callable[[dict[str, Any]], None]
) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / "observations.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        for record in records:
            if record["phase"] == phase and record["label"] == label:
                edit(record)
        path.write_text("".join(json.dumps(record) + "\n" for record in records))

    return change


def failed(judged: dict[str, bool]) -> list[str]:
    return [name for name, ok in judged.items() if not ok]


def test_a_proxy_arp_entry_left_behind_fails_that_phase_only(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    _, run = finished_run
    judged = doctored(
        run, tmp_path, edit_observation("visited-fa", "gone", lambda r: r["proxy_arp"].append(HOA))
    )
    assert failed(judged) == [
        "visited-fa: deregistration via FA1 removes binding, tunnel routes, proxy ARP (RFC 5944 §3.6.1.2)"
    ]


def test_the_home_agent_answering_arp_after_expiry_fails(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    _, run = finished_run
    macs = [json.loads(line) for line in (run / "traces" / "scenario.jsonl").read_text().splitlines()]
    ha_mac = next(event["ha"] for event in macs if event["event"] == "macs")

    def answered(record: dict[str, Any]) -> None:
        record["router_neighbours"][HOA] = {"lladdr": ha_mac, "state": ["REACHABLE"]}

    judged = doctored(run, tmp_path, edit_observation("silent-death", "gone", answered))
    assert failed(judged) == ["silent-death: from expiry on the HA neither tunnels nor proxies"]


def test_a_binding_that_outlives_its_lifetime_fails(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    """A doctored HA trace: the expiry comes 2 s late."""
    _, run = finished_run

    def late_expiry(folder: Path) -> None:
        path = folder / "traces" / "ha.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines()]
        for event in events:
            if event["event"] == "binding_removed" and event.get("reason") == "expired":
                event["t"] += 2.0
        path.write_text("".join(json.dumps(event) + "\n" for event in events))

    judged = doctored(run, tmp_path, late_expiry)
    expires = (
        "silent-death: the binding expires at the lifetime granted in the last reply (RFC 5944 §3.8.3.1)"
    )
    assert expires in failed(judged)


def test_a_granted_lifetime_above_the_maximum_fails(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    """A doctored HA trace: it told the MN 60 s although its maximum is 3 s (and expired accordingly)."""
    _, run = finished_run

    def long_grant(folder: Path) -> None:
        path = folder / "traces" / "ha.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines()]
        for event in events:
            if event["event"] == "rrp_sent" and event.get("lifetime") == 3:
                event["lifetime"] = 60
        path.write_text("".join(json.dumps(event) + "\n" for event in events))

    judged = doctored(run, tmp_path, long_grant)
    assert (
        "silent-death: the binding expires at the lifetime granted in the last reply (RFC 5944 §3.8.3.1)"
        in (failed(judged))
    )


def test_without_the_home_link_capture_the_tunnel_verdicts_fail(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    """Nothing is judged on missing evidence: no pcap, no "nothing was tunnelled"."""
    _, run = finished_run
    judged = doctored(run, tmp_path, lambda folder: (folder / "pcaps" / "ha-ha-eth0.pcap").unlink())
    assert {
        "omission: the omitted prefix's traffic stops at the HA (not sent into the tunnel)",
        "visited-fa: nothing for 192.0.2.10 is tunnelled after the deregistration",
        "silent-death: from expiry on the HA neither tunnels nor proxies",
        "silent-death: the black hole lasts the remaining lifetime (HA tunnels until then, not after)",
    } <= set(failed(judged))


def test_a_router_that_never_asked_proves_nothing(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    def never_asked(record: dict[str, Any]) -> None:
        record["router_neighbours"].pop(HOA, None)

    _, run = finished_run
    judged = doctored(run, tmp_path, edit_observation("visited-fa", "gone", never_asked))
    assert failed(judged) == ["visited-fa: nobody answers ARP for 192.0.2.10 on the home link any more"]


def test_a_forged_deregistration_that_was_accepted_fails(
    finished_run: tuple[Finished, Path], tmp_path: Path
) -> None:
    _, run = finished_run

    def accepted(folder: Path) -> None:
        path = folder / "traces" / "scenario.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines()]
        for event in events:
            if event.get("what") == "forged_reply" and event.get("kind") == "replay":
                event["reply_code"] = 0
        path.write_text("".join(json.dumps(event) + "\n" for event in events))

    judged = doctored(run, tmp_path, accepted)
    assert failed(judged) == ["forged: replay deregistration refused with 133, binding kept (RFC 5944 §5.7)"]
