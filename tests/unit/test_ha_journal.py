"""The home agent's binding journal: durable JSON lines, round trip through a restart, expiry across
reboots, and damaged files read as far as they can be (crash recovery; RFC 5944 §3.8.1, §5.7)."""

from __future__ import annotations

import json
import math
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from agents.mip.common.bindings import UNKNOWN_PORT, CareOf, TunnelTarget
from agents.mip.common.config import Encapsulation
from agents.mip.common.events import BindingAdded, BindingUpdated, ProxyArpStarted
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.mn.keepalive import keepalive_request
from agents.mip.wire.codes import ReplyCode
from agents.mip.wire.extensions import UdpTunnelRequest
from agents.runtime import journal as journal_module
from agents.runtime import state_journal
from agents.runtime.configfile import ConfigError
from agents.runtime.journal import Clocks, Journal, read_journal
from agents.runtime.roles.ha_journal import BindingJournal, interpret
from agents.runtime.roles.home_agent import load_settings
from tests.unit.test_home_agent import (
    COA,
    HA,
    HOA,
    HOA2,
    P1,
    Clock,
    drain,
    make_ha,
    of_type,
    one_reply,
    prefixes,
    register,
    rrq,
)
from tests.unit.test_home_agent import F as Flags

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def journal_for(path: Path, ha: HomeAgent, clock: Clock) -> BindingJournal:
    journal = BindingJournal(path, lambda: clock.now)
    journal.attach(ha)
    return journal


def record_all(journal: BindingJournal, ha: HomeAgent) -> None:
    """What the runtime does: every event goes through the journal."""
    while (event := ha.next_event()) is not None:
        journal.observe(event)


# -- the generic journal file ------------------------------------------------------------------


def test_append_and_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path)
    journal.append({"kind": "a", "n": 1})
    journal.append({"kind": "b", "n": 2})
    journal.close()
    read = read_journal(path)
    assert [record["n"] for record in read.records] == [1, 2] and not read.problems
    assert path.read_bytes().count(b"\n") == 2


def test_missing_file_is_an_empty_journal(tmp_path: Path) -> None:
    read = read_journal(tmp_path / "absent")
    assert read.records == [] and read.problems == []


def test_truncated_last_record_is_skipped_and_named(tmp_path: Path) -> None:
    path = tmp_path / "j"
    good = json.dumps({"kind": "a", "n": 1}) + "\n"
    path.write_text(good + good.replace("1", "2")[:-9])  # a torn append: no newline, half a record
    read = read_journal(path)
    assert [record["n"] for record in read.records] == [1]
    assert read.problems == ["line 2: truncated last record"]


def test_garbage_lines_spoil_only_themselves(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_bytes(b'{"kind":"a","n":1}\n\xff\xfe garbage\n[1,2]\n{"n":3}\n{"kind":"a","n":4}\n')
    read = read_journal(path)
    assert [record["n"] for record in read.records] == [1, 4]
    assert read.problems == [
        "line 2: not JSON",
        "line 3: not a journal record",
        "line 4: not a journal record",
    ]


def test_rewrite_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path)
    for n in range(5):
        journal.append({"kind": "a", "n": n})
    journal.rewrite([{"kind": "a", "n": 9}])
    journal.append({"kind": "a", "n": 10})
    journal.close()
    assert [record["n"] for record in read_journal(path).records] == [9, 10]
    assert sorted(item.name for item in tmp_path.iterdir()) == ["j"]  # no temporary file left


# -- home agent records ------------------------------------------------------------------------


def test_round_trip_restores_binding_prefixes_and_identification(tmp_path: Path, clock: Clock) -> None:
    """Register (GRE, T, a code-1 prefix), journal every event, restart: the same binding comes back."""
    path = tmp_path / "ha.journal"
    first = make_ha()
    journal = journal_for(path, first, clock)
    flags = Flags.D | Flags.T | Flags.G
    reply = one_reply(first, rrq(clock, flags=flags, extensions=prefixes(P1, mode=True)), clock)
    assert reply.code == ReplyCode.ACCEPTED
    record_all(journal, first)
    journal.close()
    clock.now += 30.0
    restarted = make_ha()
    state = journal_for(path, restarted, clock).load()
    assert not state.problems
    saved = state.bindings[HOA]
    assert saved.identification == first.last_identification(HOA)
    outcome = restarted.restore_binding(saved, clock.now)
    assert outcome.restored
    [entry] = outcome.care_ofs
    assert (entry.care_of, entry.encapsulation, entry.reverse_tunnel, entry.colocated) == (
        CareOf(COA),
        Encapsulation.GRE,
        True,
        True,
    )
    assert entry.expires_at == pytest.approx(clock.now - 30.0 + 300.0)
    assert [(item.prefix, item.target) for item in outcome.prefixes] == [(P1, TunnelTarget.CARE_OF)]
    events = drain(restarted)
    assert of_type(events, BindingAdded) and of_type(events, ProxyArpStarted)


