"""The foreign agent's visitor journal: round trip through a restart, removals, expiry and damaged records
(crash recovery; RFC 5944 §3.7.1, RFC 3024 §5)."""

from __future__ import annotations

import json
from pathlib import Path

from agents.mip.fa.config import DeliveryStyle
from agents.mip.fa.events import VisitorAdded
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.mip.wire.extensions import EncapsulatingDeliveryStyle
from agents.runtime.journal import read_journal
from agents.runtime.roles.fa_journal import VisitorJournal
from agents.runtime.roles.foreign_agent import load_settings
from tests.unit.test_foreign_agent import (
    HOA,
    IDENT,
    MAC,
    T0,
    drain,
    make_fa,
    of_type,
    register,
    reply_bytes,
    request_bytes,
    send_reply,
    send_request,
)
from tests.unit.test_foreign_agent import F as Flags

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = T0


def journal_for(path: Path, fa: ForeignAgent, clock: Clock) -> VisitorJournal:
    journal = VisitorJournal(path, lambda: clock.now)
    journal.attach(fa)
    return journal


def record_events(journal: VisitorJournal, events: list[object]) -> None:
    for event in events:
        journal.observe(event)


def test_round_trip_restores_the_visitor_with_its_mac_and_style(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "fa.journal"
    first = make_fa()
    journal = journal_for(path, first, clock)
    run = register(first, T0, fa_extensions=(EncapsulatingDeliveryStyle(),), flags=Flags.T)
    record_events(journal, run.events)
    journal.close()
    clock.now = T0 + 20.0
    restarted = make_fa()
    state = journal_for(path, restarted, clock).load()
    assert not state.problems and set(state.visitors) == {HOA}
    saved = state.visitors[HOA]
    assert saved == first.visitor(HOA)  # every field, the expiry on the same monotonic clock
    assert saved.link_address == MAC and saved.delivery_style is DeliveryStyle.ENCAPSULATING
    assert restarted.restore_visitor(saved, clock.now) is None
    assert of_type(drain(restarted, clock.now), VisitorAdded)


def test_removal_and_expiry(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "fa.journal"
    fa = make_fa()
    journal = journal_for(path, fa, clock)
    record_events(journal, register(fa, T0, lifetime=60, granted=60).events)
    assert set(journal.load().visitors) == {HOA}
    restarted = make_fa()
    expired = journal.load().visitors[HOA]
    assert restarted.restore_visitor(expired, T0 + 61.0) == "expired"
    deregistration = request_bytes(lifetime=0, ident=IDENT + 1)
    record_events(journal, send_request(fa, deregistration, T0 + 1).events)
    record_events(journal, send_reply(fa, reply_bytes(0, 0, ident=IDENT + 1), T0 + 1.05).events)
    assert fa.visitor(HOA) is None
    assert journal.load().visitors == {}
    journal.compact([HOA])
    assert [record["kind"] for record in read_journal(path).records] == ["sysctls"]


def test_damaged_records_are_skipped_with_reasons(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "fa.journal"
    fa = make_fa()
    journal = journal_for(path, fa, clock)
    record_events(journal, register(fa).events)
    good = path.read_text()
    bad = json.loads(good)
    bad["visitor"]["delivery_style"] = "teleport"
    path.write_text(good + json.dumps(bad) + "\nnot json\n" + good[:20])
    state = journal.load()
    assert HOA in state.visitors  # the good record stands
    assert len(state.problems) == 3
    assert "not JSON" in state.problems[0] and "truncated last record" in state.problems[1]
    assert "ValueError" in state.problems[2]
    assert state.summary(path).count("\n") == 0


def test_runtime_journal_key(tmp_path: Path) -> None:
    text = (REPO / "examples/fa.toml").read_text()
    assert '# journal = "' in text
    path = tmp_path / "fa.toml"
    path.write_text(text.replace("[runtime]\n", '[runtime]\njournal = "/tmp/fa.journal"\n'))
    assert load_settings(path).runtime.journal == "/tmp/fa.journal"
