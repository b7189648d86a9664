"""Per-handover decomposition: exact interruptions, losses and step offsets from a synthetic run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reports.handovers import handover_columns
from reports.metrics import RunResult, analyse
from reports.rundir import load_run
from tests.unit.runfolder import (
    EXPECTED,
    FIRST_RX_1,
    MOVES,
    STEPS_1,
    FlowSpec,
    RunFolderBuilder,
    standard_run,
)


def _analyse(builder: RunFolderBuilder) -> RunResult:
    return analyse(load_run(builder.write()))


@pytest.fixture(scope="module")
def standard(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _analyse(standard_run(tmp_path_factory.mktemp("standard")))


def test_one_row_per_move_with_from_to_and_detection(standard: RunResult) -> None:
    got = [(r["handover"], r["t_move"], r["from"], r["to"], r["detection"]) for r in standard.handovers]
    assert got == [tuple(move) for move in MOVES]
    assert [r["t_move_s"] for r in standard.handovers] == pytest.approx([5.0007, 10.0007, 13.0007])


@pytest.mark.parametrize("number", [1, 2, 3])
def test_interruption_and_loss_are_exact(standard: RunResult, number: int) -> None:
    row = standard.handovers[number - 1]
    for flow, (interruption, lost) in EXPECTED[number].items():
        assert row[f"{flow}_interruption_ms"] == pytest.approx(interruption, abs=1e-6), flow
        assert row[f"{flow}_lost"] == lost, flow
        assert row[f"{flow}_restored"] is True, flow


def test_the_12_5_ms_gap_is_measured_from_last_old_to_first_new_packet(standard: RunResult) -> None:
    row = standard.handovers[0]
    assert row["v4-down_interruption_ms"] == 12.5
    for flow, offset in FIRST_RX_1.items():
        assert row[f"{flow}_first_rx_ms"] == pytest.approx(offset, abs=1e-6), flow


def test_link_handover_decomposition_offsets(standard: RunResult) -> None:
    row = standard.handovers[0]
    expected = {
        "link_down_ms": STEPS_1["link_down"],
        "link_up_ms": STEPS_1["link_up"],
        "movement_detected_ms": STEPS_1["movement_detected"],
        "solicitation_sent_ms": STEPS_1["solicitation_sent"],
        "agent_discovered_ms": STEPS_1["agent_discovered"],
        "rrq_sent_ms": STEPS_1["rrq_sent"],
        "fa_rrq_relayed_ms": STEPS_1["fa_rrq_relayed"],
        "ha_rrq_received_ms": STEPS_1["rrq_received"],
        "ha_binding_ms": STEPS_1["binding_added"],  # not the other MN's binding 3.5 ms after the move
        "ha_rrp_sent_ms": STEPS_1["rrp_sent"],
        "fa_rrp_relayed_ms": STEPS_1["fa_rrp_relayed"],
        "rrp_received_ms": STEPS_1["rrp_received"],
        "registration_accepted_ms": STEPS_1["registration_accepted"],
        "tunnel_up_ms": STEPS_1["tunnel_up"],
        "move_finished_ms": STEPS_1["move_finished"],
    }
    assert {key: row[key] for key in expected} == pytest.approx(expected, abs=1e-6)
    assert row["registration_rtt_ms"] == pytest.approx(1.8, abs=1e-6)
    assert row["registration_attempts"] == 1
    assert row["rrp_code"] == 0
    assert row["movement_reason"] == "link"
    assert row["harness_restored"] is True


def test_advert_handover_has_no_link_events_and_matches_the_retransmission(standard: RunResult) -> None:
    row = standard.handovers[1]
    assert row["link_down_ms"] is None and row["link_up_ms"] is None
    assert row["solicitation_sent_ms"] is None and row["tunnel_up_ms"] is None
    assert row["agent_discovered_ms"] == pytest.approx(240.0, abs=1e-6)
    assert row["rrq_sent_ms"] == pytest.approx(240.3, abs=1e-6)  # the first request after the move
    assert row["fa_rrq_relayed_ms"] == pytest.approx(1240.6, abs=1e-6)  # relayed: the retransmission
    assert row["ha_binding_ms"] == pytest.approx(1241.0, abs=1e-6)
    assert row["registration_rtt_ms"] == pytest.approx(1.7, abs=1e-6)  # 202 sent → 202 answered
    assert row["registration_attempts"] == 2
    assert row["movement_reason"] == "prefix"


def test_return_home_has_no_foreign_agent_and_binding_is_the_deregistration(standard: RunResult) -> None:
    row = standard.handovers[2]
    assert row["fa_rrq_relayed_ms"] is None and row["fa_rrp_relayed_ms"] is None
    assert row["ha_binding_ms"] == pytest.approx(2.4, abs=1e-6)
    assert row["registration_accepted_ms"] == pytest.approx(3.0, abs=1e-6)  # "deregistered"
    assert row["registration_rtt_ms"] == pytest.approx(0.9, abs=1e-6)


def test_rows_have_every_column_in_order(standard: RunResult) -> None:
    columns = handover_columns(standard.flows)
    assert all(list(row) == columns for row in standard.handovers)


def _single_move_run(root: Path, spec: FlowSpec, **events: Any) -> RunFolderBuilder:
    builder = RunFolderBuilder(root, moves=1)
    builder.flow(spec)
    builder.event(
        "scenario", 1002.0007, "move_started", handover=1, detection="link", **{"from": "home", "to": "fa1"}
    )
    for name, t in events.items():
        builder.event("scenario", t, name, handover=1)
    return builder


def test_straggler_after_the_move_does_not_hide_the_gap(tmp_path: Path) -> None:
    # packet 1000 (sent 1002.000) is delayed to arrive 2 ms after the move; the next 20 are lost.
    spec = FlowSpec("v4-down", 4, 1001.0, 1003.0, losses=[(1002.0005, 1002.0205)], late={1000: 0.0022})
    row = _analyse(_single_move_run(tmp_path, spec, link_down=1002.0009)).handovers[0]
    # last before: 1002.000 sent → 1002.0027 received; first new: 1002.021 → 1002.0215
    assert row["v4-down_interruption_ms"] == pytest.approx(18.8, abs=1e-6)
    assert row["v4-down_lost"] == 20
    assert row["v4-down_first_rx_ms"] == pytest.approx(20.8, abs=1e-6)


def test_flow_that_never_comes_back_is_not_restored(tmp_path: Path) -> None:
    spec = FlowSpec("v6-up", 6, 1001.0, 1003.0, losses=[(1002.0005, 1004.0)])
    builder = _single_move_run(tmp_path, spec)
    builder.event("scenario", 1003.5, "probes_stopped")
    row = _analyse(builder).handovers[0]
    assert row["v6-up_restored"] is False
    assert row["v6-up_interruption_ms"] is None
    assert row["v6-up_first_rx_ms"] is None
    assert row["v6-up_lost"] == 999  # sent 1002.001 … 1002.999
    assert row["rrq_sent_ms"] is None and row["registration_rtt_ms"] is None  # no MN trace: empty, no crash


def test_restoration_after_the_probes_stopped_does_not_count(tmp_path: Path) -> None:
    spec = FlowSpec("v4-up", 4, 1001.0, 1003.0, losses=[(1002.0005, 1002.9005)])
    builder = _single_move_run(tmp_path, spec)
    builder.event("scenario", 1002.5, "probes_stopped")
    row = _analyse(builder).handovers[0]
    assert row["v4-up_restored"] is False
    assert row["v4-up_lost"] == 499  # sent in [move, probes_stopped)


def test_flow_starting_after_the_move_is_restored_without_an_interruption(tmp_path: Path) -> None:
    spec = FlowSpec("v4-down", 4, 1002.5, 1003.0)
    row = _analyse(_single_move_run(tmp_path, spec)).handovers[0]
    assert row["v4-down_restored"] is True
    assert row["v4-down_interruption_ms"] is None
    assert row["v4-down_first_rx_ms"] == pytest.approx(499.8, abs=1e-6)


def test_no_move_means_no_rows(tmp_path: Path) -> None:
    builder = RunFolderBuilder(tmp_path)
    builder.flow(FlowSpec("v4-down", 4, 1001.0, 1001.1))
    assert _analyse(builder).handovers == []


def test_packets_through_the_old_attachment_after_an_advert_move_do_not_hide_the_outage(
    tmp_path: Path,
) -> None:
    """Without a carrier drop, packets sent just after the move still get through the old attachment;
    the outage is the silence before the first packet sent once the new registration took effect."""
    # sent 1002.0007 … 1002.0037 still arrive (old path); 1002.0045 … 1002.2005 lost; then the new path.
    spec = FlowSpec("v4-down", 4, 1001.0, 1003.0, losses=[(1002.0035, 1002.2005)])
    builder = _single_move_run(tmp_path, spec)
    hoa, coa = "192.0.2.10", "198.51.100.2"
    builder.event("mn1", 1002.1990, "rrq_sent", identification=7, care_of=coa, lifetime=60, attempt=1)
    builder.event(
        "ha", 1002.2000, "rrq_received", identification=7, home_address=hoa, care_of=coa, lifetime=60
    )
    builder.event("ha", 1002.2001, "binding_added", home_address=hoa, care_of=coa)
    builder.event("mn1", 1002.2010, "rrp_received", identification=7, code=0, lifetime=60)
    row = _analyse(builder).handovers[0]
    # old path: last packet sent 1002.003 → received 1002.0035; new path: sent 1002.201 → received 1002.2015
    assert row["v4-down_interruption_ms"] == pytest.approx(198.0, abs=1e-6)
    assert row["v4-down_lost"] == 197


def test_a_steady_sender_gap_is_one_packet_interval(tmp_path: Path) -> None:
    spec = FlowSpec("v4-down", 4, 1001.0, 1003.0, losses=[(1002.0005, 1002.0205)])
    row = _analyse(_single_move_run(tmp_path, spec, link_down=1002.0009)).handovers[0]
    assert row["v4-down_interruption_ms"] == pytest.approx(21.0, abs=1e-6)
    assert row["v4-down_sender_gap_ms"] == pytest.approx(1.0, abs=1e-6)  # 1,000 packets/s
    assert row["v4-down_lost_span_ms"] == pytest.approx(19.0, abs=1e-6)  # lost: sent 1002.001 … 1002.020


def test_a_sender_held_inside_the_interruption_shows_as_its_gap(tmp_path: Path) -> None:
    """Issue 14: a probe waiting for a CPU sends nothing while the path is already back; the receiver's
    silence then includes the sender's, which the sender gap tells apart."""
    # lost: sent 1002.001 … 1002.004; the sender is held from 1002.005 to 1002.012, then catches up
    spec = FlowSpec(
        "v4-down", 4, 1001.0, 1003.0, losses=[(1002.0005, 1002.0045)], stalls=[(1002.0045, 1002.012)]
    )
    row = _analyse(_single_move_run(tmp_path, spec, link_down=1002.0009)).handovers[0]
    # last before: sent 1002.000 → 1002.0005; first after: held packet 1002.005, sent 1002.012 → 1002.0125
    assert row["v4-down_interruption_ms"] == pytest.approx(12.0, abs=1e-6)
    assert row["v4-down_lost"] == 4
    assert row["v4-down_sender_gap_ms"] == pytest.approx(8.0, abs=1e-6)  # 1002.004 (lost) → 1002.012
    # the path was down at least from the first to the last lost send, whatever the sender did
    assert row["v4-down_lost_span_ms"] == pytest.approx(3.0, abs=1e-6)  # 1002.001 … 1002.004