def test_deregistration_is_journalled_as_a_removal(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "ha.journal"
    ha = make_ha()
    journal = journal_for(path, ha, clock)
    register(ha, clock)
    record_all(journal, ha)
    clock.now += 1.0
    assert register(ha, clock, lifetime=0).code == ReplyCode.ACCEPTED
    record_all(journal, ha)
    saved = journal.load().bindings[HOA]
    assert saved.care_ofs == () and saved.identification == ha.last_identification(HOA)
    restarted = make_ha()
    assert not restarted.restore_binding(saved, clock.now).restored
    assert restarted.table.get(HOA) is None


def test_expired_while_down_is_not_restored(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "ha.journal"
    ha = make_ha()
    journal = journal_for(path, ha, clock)
    register(ha, clock, lifetime=60)
    record_all(journal, ha)
    clock.now += 61.0
    restarted = make_ha()
    outcome = restarted.restore_binding(journal_for(path, restarted, clock).load().bindings[HOA], clock.now)
    assert not outcome.restored and "expired" in outcome.skipped[0]


def test_unchanged_state_is_written_once(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "ha.journal"
    ha = make_ha()
    journal = journal_for(path, ha, clock)
    register(ha, clock, extensions=prefixes(P1))
    record_all(journal, ha)  # rrq_received, binding_added, prefix_registered, proxy ARP, reply: one state
    assert len(read_journal(path).records) == 1
    register(ha, clock, extensions=prefixes(P1))  # a renewal: new Identification and expiry
    record_all(journal, ha)
    assert len(read_journal(path).records) == 2


def test_compaction_keeps_only_the_current_state(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "ha.journal"
    ha = make_ha()
    journal = journal_for(path, ha, clock)
    for _ in range(5):
        register(ha, clock)
        register(ha, clock, home=HOA2)
        record_all(journal, ha)
    journal.record_sysctls({"net/ipv4/ip_forward": "0"})
    journal.compact([HOA, HOA2, IPv4Address("192.0.2.99")])
    records = read_journal(path).records
    assert [record["kind"] for record in records] == ["sysctls", "binding", "binding"]
    state = interpret(read_journal(path), Clocks(clock.now, clock.now, ""))
    assert set(state.bindings) == {HOA, HOA2} and state.sysctls == {"net/ipv4/ip_forward": "0"}


def test_bad_fields_become_problems_not_exceptions(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "ha.journal"
    ha = make_ha()
    journal = journal_for(path, ha, clock)
    register(ha, clock)
    record_all(journal, ha)
    good = path.read_text()
    broken = json.loads(good)
    broken["care_ofs"][0]["encapsulation"] = "carrier-pigeon"
    path.write_text(good + json.dumps(broken) + '\n{"kind":"binding","home":"x"}\n{"kind":"mystery"}\n')
    state = journal.load()
    assert len(state.problems) == 3 and HOA in state.bindings  # the good record is still used
    assert (
        "ValueError" in state.problems[0]
        and "KeyError" in state.problems[1]
        and "mystery" in state.problems[2]
    )
    assert state.summary(path).startswith(f"journal {path}: skipped 3 unusable record(s)")
    assert "\n" not in state.summary(path)


# -- clocks ------------------------------------------------------------------------------------


def test_same_boot_uses_the_monotonic_deadline_even_if_the_wall_clock_stepped() -> None:
    before = Clocks(monotonic=1000.0, unix=1_700_000_000.0, boot="boot-a")
    saved = before.save(1300.0)
    after = Clocks(monotonic=1100.0, unix=1_700_009_999.0, boot="boot-a")  # wall clock jumped
    assert after.load(saved) == 1300.0


def test_after_a_reboot_the_wall_clock_carries_the_deadline() -> None:
    before = Clocks(monotonic=1000.0, unix=1_700_000_000.0, boot="boot-a")
    saved = before.save(1300.0)  # expires at unix 1_700_000_300
    after = Clocks(monotonic=5.0, unix=1_700_000_100.0, boot="boot-b")
    assert after.load(saved) == pytest.approx(205.0)


def test_infinite_lifetime_round_trips() -> None:
    clocks = Clocks(monotonic=1.0, unix=2.0, boot="b")
    assert math.isinf(clocks.load(clocks.save(math.inf)))


def test_boot_id_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "boot_id"
    fake.write_text("1234\n")
    monkeypatch.setattr(journal_module, "BOOT_ID_PATH", fake)
    assert journal_module.boot_id() == "1234"
    monkeypatch.setattr(journal_module, "BOOT_ID_PATH", tmp_path / "none")
    assert journal_module.boot_id() == ""


# -- configuration -----------------------------------------------------------------------------


def test_runtime_journal_key(tmp_path: Path) -> None:
    text = (REPO / "examples/ha.toml").read_text()
    assert '# journal = "' in text  # documented in the example
    path = tmp_path / "ha.toml"
    path.write_text(text.replace("[runtime]\n", '[runtime]\njournal = "/tmp/x.journal"\n'))
    assert load_settings(path).runtime.journal == "/tmp/x.journal"
    path.write_text(text)
    assert load_settings(path).runtime.journal is None
    path.write_text(text.replace("[runtime]\n", "[runtime]\njournal = 3\n"))
    with pytest.raises(ConfigError, match=r"runtime\.journal"):
        load_settings(path)


def test_an_unwritable_journal_is_logged_once_and_never_raises(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ha = make_ha()
    journal = journal_for(tmp_path / "missing-directory" / "ha.journal", ha, clock)
    for _ in range(3):
        register(ha, clock)
        record_all(journal, ha)  # three renewals, three failed writes
    journal.compact([HOA])
    errors = [record.message for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 2 and "cannot write" in errors[0] and "cannot rewrite" in errors[1]


def test_the_journal_compacts_itself_when_appends_pile_up(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_journal, "COMPACT_AFTER", 3)
    path = tmp_path / "ha.journal"
    ha = make_ha()
    journal = journal_for(path, ha, clock)
    for _ in range(9):
        register(ha, clock)  # every renewal: a new Identification and expiry, so a new record
        record_all(journal, ha)
    records = read_journal(path).records
    assert len(records) < 9 and records[0]["kind"] == "sysctls"
    assert interpret(read_journal(path), Clocks(clock.now, clock.now, "")).bindings[HOA].identification == (
        ha.last_identification(HOA)
    )


def test_a_half_bound_binding_is_restored_half_bound_and_a_keepalive_completes_it(
    tmp_path: Path, clock: Clock
) -> None:
    """RFC 3519 §4.6: a binding registered with the R flag (through an FA behind a NAT) waits for the MN's
    first keepalive; after a restart it still waits (port unknown, nothing sent) and the keepalive from the
    request's source address completes it at that keepalive's port."""
    fa_nat = IPv4Address("203.0.113.66")
    path = tmp_path / "ha.journal"
    first = make_ha()
    journal = journal_for(path, first, clock)
    ask = UdpTunnelRequest(force=False, r_flag=True, encapsulation=0)
    assert one_reply(first, rrq(clock, extensions=(ask,)), clock, source=fa_nat).code == ReplyCode.ACCEPTED
    record_all(journal, first)
    journal.close()
    restarted = make_ha()
    outcome = restarted.restore_binding(journal_for(path, restarted, clock).load().bindings[HOA], clock.now)
    [entry] = outcome.care_ofs
    assert entry.awaiting_keepalive and entry.care_of == CareOf(fa_nat, UNKNOWN_PORT)
    drain(restarted)
    assert restarted.receive_keepalive(keepalive_request(HOA, HA, 1, 1), (fa_nat, 40000), clock.now)
    assert [e.care_of for e in of_type(drain(restarted), BindingUpdated)] == [CareOf(fa_nat, 40000)]
