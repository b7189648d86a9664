"""The testbed's bridges (no root): Mininet's bridge-netfilter warnings are replaced by one line of ours that
says what the host setting means for a run, read from the sysctls without changing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mininet.nodelib
import pytest

from topologies.bridges import TABLES, TestbedBridge, bridge_netfilter_note, bridge_netfilter_tables

MININET_WARNING = "Linux bridge may not work"


def sysctls(tmp_path: Path, **values: str) -> Path:
    """A stand-in for /proc/sys/net/bridge holding ``bridge-nf-call-<table>`` files with ``values``."""
    for table, value in values.items():
        (tmp_path / f"bridge-nf-call-{table}").write_text(value + "\n")
    return tmp_path


def test_tables_are_those_whose_sysctl_is_one(tmp_path: Path) -> None:
    root = sysctls(tmp_path, iptables="1", ip6tables="0", arptables="1")
    assert bridge_netfilter_tables(root) == ["iptables", "arptables"]
    assert bridge_netfilter_tables(sysctls(tmp_path, iptables="0", arptables="0")) == []


def test_no_br_netfilter_means_no_table(tmp_path: Path) -> None:
    assert bridge_netfilter_tables(tmp_path / "absent") == []


def test_nothing_to_say_when_no_table_sees_bridged_traffic() -> None:
    assert bridge_netfilter_note([]) is None


@pytest.mark.parametrize("tables", [list(TABLES), ["ip6tables"]])
def test_the_note_is_one_line_in_our_words_naming_each_setting(tables: list[str]) -> None:
    note = bridge_netfilter_note(tables)
    assert note is not None and "\n" not in note
    assert MININET_WARNING not in note
    for table in TABLES:
        assert (f"net.bridge.bridge-nf-call-{table}" in note) == (table in tables), (table, note)
    assert "FORWARD" in note and "left as it is" in note


def record_warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make Mininet's LinuxBridge.setup see every bridge-nf-call sysctl at 1 and record what it warns."""
    warned: list[str] = []

    def warn(*words: Any) -> None:
        warned.append(" ".join(str(word) for word in words))

    monkeypatch.setattr(mininet.nodelib, "warn", warn)
    monkeypatch.setattr(mininet.nodelib, "pathCheck", lambda *args, **kwargs: None)
    monkeypatch.setattr(mininet.nodelib, "quietRun", lambda command: f"{command.split()[-1]} = 1")
    return warned


def test_mininet_warns_three_times_where_our_bridge_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    warned = record_warnings(monkeypatch)
    mininet.nodelib.LinuxBridge.setup()  # what the testbed used before: one warning per table
    assert len(warned) == 3 and all(MININET_WARNING in line for line in warned), warned
    warned.clear()
    monkeypatch.setattr("topologies.bridges.shutil.which", lambda name: f"/usr/sbin/{name}")
    TestbedBridge.setup()
    assert warned == []


def test_our_bridge_still_needs_brctl(monkeypatch: pytest.MonkeyPatch) -> None:
    record_warnings(monkeypatch)
    monkeypatch.setattr("topologies.bridges.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="brctl not found"):
        TestbedBridge.setup()
