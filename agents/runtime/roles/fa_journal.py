"""The foreign agent's visitor journal (`[runtime] journal = "PATH"`): what a restarted FA takes back.

One ``visitor`` record per change of a home address's visitor entry (RFC 5944 §3.7.1): its home agent,
care-of address, link-layer address and interface (the FA delivers to the MAC, never by ARP, §4.2.2),
the request's source port, T flag, delivery style and encapsulation (RFC 3024 §3, §5), lifetime and
expiry (on both clocks, :class:`agents.runtime.journal.Clocks`) and Identification; ``"visitor": null``
is a removal. The last record of a home address wins; a ``sysctls`` record as for the home agent
(:mod:`agents.runtime.roles.recovery`).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from agents.mip.common.config import Encapsulation
from agents.mip.fa import events as fe
from agents.mip.fa.config import DeliveryStyle
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.mip.fa.visitors import Visitor
from agents.runtime.journal import Clocks, JournalRead, Record
from agents.runtime.state_journal import FoldedJournal, StateJournal, fold_records

_STATE_EVENTS = (fe.VisitorAdded, fe.VisitorUpdated, fe.VisitorRemoved)


def visitor_record(home: IPv4Address, machine: ForeignAgent, clocks: Clocks) -> Record:
    """The visitor entry of ``home`` (or its absence) as one journal record."""
    visitor = machine.visitor(home)
    return {
        "kind": "visitor",
        "home": str(home),
        "visitor": None if visitor is None else _fields(visitor, clocks),
    }


def _fields(visitor: Visitor, clocks: Clocks) -> Record:
    return {
        "home_agent": str(visitor.home_agent),
        "care_of": str(visitor.care_of),
        "link_address": None if visitor.link_address is None else visitor.link_address.hex(),
        "source_address": str(visitor.source_address),
        "source_port": visitor.source_port,
        "interface": visitor.interface,
        "reverse_tunnel": visitor.reverse_tunnel,
        "delivery_style": str(visitor.delivery_style),
        "encapsulation": str(visitor.encapsulation),
        "colocated": visitor.colocated,
        "lifetime": visitor.lifetime,
        "registered": clocks.save(visitor.registered_at),
        "expires": clocks.save(visitor.expires_at),
        "identification": visitor.identification,
    }


def saved_visitor(record: Record, clocks: Clocks) -> Visitor | None:
    """A ``visitor`` record back as an entry (None for a removal); KeyError, TypeError or ValueError when
    a field is missing or wrong."""
    home = IPv4Address(record["home"])
    item = record["visitor"]
    if item is None:
        return None
    link = item["link_address"]
    interface = item["interface"]
    return Visitor(
        home_address=home,
        home_agent=IPv4Address(item["home_agent"]),
        care_of=IPv4Address(item["care_of"]),
        link_address=None if link is None else bytes.fromhex(link),
        source_address=IPv4Address(item["source_address"]),
        source_port=int(item["source_port"]),
        interface=None if interface is None else str(interface),
        reverse_tunnel=bool(item["reverse_tunnel"]),
        delivery_style=DeliveryStyle(item["delivery_style"]),
        encapsulation=Encapsulation(item["encapsulation"]),
        colocated=bool(item["colocated"]),
        lifetime=int(item["lifetime"]),
        registered_at=clocks.load(item["registered"]),
        expires_at=clocks.load(item["expires"]),
        identification=int(item["identification"]),
    )


class VisitorJournalState(FoldedJournal[IPv4Address, Visitor]):
    """What a foreign agent's journal says at start: the last visitor entry of each home address."""

    NOUN = "visitor"

    @property
    def visitors(self) -> dict[IPv4Address, Visitor]:
        return self.entries


def interpret(read: JournalRead, clocks: Clocks) -> VisitorJournalState:
    """Fold the records: the last one of each home address (a removal drops it) and the last ``sysctls``
    record win."""

    def entry(record: Record) -> tuple[IPv4Address, Visitor | None]:
        return IPv4Address(record["home"]), saved_visitor(record, clocks)

    return fold_records(read, "visitor", entry, VisitorJournalState({}, {}, []))


class VisitorJournal(StateJournal[IPv4Address]):
    """Writes a visitor's entry whenever an event changes it, before the relayed reply goes out."""

    def load(self) -> VisitorJournalState:
        return interpret(self.read(), self.clocks())

    def attach(self, machine: ForeignAgent) -> None:
        self.record_of = lambda home, clocks: visitor_record(home, machine, clocks)
        self.live = lambda record: record["visitor"] is not None

    def observe(self, event: Any) -> None:
        if isinstance(event, _STATE_EVENTS):
            self.write(event.home_address)