def test_two_sender_silences_still_bound_the_path_from_below(tmp_path: Path) -> None:
    """Issue 14 review: subtracting the longest sender silence is no bound when there are two; the lost
    span is (one outage, constant delay): every packet sent inside the silence was lost."""
    # held 1002.0015 → 1002.004 and 1002.0045 → 1002.009: due .002, .003, .004 go at .004, .004001,
    # .004002 (each 1 µs after the last); lost: everything sent before 1002.0042
    spec = FlowSpec(
        "v4-down",
        4,
        1001.0,
        1003.0,
        losses=[(1002.0005, 1002.0042)],
        stalls=[(1002.0015, 1002.004), (1002.0045, 1002.009)],
    )
    row = _analyse(_single_move_run(tmp_path, spec, link_down=1002.0009)).handovers[0]
    assert row["v4-down_lost"] == 4  # sent 1002.001, .004, .004001, .004002
    assert row["v4-down_sender_gap_ms"] == pytest.approx(4.998, abs=1e-6)  # 1002.004002 → 1002.009
    assert row["v4-down_lost_span_ms"] == pytest.approx(3.002, abs=1e-6)  # 1002.001 → 1002.004002
    assert row["v4-down_interruption_ms"] == pytest.approx(9.0, abs=1e-6)  # 1002.0005 → 1002.0095


