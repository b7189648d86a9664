"""The security report's plots (reports/security_plots.py): per attack sent / dropped / logged / forwarded,
per fault the outage and per loss leg the registration times, as PNGs from the report's figures."""

from __future__ import annotations

from pathlib import Path

from reports.security_plots import attack_rows, fault_rows, render_security_plots

FIGURES = {
    "spoof": {
        "v4-outer": {"sent": 10, "dropped": {"unknown_outer_source": 10}, "logged": 10, "forwarded": 0}
    },
    "forged": {"replay": 133, "wrong-key-registration": 0},
    "forged_logged": {"replay": 1},
    "flood": {
        "mixed": {
            "sent": 160_000,
            "refused_or_dropped_by_ha": 70_000,
            "kernel_rcvbuf_drops": 90_000,
            "log_lines": 5,
            "forwarded": 100,
        }
    },
    "loss": {
        "mn-fa": {"probability": 0.3, "trials": [{"completion_s": 1.0}, {"completion_s": 4.0}]},
        "fa-ha": {"probability": 0.3, "trials": [{"completion_s": None}]},
    },
    "nat_loss": {"outage_ms": {"v4-down": 230.0, "v4-up": None}},
    "ha_restart": {"outage_ms": {"v4-down": 700.0, "v6-down": 710.0}},
}


def test_rows_count_what_each_attack_cost() -> None:
    rows = dict(attack_rows(FIGURES))
    spoof = {"sent": 10, "dropped": 10, "kernel drops": 0, "logged": 10, "forwarded": 0}
    assert rows["spoof v4-outer"] == spoof
    assert rows["replay"]["dropped"] == 1 and rows["wrong-key-registration"]["dropped"] == 0  # accepted: 0
    assert rows["flood mixed"] == {
        "sent": 160_000,
        "dropped": 70_000,
        "kernel drops": 90_000,  # the HA namespace's UDP RcvbufErrors
        "logged": 5,
        "forwarded": 100,  # a flood's row: the HA's replies (the reflection)
    }
    assert [label for label, _ in fault_rows(FIGURES)] == ["NAT mapping lost", "HA kill -9 + restart"]


def test_both_plots_are_written_with_or_without_data(tmp_path: Path) -> None:
    for figures, folder in ((FIGURES, tmp_path / "full"), ({}, tmp_path / "empty")):
        paths = render_security_plots(figures, folder)
        assert [path.name for path in paths] == ["attacks.png", "faults.png"]
        assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in paths)
