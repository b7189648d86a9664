"""Pure parts of the VM work (issue 15): the netem options and where their qdiscs go, the start-wait
scale for slow (emulated) machines, the netem sweep's decomposition. No root."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.netem_sweep import decompose, rtts
from scenarios.harness.options import add_netem_options, home_netem
from topologies.dualstack import DualStackTopo
from topologies.nodes import START_SCALE_ENV, start_scale


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_netem_options(parser)
    return parser.parse_args(list(argv))


def test_no_netem_unless_asked() -> None:
    assert home_netem(parse()) is None
    assert DualStackTopo().netem_links == []


def test_rtt_is_split_between_the_two_directions_and_loss_applies_to_each() -> None:
    assert home_netem(parse("--ha-rtt", "50")) == "delay 25ms"
    assert home_netem(parse("--ha-rtt", "20", "--ha-loss", "1.5")) == "delay 10ms loss 1.5%"
    assert home_netem(parse("--ha-loss", "2")) == "loss 2%"


@pytest.mark.parametrize("argv", [("--ha-rtt", "-1"), ("--ha-rtt", "x"), ("--ha-loss", "101")])
def test_bad_netem_values_are_refused(argv: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse(*argv)
    assert stop.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_netem_goes_on_both_ends_of_the_home_uplink_only() -> None:
    topo = DualStackTopo(home_netem="delay 10ms", tag="t1")
    assert topo.netem_links == [("r0", "r0-home", "delay 10ms"), ("dst1home", "dst1home-r0", "delay 10ms")]
    # the bridge port is one of the root-namespace names the topology owns (and checks before building)
    assert "dst1home-r0" in topo.rootInterfaces()


def test_start_scale() -> None:
    assert start_scale({}) == 1.0
    assert start_scale({START_SCALE_ENV: " 5 "}) == 5.0
    for bad in ("0.5", "21", "fast"):
        with pytest.raises(ValueError, match=START_SCALE_ENV):
            start_scale({START_SCALE_ENV: bad})


def row(to: str, detected: float, rtt: float, accepted: float, up: float, cut: float) -> dict[str, object]:
    flows = {f"{flow}_interruption_ms": cut for flow in ("v4-down", "v4-up", "v6-down", "v6-up")}
    return {
        "to": to,
        "movement_detected_ms": detected,
        "registration_rtt_ms": rtt,
        "registration_accepted_ms": accepted,
        "tunnel_up_ms": up,
        **flows,
    }


def test_sweep_decomposition_uses_the_moves_to_a_foreign_agent() -> None:
    rows = [
        row("fa1", 10.0, 25.0, 40.0, 42.0, 50.0),
        row("fa2", 12.0, 27.0, 45.0, 49.0, 60.0),
        row("home", 5.0, 1.0, 8.0, 9.0, 500.0),  # not through the uplink: left out
    ]
    parts = decompose(rows)
    assert parts["moves"] == 2
    assert parts["detection_ms"] == 11.0
    assert parts["registration_rtt_ms"] == 26.0
    assert parts["datapath_update_ms"] == 3.0
    assert parts["predicted_ms"] == 40.0  # median of 10+25+2 and 12+27+4
    assert parts["measured_ms"]["v6-up"] == 55.0


def test_sweep_rtts_option() -> None:
    assert rtts("0,20, 50") == [0.0, 20.0, 50.0]
    for bad in ("", "a,b", "-5", "20000"):
        with pytest.raises(argparse.ArgumentTypeError):
            rtts(bad)


def test_namespace_snapshots_ignore_only_the_kernels_fallback_tunnels() -> None:
    from tests.netns.conftest import without_fallback_devices

    links = "lo: <LOOPBACK>\nsit0@NONE: <NOARP> mtu 1480\ntunl0@NONE: <NOARP>\nmip0: <UP>\n"
    assert without_fallback_devices(links) == "lo: <LOOPBACK>\nmip0: <UP>\n"
    addresses = "1: lo  inet 127.0.0.1/8\n3: sit0  inet6 ::192.0.2.1/96\n4: mip0  inet 192.0.2.100/32\n"
    assert without_fallback_devices(addresses) == "1: lo  inet 127.0.0.1/8\n4: mip0  inet 192.0.2.100/32\n"
    # a device of ours named like a fallback one but not one of them stays
    assert without_fallback_devices("sit0x: <UP>\n") == "sit0x: <UP>\n"


def test_handoff_waits_scale_with_the_start_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under emulation one pre-registration round trip takes 0.7–1.6 s: the harness's wait for it (and the
    announced time to the move, the FA's expectation, the bicast overlap) must grow with the scale, or the
    harness moves before the pre-registration is in place (the VM's make-before-break and pre failures)."""
    from scenarios.handoff import PRE_TIMEOUT, scaled

    monkeypatch.delenv(START_SCALE_ENV, raising=False)
    assert scaled(PRE_TIMEOUT) == PRE_TIMEOUT
    monkeypatch.setenv(START_SCALE_ENV, "5")
    assert scaled(PRE_TIMEOUT) == 5 * PRE_TIMEOUT


def test_a_control_request_may_take_its_own_timeout_plus_the_scaled_reply_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Testbed.ask`` gives the agent the command's own ``timeout`` (wait-pre-ready) on top of 5 s times the
    scale before it calls the request lost."""
    import scenarios.harness.testbed as testbed

    seen: list[float] = []

    def fake_send(path: object, line: bytes, timeout: float) -> dict[str, object]:
        seen.append(timeout)
        return {"ok": True, "result": {}}

    class Run:
        def control(self, node: str) -> str:
            return f"/nonexistent/{node}.sock"

    monkeypatch.setattr(testbed, "send_request", fake_send)
    bed = testbed.Testbed.__new__(testbed.Testbed)
    bed.run = Run()  # type: ignore[assignment]
    monkeypatch.setenv(START_SCALE_ENV, "4")
    bed.ask("mn1", "wait-pre-ready", timeout=6.0)
    bed.ask("mn1", "status")
    assert seen == [26.0, 20.0]
