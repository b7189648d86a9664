"""TraceWriter and the JSON conversion rules it shares with the control socket."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.runtime.jsonable import dumps_line, to_jsonable
from agents.runtime.trace import TraceWriter, monotonic_now


class Code(enum.IntEnum):
    ACCEPTED = 0
    DENIED_BY_HA = 129


class Flags(enum.IntFlag):
    S = 0x80
    B = 0x40
    D = 0x20


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class Binding:
    hoa: ipaddress.IPv4Address
    prefixes: tuple[ipaddress.IPv6Network, ...]
    code: Code


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_line_has_header_then_fields(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "mn1.jsonl"
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    with TraceWriter(path, "mn1") as trace:
        trace.emit("rrq_sent", coa=ipaddress.IPv4Address("198.51.100.7"), lifetime=300)
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    (line,) = read_lines(path)
    assert list(line) == ["t", "node", "event", "coa", "lifetime"]
    assert before <= line["t"] <= after
    assert line["node"] == "mn1" and line["event"] == "rrq_sent"
    assert line["coa"] == "198.51.100.7" and line["lifetime"] == 300


def test_lines_are_visible_before_close(tmp_path: Path) -> None:
    path = tmp_path / "ha.jsonl"
    trace = TraceWriter(path, "ha")
    trace.emit("one")
    trace.emit("two")
    assert [line["event"] for line in read_lines(path)] == ["one", "two"]
    trace.close()


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "fa.jsonl"
    path.write_text('{"t": 0, "node": "old", "event": "kept"}\n', encoding="utf-8")
    with TraceWriter(path, "fa1") as trace:
        trace.emit("new")
    assert [line["event"] for line in read_lines(path)] == ["kept", "new"]


def test_emit_at_uses_the_given_time(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, "n") as trace:
        trace.emit_at(12.5, "rx", size=60)
    assert read_lines(path) == [{"t": 12.5, "node": "n", "event": "rx", "size": 60}]


def test_values_are_made_json_able(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    binding = Binding(
        ipaddress.IPv4Address("192.0.2.10"), (ipaddress.IPv6Network("2001:db8:1::/48"),), Code.ACCEPTED
    )
    with TraceWriter(path, "ha") as trace:
        trace.emit(
            "binding",
            binding=binding,
            code=Code.DENIED_BY_HA,
            flags=Flags.S | Flags.D,
            no_flags=Flags(0),
            color=Color.RED,
            raw=b"\x01\xfe",
            iface_addr=ipaddress.IPv6Interface("fe80::c000:20a/64"),
            where=Path("/tmp/x"),
            ratio=math.nan,
            keys={1: "one"},
        )
    (line,) = read_lines(path)
    assert line["binding"] == {"hoa": "192.0.2.10", "prefixes": ["2001:db8:1::/48"], "code": "ACCEPTED"}
    assert line["code"] == "DENIED_BY_HA"
    assert line["flags"] in ("S|D", "D|S")
    assert line["no_flags"] == 0
    assert line["color"] == "RED"
    assert line["raw"] == "01fe"
    assert line["iface_addr"] == "fe80::c000:20a/64"
    assert line["where"] == "/tmp/x"
    assert line["ratio"] == "nan"
    assert line["keys"] == {"1": "one"}


def test_fields_cannot_overwrite_the_header(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with TraceWriter(path, "mn1") as trace:
        trace.emit_at(1.0, "x", t=99, node="evil", t_=5)
    (line,) = read_lines(path)
    assert line["t"] == 1.0 and line["node"] == "mn1"
    assert line["t_"] == 99 and line["node_"] == "evil" and line["t__"] == 5


def test_none_path_is_a_no_op(tmp_path: Path) -> None:
    trace = TraceWriter(None, "mn1")
    assert not trace.enabled
    trace.emit("ignored", x=1)
    trace.emit_at(1.0, "ignored")
    trace.close()
    assert list(tmp_path.iterdir()) == []


def test_close_is_idempotent_and_later_events_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    trace = TraceWriter(path, "n")
    trace.emit("before")
    trace.close()
    trace.close()
    trace.emit("after")
    assert not trace.enabled
    assert [line["event"] for line in read_lines(path)] == ["before"]


def test_write_failure_is_logged_once_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    trace = TraceWriter("/dev/full", "n")  # every write fails with ENOSPC
    with caplog.at_level(logging.ERROR, logger="agents.runtime.trace"):
        trace.emit("a")
        trace.emit("b")
    trace.close()
    assert len([r for r in caplog.records if "writing trace" in r.getMessage()]) == 1


def test_monotonic_now_is_clock_monotonic() -> None:
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    now = monotonic_now()
    assert before <= now <= time.clock_gettime(time.CLOCK_MONOTONIC)


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(max_size=16),
    st.ip_addresses(),
    st.sampled_from(list(Code) + list(Flags) + [Flags.S | Flags.B]),
)
nested = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=4),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=20,
)


@given(nested)
def test_anything_converts_to_strict_json(value: Any) -> None:
    text = dumps_line(value)
    assert "\n" not in text
    assert json.loads(text) == to_jsonable(value)


plain_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


def _converted_text(value: Any) -> str:
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@given(st.one_of(plain_json, nested))
def test_plain_data_is_written_exactly_as_converted_data(value: Any) -> None:
    """Already-plain JSON (what events give) skips the conversion copy and gives the same text."""
    assert dumps_line(value) == _converted_text(value)


@pytest.mark.parametrize("depth", [30, 31, 32, 33, 34])
def test_deep_nesting_is_cut_where_the_conversion_cuts_it(depth: int) -> None:
    value: Any = 5
    for _ in range(depth):
        value = [value]
    assert dumps_line(value) == _converted_text(value)


def test_held_lines_keep_their_times_and_are_written_when_the_outermost_hold_ends(tmp_path: Path) -> None:
    """Issue 14: a step's lines are written after its datagrams left, each with the time it was emitted."""
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, "fa") as trace:
        with trace.held():
            trace.emit("rrq_received", n=1)
            trace.emit_at(5.0, "rrp_sent", n=2)
            with trace.held():
                trace.emit("binding_added", n=3)
            assert path.read_text() == ""  # the inner block's end writes nothing
            stamped_before_write = monotonic_now()
        written = [json.loads(line) for line in path.read_text().splitlines()]
        assert [line["n"] for line in written] == [1, 2, 3]
        assert written[1]["t"] == 5.0
        assert written[0]["t"] <= written[2]["t"] <= stamped_before_write
        trace.emit("binding_removed", n=4)  # not held: at once
        assert len(path.read_text().splitlines()) == 4


def test_held_lines_are_written_when_the_step_fails(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, "ha") as trace, pytest.raises(RuntimeError), trace.held():
        trace.emit("rrq_received")
        raise RuntimeError("apply failed")
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["rrq_received"]


def test_close_inside_a_held_block_writes_the_held_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    trace = TraceWriter(path, "fa")
    with trace.held():
        trace.emit("rrq_received")
        trace.close()
        trace.emit("rrp_sent")  # after close: ignored, as always
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["rrq_received"]


def test_a_line_the_codec_refuses_is_skipped_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, "fa") as trace, trace.held():
        trace.emit("rrq_received", note="\ud800")  # a lone surrogate: UnicodeEncodeError in utf-8
        trace.emit("rrp_sent")
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["rrp_sent"]
