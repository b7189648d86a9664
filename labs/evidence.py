"""Look-ups several labs mark from: agent advertisements, registration messages, moves and their trace
lines, handover rows. Each returns a :class:`Measured` (value and where) or raises :class:`Missing`."""

from __future__ import annotations

import contextlib
import itertools
import statistics
from collections.abc import Sequence
from typing import Any, TypeVar

from labs.errors import Missing
from labs.grading import Measured
from labs.runview import Line, RunView, where_message

T = TypeVar("T")


def first(items: Sequence[T], why: str) -> T:
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
    gaps = [b - a for a, b in itertools.pairwise(times)]
    where = (
        f"pcaps/{pcap} frames {found[0]['frame']}, {found[1]['frame']}, ... (advertisements from {source})"
    )
    return Measured(round(statistics.median(gaps), 3), where)


def move_line(run: RunView, handover: int) -> Line:
    return first(
        run.events("scenario", "move_started", handover=handover), f"no handover {handover} was made"
    )


def handover_value(run: RunView, handover: int, column: str) -> Measured:
    row = run.handover(handover)
    text = row.get(column, "")
    if text in ("", None):
        raise Missing(f"handovers.csv row {handover} has no {column}")
    value: Any = text
    try:
        value = int(text)
    except ValueError:
        with contextlib.suppress(ValueError):
            value = round(float(text), 1)
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


def layers(ip: Any) -> list[tuple[int, str, str, int]]:
    """The IP headers of a packet, outermost first: (version, source, destination, next protocol), peeling
    IPv4-in-IPv4 (protocol 4, RFC 2003) and IPv6-in-IPv4 (41, RFC 4213)."""
    import ipaddress

    import dpkt

    out: list[tuple[int, str, str, int]] = []
    while isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) and len(out) < 4:
        if isinstance(ip, dpkt.ip.IP):
            out.append((4, str(ipaddress.IPv4Address(ip.src)), str(ipaddress.IPv4Address(ip.dst)), ip.p))
            inner = ip.data
            if ip.p == 4 and isinstance(inner, bytes | dpkt.ip.IP):
                ip = dpkt.ip.IP(bytes(inner)) if isinstance(inner, bytes) else inner
                continue
            if ip.p == 41:
                ip = dpkt.ip6.IP6(bytes(inner)) if isinstance(inner, bytes) else inner
                continue
            break
        out.append((6, str(ipaddress.IPv6Address(ip.src)), str(ipaddress.IPv6Address(ip.dst)), ip.nxt))
        break
    return out


def first_layered(
    run: RunView, pcap: str, innermost_src: str, innermost_dst: str, depth: int | None = None
) -> Any:
    """The first frame of ``pcap`` whose innermost header goes ``innermost_src`` → ``innermost_dst`` (with
    ``depth`` headers in all, if given); (frame, its layers)."""
    for frame in run.frames(pcap):
        try:
            found = layers(frame.ip)
        except Exception:  # a truncated inner header: not the packet we look for
            continue
        ends = bool(found) and found[-1][1] == innermost_src and found[-1][2] == innermost_dst
        if ends and (depth is None or len(found) == depth):
            return frame, found
    raise Missing(f"no packet {innermost_src} → {innermost_dst} in pcaps/{pcap}")
