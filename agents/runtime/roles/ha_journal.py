"""The home agent's binding journal (`[runtime] journal = "PATH"`): what a restarted HA takes back.

One ``binding`` record per change of a home address: its care-of entries (address, UDP port,
encapsulation, T and D flags, lifetime, expiry), its registered prefixes with their target (RFC 5454
§2.2 code 0 = home address, 1 = care-of), and the last accepted Identification (RFC 5944 §5.7: replay
protection must survive the restart). A removal is a record with no care-of left. The last record of a
home address wins. A ``sysctls`` record holds the values the HA found before changing them, so a
successor of a crashed HA restores the real originals at its own clean exit; an empty one means they
were restored.

Expiries are saved on both clocks with the boot id (:class:`agents.runtime.journal.Clocks`).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Network
from typing import Any

from agents.mip.common import events as ev
from agents.mip.common.bindings import UNKNOWN_PORT, CareOf, CareOfEntry, PrefixBinding, TunnelTarget
from agents.mip.common.config import Encapsulation
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.ha.restore import SavedBinding
from agents.runtime.journal import Clocks, JournalRead, Record
from agents.runtime.state_journal import FoldedJournal, StateJournal, fold_records

_STATE_EVENTS = (
    ev.BindingAdded,
    ev.BindingUpdated,
    ev.BindingRemoved,
    ev.PrefixRegistered,
    ev.PrefixDeregistered,
    ev.ReplySent,  # every accepted request moves the last Identification (RFC 5944 §5.7)
)


# -- records ---------------------------------------------------------------------------------


def binding_record(home: IPv4Address, machine: HomeAgent, clocks: Clocks) -> Record:
    """The state of ``home`` in ``machine`` as one journal record."""
    binding = machine.table.get(home)
    care_ofs = [] if binding is None else list(binding.care_ofs.values())
    prefixes = [] if binding is None else list(binding.prefixes.values())
    return {
        "kind": "binding",
        "home": str(home),
        "identification": machine.last_identification(home),
        "care_ofs": [_care_of_record(entry, clocks) for entry in care_ofs],
        "prefixes": [item.to_dict() for item in prefixes],
    }


def _care_of_record(entry: CareOfEntry, clocks: Clocks) -> Record:
    return {
        "address": str(entry.care_of.address),
        "port": entry.care_of.port,
        "encapsulation": str(entry.encapsulation),
        "reverse_tunnel": entry.reverse_tunnel,
        "colocated": entry.colocated,
        "lifetime": entry.lifetime,
        "registered": clocks.save(entry.registered_at),
        "expires": clocks.save(entry.expires_at),
        "identification": entry.identification,
        "request_source": [str(entry.request_source[0]), entry.request_source[1]],
        "awaiting_keepalive": entry.awaiting_keepalive,
    }


def saved_binding(record: Record, clocks: Clocks) -> SavedBinding:
    """A ``binding`` record back as data for :meth:`HomeAgent.restore_binding` (KeyError, TypeError or
    ValueError when a field is missing or wrong)."""
    identification = record["identification"]
    if identification is not None and not isinstance(identification, int):
        raise TypeError("identification is not an integer")
    return SavedBinding(
        IPv4Address(record["home"]),
        tuple(_care_of_entry(item, clocks) for item in record["care_ofs"]),
        tuple(
            PrefixBinding(IPv6Network(item["prefix"]), TunnelTarget(item["target"]), bool(item["link_local"]))
            for item in record["prefixes"]
        ),
        identification,
    )


def _care_of_entry(item: Record, clocks: Clocks) -> CareOfEntry:
    port = item["port"]
    source = item["request_source"]
    return CareOfEntry(
        care_of=CareOf(IPv4Address(item["address"]), None if port is None else int(port)),
        encapsulation=Encapsulation(item["encapsulation"]),
        reverse_tunnel=bool(item["reverse_tunnel"]),
        colocated=bool(item["colocated"]),
        lifetime=int(item["lifetime"]),
        registered_at=clocks.load(item["registered"]),
        expires_at=clocks.load(item["expires"]),
        identification=int(item["identification"]),
        request_source=(IPv4Address(source[0]), int(source[1])),
        awaiting_keepalive=bool(item.get("awaiting_keepalive", port == UNKNOWN_PORT)),  # RFC 3519 §4.6
    )


class JournalState(FoldedJournal[IPv4Address, SavedBinding]):
    """What a home agent's journal says at start: the last binding of each home address."""

    NOUN = "binding"

    @property
    def bindings(self) -> dict[IPv4Address, SavedBinding]:
        return self.entries


def interpret(read: JournalRead, clocks: Clocks) -> JournalState:
    """Fold the records: the last one of each home address and the last ``sysctls`` record win."""

    def entry(record: Record) -> tuple[IPv4Address, SavedBinding]:
        saved = saved_binding(record, clocks)
        return saved.home_address, saved

    return fold_records(read, "binding", entry, JournalState({}, {}, []))


# -- the journal of a running home agent -----------------------------------------------------


class BindingJournal(StateJournal[IPv4Address]):
    """Writes the state of every home address an event touches, before the reply goes out.

    :meth:`observe` runs on each event (the driver applies events before it sends, so a record is on
    disk before the mobile node hears "accepted"). A record equal to the last one written for that home
    address is not written again (:class:`~agents.runtime.state_journal.StateJournal`).
    """

    def load(self) -> JournalState:
        """Read the journal; the one-line warning is the caller's to log (:meth:`JournalState.summary`)."""
        return interpret(self.read(), self.clocks())

    def attach(self, machine: HomeAgent) -> None:
        self.record_of = lambda home, clocks: binding_record(home, machine, clocks)
        self.live = lambda record: bool(record["care_ofs"]) or record["identification"] is not None

    def observe(self, event: Any) -> None:
        if isinstance(event, _STATE_EVENTS):
            self.write(event.home_address)