def test_a_silence_ended_by_an_earlier_send_has_no_send_window(tmp_path: Path) -> None:
    """A reordered packet (or a buffered copy flushed by a new FA, RFC 4881) ending the silence was sent
    before the last packet through: no sender gap or lost span is measured for it."""
    # 1001.999 arrives 6.3 ms late (1002.0053), after the anchor 1002.000 (→ 1002.0005); .001–.005 lost
    spec = FlowSpec("v4-down", 4, 1001.0, 1003.0, losses=[(1002.0005, 1002.0055)], late={999: 0.0058})
    row = _analyse(_single_move_run(tmp_path, spec, link_down=1002.0009)).handovers[0]
    assert row["v4-down_interruption_ms"] == pytest.approx(4.8, abs=1e-6)
    assert row["v4-down_sender_gap_ms"] is None and row["v4-down_lost_span_ms"] is None


def test_duplicates_are_counted_per_handover_window(tmp_path: Path) -> None:
    """Simultaneous bindings (RFC 5944 §3.6.1.3) and a flushed buffer (RFC 4881) show as extra copies."""
    spec = FlowSpec("v4-down", 4, 1001.0, 1003.0, duplicates={995, 1001, 1003})  # 1002.0007: the move
    row = _analyse(_single_move_run(tmp_path, spec, link_down=1002.0009)).handovers[0]
    assert row["v4-down_duplicates"] == 2 and row["v4-down_lost"] == 0


