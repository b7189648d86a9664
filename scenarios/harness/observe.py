"""Snapshots of what the home agent's node really holds, for verdicts read from state (design.md §7):
the binding table (control socket), proxy-ARP entries on the home link, the routes into the tunnel
device, the foreign agents' visitor lists, how a home-link router resolves each home address, and MACs.

Each snapshot is one JSON line of ``observations.jsonl`` in the run folder; :mod:`reports.deregistration`
judges them. Kernel state is read with ``ip -j`` (JSON) inside the node, never parsed from text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agents.runtime.trace import monotonic_now


@dataclass(frozen=True)
class HomeLinkView:
    """Where to look: the HA's node, home interface and tunnel device; a router on the home link."""

    home_agent: str
    home_interface: str
    tunnel_interface: str
    router: str
    router_interface: str
    foreign_agents: tuple[str, ...]


def ip_json(node: Any, command: str) -> list[dict[str, Any]]:
    """``ip -j <command>`` inside ``node``; [] when it prints nothing (no entries)."""
    text = node.cmd(f"ip -j {command}").strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise RuntimeError(f"{node.name}: 'ip -j {command}' printed no JSON: {text[:200]}") from None
    return list(value) if isinstance(value, list) else []


def mac_of(node: Any, interface: str) -> str | None:
    links = ip_json(node, f"link show dev {interface}")
    return str(links[0].get("address")) if links else None


class Observer:
    """Takes snapshots of the home link's state for a :class:`~scenarios.harness.testbed.Testbed`."""

    def __init__(self, bed: Any, view: HomeLinkView, home_addresses: Iterable[str]) -> None:
        self.bed = bed
        self.view = view
        self.home_addresses = list(home_addresses)
        self.path = bed.run.path / "observations.jsonl"

    def forget_router_entries(self) -> None:
        """Flush the router's neighbour entries for the home addresses, so the next packet makes it ask
        again (who answers then is what :meth:`snapshot` records)."""
        router = self.bed.node(self.view.router)
        for address in self.home_addresses:
            router.cmd(f"ip neigh flush to {address} dev {self.view.router_interface}")

    def snapshot(self, phase: str, label: str, **extra: Any) -> dict[str, Any]:
        """Record the state now, with ``phase`` and ``label``; returns the record."""
        view, bed = self.view, self.bed
        ha = bed.node(view.home_agent)
        record: dict[str, Any] = {"t": monotonic_now(), "phase": phase, "label": label}
        record["bindings"] = bed.ask(view.home_agent, "bindings")
        record["ha_datapath"] = bed.ask(view.home_agent, "status").get("datapath", {})
        record["proxy_arp"] = sorted(
            str(entry.get("dst")) for entry in ip_json(ha, f"neigh show proxy dev {view.home_interface}")
        )
        record["tunnel_routes4"] = sorted(
            str(entry.get("dst")) for entry in ip_json(ha, f"-4 route show dev {view.tunnel_interface}")
        )
        record["tunnel_routes6"] = sorted(
            str(entry.get("dst"))
            for entry in ip_json(ha, f"-6 route show dev {view.tunnel_interface}")
            if not str(entry.get("dst")).startswith("fe80:")
        )
        record["visitors"] = {fa: bed.ask(fa, "visitors") for fa in view.foreign_agents}
        record["router_neighbours"] = self._neighbours(view.router, view.router_interface)
        record["ha_neighbours"] = self._neighbours(view.home_agent, view.home_interface)
        record |= extra
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
        return record

    def _neighbours(self, node_name: str, interface: str) -> dict[str, dict[str, Any]]:
        """``node``'s neighbour entries for the home addresses on ``interface`` (absent: no entry)."""
        node = self.bed.node(node_name)
        found: dict[str, dict[str, Any]] = {}
        for address in self.home_addresses:
            entries = ip_json(node, f"-4 neigh show to {address} dev {interface}")
            if entries:
                entry = entries[0]
                found[address] = {"lladdr": entry.get("lladdr"), "state": entry.get("state", [])}
        return found
