"""What both agents' crash recovery shares: the sysctl values a line of crashed agents found first.

An agent killed with SIGKILL never writes back the sysctls it changed (forwarding, proxy delay), so its
successor would find the changed values and take them for the originals. With a journal, the first agent
records what it found (a ``sysctls`` record); every successor keeps that record instead of reading the
values afresh, and the one that exits cleanly writes them back and records an empty set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from agents.net.netlink import NetlinkFacadeError
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import E, EventHandler
from agents.runtime.state_journal import StateJournal

logger = logging.getLogger(__name__)


def read_sysctl(path: str) -> str | None:
    """``/proc/sys/<path>`` in this namespace, or None if there is no such setting."""
    try:
        with open(f"/proc/sys/{path}", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def write_sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w", encoding="ascii") as handle:
        handle.write(value)


def keep_sysctl_originals(
    journal: StateJournal[Any], saved: dict[str, str], names: list[str], context: AgentContext
) -> None:
    """The journalled originals, completed with the current value of any of ``names`` they lack; written
    back at clean exit. Call before anything is installed: shutdown callbacks run last-registered first, so
    this one runs after the datapath and the links have undone their own changes."""
    originals = dict(saved)
    for name in names:
        if name not in originals and (value := read_sysctl(name)) is not None:
            originals[name] = value
    journal.sysctls = originals

    def restore() -> None:
        for name, value in journal.sysctls.items():
            try:
                if read_sysctl(name) != value:
                    write_sysctl(name, value)
            except OSError as error:
                logger.warning("could not restore %s=%s: %s", name, value, error)
        journal.record_sysctls({})
        journal.close()

    context.on_shutdown(restore, name="restore the sysctls the first agent found")


def report_problems(context: AgentContext, summary: str, problems: list[str], path: str) -> None:
    """The one warning line about unusable journal records, and a trace event listing them."""
    if problems:
        logger.warning("%s", summary)
        context.trace.emit(TraceEvent.JOURNAL_PROBLEMS, path=path, problems=problems)


def journaled(journal: Any, apply: EventHandler[E]) -> EventHandler[E]:
    """``apply`` preceded by ``journal.observe`` (the record is on disk before the reply goes out);
    ``apply`` itself without a journal. Typed by the role's event union, so the role's ``match`` stays
    exhaustive through the wrapper."""
    if journal is None:
        return apply

    def apply_and_record(event: E) -> None:
        journal.observe(event)
        apply(event)

    return apply_and_record


def remove_and_report_stale(remove: Callable[[], list[str]], role: str, context: AgentContext) -> None:
    """Run ``remove`` (what a crashed predecessor left: it returns what it removed), log and trace it; a
    failure to look is a warning, never a reason not to start."""
    try:
        removed = remove()
    except (NetlinkFacadeError, OSError, LookupError) as error:
        logger.warning("could not check for stale state: %s", error)
        return
    if removed:
        logger.warning("removed state a previous %s left: %s", role, "; ".join(removed))
    context.trace.emit(TraceEvent.STALE_STATE_REMOVED, removed=removed)
