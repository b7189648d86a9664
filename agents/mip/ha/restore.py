"""What a restarted home agent may take back from a saved binding (RFC 5944 §3.8.1, §5.7; RFC 5454 §3.3).

A saved binding (read from a journal by the runtime) is checked against the configuration the home
agent runs with now, which may differ from the one that accepted it: the home address must still have
an account, a care-of entry must not have expired and its encapsulation and T flag must still be
supported (RFC 5944 §3.8.3, RFC 3024 §4), and a prefix must still be allowed and free (RFC 5454 §3.3).
Pure functions on plain data: no clock (``now`` is a parameter), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from agents.mip.common.bindings import BindingTable, CareOfEntry, PrefixBinding, TunnelTarget
from agents.mip.common.config import Encapsulation, HomeAgentConfig, MobileNodeAccount


@dataclass(frozen=True)
class SavedBinding:
    """One home address as a journal holds it. ``expires_at`` of each entry is on the caller's clock
    (the same monotonic ``now`` the machine is driven with). ``identification`` is the last accepted
    Identification, kept even when no care-of is left (replay protection, RFC 5944 §5.7)."""

    home_address: IPv4Address
    care_ofs: tuple[CareOfEntry, ...] = ()
    prefixes: tuple[PrefixBinding, ...] = ()
    identification: int | None = None


@dataclass(frozen=True)
class RestoreOutcome:
    """What :meth:`agents.mip.ha.home_agent.HomeAgent.restore_binding` took back, and what it left out."""

    home_address: IPv4Address
    care_ofs: tuple[CareOfEntry, ...] = ()
    prefixes: tuple[PrefixBinding, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def restored(self) -> bool:
        """True if at least one care-of entry is bound again."""
        return bool(self.care_ofs)


def usable_care_ofs(
    saved: SavedBinding, config: HomeAgentConfig, now: float
) -> tuple[list[CareOfEntry], list[str]]:
    """The entries still valid at ``now`` under ``config``, newest first, and why the others are not."""
    kept: list[CareOfEntry] = []
    skipped: list[str] = []
    for entry in sorted(saved.care_ofs, key=lambda item: item.registered_at, reverse=True):
        if entry.expires_at <= now:
            skipped.append(f"{entry.care_of}: expired")
        elif entry.encapsulation not in config.encapsulations:
            skipped.append(f"{entry.care_of}: encapsulation {entry.encapsulation} no longer offered")
        elif entry.reverse_tunnel and not config.reverse_tunnel_supported:
            skipped.append(f"{entry.care_of}: reverse tunnelling no longer offered (RFC 3024 §4)")
        elif not entry.reverse_tunnel and config.reverse_tunnel_required:
            skipped.append(f"{entry.care_of}: reverse tunnelling now required (RFC 3024 §4)")
        else:
            kept.append(entry)
    limit = config.max_bindings_per_node if config.simultaneous_bindings else 1
    for entry in kept[limit:]:
        skipped.append(f"{entry.care_of}: more simultaneous bindings than allowed (RFC 5944 §3.6.1.3)")
    return kept[:limit], skipped


def usable_prefixes(
    saved: SavedBinding,
    account: MobileNodeAccount,
    config: HomeAgentConfig,
    table: BindingTable,
    care_ofs: list[CareOfEntry],
) -> tuple[list[PrefixBinding], list[str]]:
    """The prefixes still allowed and not overlapping another node's (RFC 5454 §3.3, §3.7.1); code 1
    only while tunnelling mode is honoured and no kept care-of uses minimal encapsulation (§3.3.2)."""
    kept: list[PrefixBinding] = []
    skipped: list[str] = []
    minimal = any(entry.encapsulation is Encapsulation.MINIMAL for entry in care_ofs)
    for item in saved.prefixes:
        to_care_of = item.target is TunnelTarget.CARE_OF
        if not config.dsmipv4:
            skipped.append(f"{item.prefix}: DSMIPv4 switched off")
        elif item.link_local and not account.allow_link_local:
            skipped.append(f"{item.prefix}: link-local no longer allowed")
        elif not item.link_local and not account.allows(item.prefix):
            skipped.append(f"{item.prefix}: outside the allowed prefixes")
        elif table.overlaps_other(saved.home_address, item.prefix):
            skipped.append(f"{item.prefix}: overlaps another mobile node's prefix")
        elif to_care_of and (minimal or not config.honour_tunneling_mode):
            skipped.append(f"{item.prefix}: code 1 (to the care-of) no longer possible")
        else:
            kept.append(item)
    return kept, skipped
