"""Probe CSV parsing, per-flow statistics, and run-folder validation errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.errors import RunFolderError
from reports.probes import flow_stats, logged_by_sender, parse_probe_csv, span_between
from reports.rundir import load_run
from tests.unit.runfolder import FlowSpec, RunFolderBuilder, standard_run, write_lines

HEADER = "seq,send_t,recv_t,path,family"


def _csv(tmp_path: Path, *rows: str, header: str = HEADER, newline_at_end: bool = True) -> Path:
    path = tmp_path / "v4-down.csv"
    write_lines(path, [header, *rows], newline_at_end)
    return path


def test_stats_count_loss_duplicates_reordering_and_delay(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "0,10.000,10.001,home,4",
        "1,10.001,,home,4",  # lost
        "2,10.002,10.005,home,4",  # overtaken by 3
        "3,10.003,10.004,home,4",
        "3,10.003,10.0042,home,4",  # duplicate of 3
        "4,10.004,10.006,fa1,4",
    )
    stats = flow_stats(parse_probe_csv(path, "v4-down", []))
    assert stats["sent"] == 5
    assert stats["received"] == 4
    assert stats["lost"] == 1
    assert stats["duplicates"] == 1
    assert stats["reordered"] == 1
    assert stats["family"] == 4 and stats["direction"] == "down"
    assert stats["delay_ms_median"] == pytest.approx(1.5)  # delays 1, 3, 1, 2 ms
    assert stats["delay_ms_max"] == pytest.approx(3.0)
    assert stats["delay_ms_p95"] == pytest.approx(2.85)
    assert stats["paths"] == ["home", "fa1"]


def test_a_lost_seq_with_a_received_duplicate_row_is_not_lost(tmp_path: Path) -> None:
    path = _csv(tmp_path, "0,1.0,,home,4", "0,1.0,1.002,home,4")
    stats = flow_stats(parse_probe_csv(path, "v4-down", []))
    assert (stats["sent"], stats["received"], stats["lost"], stats["duplicates"]) == (1, 1, 0, 0)


def test_columns_are_found_by_name(tmp_path: Path) -> None:
    path = _csv(tmp_path, "6,fa2,2,1.0,1.003", header="family,path,seq,send_t,recv_t")
    flow = parse_probe_csv(path, "v6-up", [])
    assert flow.family == 6 and flow.path_labels == ("fa2",)
    assert flow_stats(flow)["delay_ms_max"] == pytest.approx(3.0)


def test_empty_flow_has_no_delay(tmp_path: Path) -> None:
    stats = flow_stats(parse_probe_csv(_csv(tmp_path), "v4-down", []))
    assert stats["sent"] == 0 and stats["delay_ms_median"] is None and stats["loss_ratio"] is None


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["0,1.0,1.1,home,4", "x,1.0,1.1,home,4"], "probes/v4-down.csv line 3: seq 'x' is not an integer"),
        (["0,abc,1.1,home,4"], "probes/v4-down.csv line 2: send_t 'abc' is not a number"),
        (["0,1.0,nan,home,4"], "probes/v4-down.csv line 2: recv_t 'nan' is not a finite number"),
        (["0,1.0,1.1,home,5"], "probes/v4-down.csv line 2: family '5' is not 4 or 6"),
        (["0,1.0,1.1"], "probes/v4-down.csv line 2: expected 5 fields, found 3"),
        (["0,1.0,1.1,home,4", "1,1.0,1.1,home,6"], "probes/v4-down.csv: mixes address families [4, 6]"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(RunFolderError) as caught:
        parse_probe_csv(_csv(tmp_path, *rows), "v4-down", [])
    assert str(caught.value) == message


def test_missing_header_column(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match=r"line 1: header lacks recv_t"):
        parse_probe_csv(_csv(tmp_path, header="seq,send_t,path,family"), "v4-down", [])


def test_unterminated_last_line_is_skipped_with_a_note(tmp_path: Path) -> None:
    notes: list[str] = []
    path = _csv(tmp_path, "0,1.0,1.1,home,4", "1,1.0", newline_at_end=False)
    flow = parse_probe_csv(path, "v4-down", notes)
    assert flow.seq.tolist() == [0]
    assert notes == ["probes/v4-down.csv line 3: unterminated last line skipped (expected 5 fields, found 2)"]


def test_truncated_row_in_the_middle_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match=r"line 2: expected 5 fields"):
        parse_probe_csv(_csv(tmp_path, "1,1.0", "0,1.0,1.1,home,4"), "v4-down", [])


# -- run folder -------------------------------------------------------------------------------------------


def test_load_run_reads_every_part(tmp_path: Path) -> None:
    run = load_run(standard_run(tmp_path).write())
    assert list(run.flows) == ["v4-down", "v4-up", "v6-down", "v6-up"]
    assert run.t0 == 1000.0
    assert run.mobile_node == "mn1" and run.home_agent == "ha"
    assert set(run.traces) == {"scenario", "mn1", "ha", "fa1", "fa2"}
    assert run.pcaps == ["ha-ha-eth0.pcap", "mn1-mn1-eth0.pcap"]
    times = [event["t"] for event in run.traces["mn1"]]
    assert times == sorted(times)
    assert run.notes == []


def test_missing_folder_and_missing_meta(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no such directory"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(RunFolderError, match=r"meta.json: missing"):
        load_run(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{\n  "t0": 1,\n  oops\n}', "line 3: invalid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"t0": "soon"}', "'t0' must be int or float"),
        ('{"flows": ["v4-down", 3]}', "'flows' must be a list of flow names"),
        ('{"expectations": [{"name": "x"}]}', "expectations\\[0\\] must be an object"),
    ],
)
def test_bad_meta_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "meta.json").write_text(text, encoding="utf-8")
    with pytest.raises(RunFolderError, match=message):
        load_run(tmp_path)


def test_bad_trace_line_names_file_and_line(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    lines = (root / "traces" / "ha.jsonl").read_text(encoding="utf-8").splitlines()
    lines.insert(2, '{"t": "later", "event": "rrq_received"}')
    write_lines(root / "traces" / "ha.jsonl", lines)
    with pytest.raises(RunFolderError) as caught:
        load_run(root)
    assert str(caught.value) == "traces/ha.jsonl line 3: 't' must be a finite number, not 'later'"
    lines[2] = "{not json"
    write_lines(root / "traces" / "ha.jsonl", lines)
    with pytest.raises(RunFolderError, match=r"traces/ha.jsonl line 3: invalid JSON"):
        load_run(root)


def test_half_written_last_trace_line_is_tolerated(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    path = root / "traces" / "mn1.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + '{"t": 1020.0, "node": "mn1", "ev', encoding="utf-8")
    run = load_run(root)
    assert len(run.notes) == 1 and run.notes[0].startswith("traces/mn1.jsonl line ")


def test_listed_flow_without_csv_becomes_an_empty_flow(tmp_path: Path) -> None:
    builder = RunFolderBuilder(tmp_path)
    builder.flow(FlowSpec("v4-down", 4, 1001.0, 1001.01))
    builder.meta["flows"].append("v6-up")
    run = load_run(builder.write())
    assert run.flows["v6-up"].seq.size == 0 and run.flows["v6-up"].family == 6
    assert run.notes == ["probes/v6-up.csv is missing: flow v6-up counted as empty"]


def test_flows_default_to_the_csv_files_when_meta_lists_none(tmp_path: Path) -> None:
    builder = RunFolderBuilder(tmp_path)
    builder.flow(FlowSpec("v6-down", 6, 1001.0, 1001.01))
    root = builder.write()
    meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    del meta["flows"], meta["t0"]
    (root / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    run = load_run(root)
    assert list(run.flows) == ["v6-down"]
    assert run.t0 == pytest.approx(1001.0)  # the earliest time seen


def test_a_window_counts_every_sequence_number_sent_even_without_its_row(tmp_path: Path) -> None:
    """Review F1: the sender never skips a seq and logs failed sends (scenarios/probe.py), so a seq with
    no row in the file (deleted, truncated) was sent and counts as lost, inside the window as well as at
    its edges (between the last row before it and the first row after it)."""
    rows = [f"{seq},{10 + seq / 10:.3f},{10.05 + seq / 10:.3f},home,4" for seq in range(20)]
    full = parse_probe_csv(_csv(tmp_path, *rows), "v4-down", [])
    assert span_between(full, 10.5, 11.4) == (10, 0, 0)  # seqs 5..14
    holes = [row for row in rows if int(row.split(",")[0]) not in (5, 8, 14)]  # both edges and within
    flow = parse_probe_csv(_csv(tmp_path, *holes), "v4-down", [])
    assert span_between(flow, 10.5, 11.4) == (10, 3, 3)
    lost = ["8,10.800,,home,4" if row.startswith("8,") else row for row in rows]
    assert span_between(parse_probe_csv(_csv(tmp_path, *lost), "v4-down", []), 10.5, 11.4) == (10, 1, 0)
    assert span_between(None, 10.5, 11.4) == (0, 0, 0)
    assert span_between(flow, float("nan"), 11.4) == (0, 0, 0)
    assert span_between(flow, 30.0, 31.0) == (0, 0, 0)  # after the last row: nothing known sent


def test_the_senders_own_count_covers_rows_cut_off_after_the_last_one(tmp_path: Path) -> None:
    """A probe file truncated after a phase's last row has no later row to bound the span: the sender's
    summary (packets sent plus failed sends, one row each) says how many rows there should be."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "probe-send-v4-up.log").write_text(
        'starting\n{"flow": "v4-up", "sent": 90, "errors": {"ENETUNREACH": 7}, "slips": 0}\n'
    )
    assert logged_by_sender(tmp_path, "v4-up") == 97
    assert logged_by_sender(tmp_path, "v6-up") is None  # no log: nothing to compare with
    (logs / "probe-send-v6-up.log").write_text("not json\n")
    assert logged_by_sender(tmp_path, "v6-up") is None