def test_a_pre_registered_handover_is_decomposed_from_its_trigger(tmp_path: Path) -> None:
    """RFC 4881 §3: the trigger, request and binding come before the move (negative offsets); losses
    between the trigger and the move belong to this handover, not the previous one."""
    spec = FlowSpec("v4-down", 4, 1001.0, 1003.0, losses=[(1001.9950, 1001.9970)])
    builder = _single_move_run(tmp_path, spec, link_down=1002.0009)
    builder.event("scenario", 1001.9900, "l2_trigger", handover=1, to="fa1", mode="pre")
    builder.event("mn1", 1001.9950, "llh_pre_ready", agent="10.0.1.1", care_of="198.51.100.2")
    builder.event("mn1", 1002.0020, "llh_pre_attached", agent="10.0.1.1", ready=True)
    row = _analyse(builder).handovers[0]
    assert row["handoff"] == "pre"
    assert row["l2_trigger_ms"] == pytest.approx(-10.7, abs=1e-6)
    assert row["pre_ready_ms"] == pytest.approx(-5.7, abs=1e-6)
    assert row["pre_attached_ms"] == pytest.approx(1.3, abs=1e-6)
    assert row["v4-down_lost"] == 2


def test_budget_counts_standard_link_handovers_to_an_fa_against_their_targets() -> None:
    from reports.budget import STEPS, budget

    assert sum(step.target_ms for step in STEPS) == pytest.approx(2.0)
    row = {"detection": "link", "handoff": "standard", "to": "fa1", "link_up_ms": 1.0}
    row |= {"movement_detected_ms": 1.2, "solicitation_sent_ms": 1.2, "agent_discovered_ms": 2.2}
    home = {**row, "to": "home", "movement_detected_ms": 9.0}
    pre = {**row, "handoff": "pre", "movement_detected_ms": 9.0}
    entries = {entry["step"]: entry for entry in budget([row, home, pre])}
    carrier = entries["carrier event → movement detected (MN)"]
    assert carrier["measured"] == 1 and carrier["median_ms"] == pytest.approx(0.2)
    assert carrier["over_target"] is False
    assert entries["solicitation → advertisement heard (MN)"]["over_target"] is True
    assert entries["HA: binding → reply sent (reply first)"]["measured"] == 0


def test_budget_p95_is_the_nearest_rank_value() -> None:
    """p95 by the nearest-rank method: the ⌈0.95·n⌉-th smallest value (1-based).

    Ten handovers whose first step lasts 1..10 ms: ⌈9.5⌉ = 10, so p95 is the 10th value, 10 ms
    (an index of ⌊0.95·n⌋ - 1 would give the 9th, 9 ms); five handovers 1..5 ms: ⌈4.75⌉ = 5 → 5 ms;
    twenty handovers 1..20 ms: ⌈19⌉ = 19 → 19 ms; one handover: that value.
    """
    from reports.budget import budget

    def rows(spans: list[float]) -> list[dict[str, object]]:
        base = {"detection": "link", "handoff": "standard", "to": "fa1", "link_up_ms": 0.0}
        return [{**base, "movement_detected_ms": span} for span in spans]

    def p95(spans: list[float]) -> object:
        return budget(rows(spans))[0]["p95_ms"]

    assert p95([float(v) for v in (7, 3, 10, 1, 5, 2, 9, 4, 8, 6)]) == pytest.approx(10.0)
    assert p95([5.0, 1.0, 4.0, 2.0, 3.0]) == pytest.approx(5.0)
    assert p95([float(v) for v in range(20, 0, -1)]) == pytest.approx(19.0)
    assert p95([4.5]) == pytest.approx(4.5)
