"""Look-ups several labs mark from: agent advertisements, registration messages, moves and their trace
lines, handover rows. Each returns a :class:`Measured` (value and where) or raises :class:`Missing`."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from labs.errors import Missing
from labs.grading import Measured
from labs.runview import Line, RunView, where_message


def first(items: Sequence[Any], why: str) -> Any:
    if not items:
        raise Missing(why)
    return items[0]


def advertisements(run: RunView, pcap: str, source: str, *, unsolicited: bool = True) -> list[dict[str, Any]]:
    """Agent Advertisements from ``source`` in ``pcap`` (multicast ones only: ``unsolicited``)."""
    found = run.find(pcap, "Agent Advertisement", source=source)
    return [m for m in found if not unsolicited or m.get("destination") == "224.0.0.1"]


def mobility_extension(message: dict[str, Any]) -> dict[str, Any]:
    for extension in message.get("extensions", []):
        if extension.get("type") == 16:
            return dict(extension)
    raise Missing(f"frame {message.get('frame')} has no Mobility Agent Advertisement extension")


def advertisement_field(run: RunView, pcap: str, source: str, field: str) -> Measured:
    """A field of the first advertisement from ``source``: ``lifetime``/``ttl`` (ICMP/IP) or one of the
    mobility extension (``registration_lifetime``, ``flags``, ``care_of_addresses``, ``sequence``)."""
    message = first(advertisements(run, pcap, source), f"no advertisement from {source} in pcaps/{pcap}")
    where = where_message(pcap, message)
    if field in ("lifetime", "ttl"):
        return Measured(message[field], where)
    extension = mobility_extension(message)
    value = extension[field]
    if field == "flags":
        value = "".join(value["names"])
    if field == "care_of_addresses":
        value = first(value, f"{where} advertises no care-of address")
    return Measured(value, where)


def advertisement_gap(run: RunView, pcap: str, source: str) -> Measured:
    """Median seconds between consecutive unsolicited advertisements from ``source``."""
    found = advertisements(run, pcap, source)
    times = [float(m["time"]) for m in found]
    if len(times) < 3:
        raise Missing(f"fewer than 3 advertisements from {source} in pcaps/{pcap}")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    where = f"pcaps/{pcap} frames {found[0]['frame']}, {found[1]['frame']}, ... (advertisements from {source})"
    return Measured(round(statistics.median(gaps), 3), where)


def move_line(run: RunView, handover: int) -> Line:
    return first(run.events("scenario", "move_started", handover=handover), f"no handover {handover} was made")


def handover_value(run: RunView, handover: int, column: str) -> Measured:
    row = run.handover(handover)
    text = row.get(column, "")
    if text in ("", None):
        raise Missing(f"handovers.csv row {handover} has no {column}")
    try:
        value: Any = round(float(text), 1)
    except ValueError:
        value = text
    return Measured(value, f"handovers.csv row {handover}, column {column}")


def detection_line(run: RunView, handover: int) -> Line:
    """The mobile node's first ``movement_detected`` after handover ``handover`` started."""
    moved = move_line(run, handover).event["t"]
    node = str(run.meta().get("mobile_node", "mn1"))
    lines = [line for line in run.events(node, "movement_detected") if line.event["t"] >= moved]
    return first(lines, f"mn1 detected no movement after handover {handover}")


def replies(run: RunView, pcap: str, **fields: Any) -> list[dict[str, Any]]:
    return run.find(pcap, "Registration Reply", **fields)


def requests(run: RunView, pcap: str, **fields: Any) -> list[dict[str, Any]]:
    return run.find(pcap, "Registration Request", **fields)


def extension(message: dict[str, Any], type_: int, subtype: int | None = None) -> dict[str, Any]:
    for item in message.get("extensions", []):
        if item.get("type") == type_ and (subtype is None or item.get("subtype") == subtype):
            return dict(item)
    raise Missing(f"frame {message.get('frame')} has no extension {type_}")
