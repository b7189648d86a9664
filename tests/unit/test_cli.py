"""``python -m agents``: argument errors, the role registry and the READY / signal / cleanup frame."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.runtime import cli
from agents.runtime.control import Handler
from agents.runtime.frame import AgentContext

ROOT = Path(__file__).resolve().parents[2]


class ConfigError(Exception):
    """Stands in for agents.runtime.configfile.ConfigError (deliberately not a ValueError)."""


@dataclass(frozen=True)
class DummyConfig:
    name: str
    start: str = "ok"
    cleanup: str = "ok"
    events_file: str = ""


class DummyRunner:
    """A role runner that does nothing but record what the frame makes it do."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def load_config(self, path: Path) -> DummyConfig:
        with open(path, "rb") as file:
            data = tomllib.load(file)
        if "colour" in data:
            raise ValueError("unknown key 'colour'")
        if "bad" in data:
            raise ConfigError("[agent] bad: must be a number")
        if "bug" in data:
            raise RuntimeError("loader bug")
        return DummyConfig(**data)

    def node_name(self, config: DummyConfig) -> str:
        return config.name

    async def start(self, config: DummyConfig, context: AgentContext) -> Mapping[str, Handler]:
        self.record(config, "start")
        context.cleanup_timeout = 0.2
        if config.start != "wait-for-signal":  # a broken frame fails the test instead of hanging it
            context.loop.call_later(10, self.watchdog, config, context)
        context.on_shutdown(lambda: self.record(config, "cleanup sync"), name="sync")
        context.on_shutdown(lambda: self.async_cleanup(config, context), name="async")
        await self.misbehave(config, context)
        context.trace.emit("dummy_started", mode=config.start)
        return {"status": lambda args: {"node": context.node, "role": context.args.role}}

    async def misbehave(self, config: DummyConfig, context: AgentContext) -> None:
        if config.start == "value-error":
            raise ValueError("home_address 192.0.2.300 is not an IPv4 address")
        if config.start == "multi-line":
            raise ValueError("bad [ha] section:\n  lifetime: must be > 0\n")
        if config.start == "os-error":
            raise PermissionError("cannot open raw socket: Operation not permitted")
        if config.start == "crash":
            raise ZeroDivisionError("division by zero")
        if config.start == "hang":
            await asyncio.Event().wait()
        if config.start == "task-crash":
            context.create_task(self.crash_later(), name="receiver")
        if config.start == "self-term":
            context.create_task(self.query_then_terminate(context, signal.SIGTERM), name="probe")
        if config.start == "self-int":
            context.create_task(self.query_then_terminate(context, signal.SIGINT), name="probe")

    async def async_cleanup(self, config: DummyConfig, context: AgentContext) -> None:
        if config.cleanup == "slow":
            await asyncio.sleep(30)
        if config.cleanup == "fail":
            raise OSError("route already gone")
        await asyncio.sleep(0)
        self.record(config, "cleanup async")

    async def crash_later(self) -> None:
        await asyncio.sleep(0.05)
        raise ConnectionResetError("raw socket died")

    async def query_then_terminate(self, context: AgentContext, signum: signal.Signals) -> None:
        await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_unix_connection(os.fspath(context.control_path))
        writer.write(b'{"command": "status"}\n')
        self.events.append("answer " + (await reader.readline()).decode().strip())
        writer.close()
        os.kill(os.getpid(), signum)

    def watchdog(self, config: DummyConfig, context: AgentContext) -> None:
        self.record(config, "watchdog fired")
        context.request_shutdown("test watchdog")

    def record(self, config: DummyConfig, event: str) -> None:
        self.events.append(event)
        if config.events_file:
            with open(config.events_file, "a") as file:
                file.write(event + "\n")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> DummyRunner:
    dummy = DummyRunner()
    monkeypatch.setattr(cli, "ROLES", {"ha": dummy})
    return dummy


def write_config(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return path


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def run_main(tmp_path: Path, *extra: str, **config: str) -> int:
    path = write_config(tmp_path, **config)
    control = tmp_path / "ctl.sock"
    return cli.main(["ha", "--config", str(path), "--control", str(control), *extra])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "the following arguments are required: role, --config"),
        (["ha"], "the following arguments are required: --config"),
        (["xx", "--config", "a.toml"], "invalid choice: 'xx'"),
        (["ha", "--config", "a.toml", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], expected: str, capsys: Any) -> None:
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err).startswith("error: ") and expected in err


def test_role_without_runner_is_not_available_yet(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(cli, "ROLES", {})
    monkeypatch.setattr(cli, "_register_roles", lambda: None)  # every known role has a runner now
    assert cli.main(["fa", "--config", "x.toml"]) == 2
    assert one_line(capsys.readouterr().err) == (
        "error: role 'fa' is not available yet: no runner is registered for it"
    )


@pytest.mark.parametrize("argv", [[], ["ha", "--config", "/nonexistent/ha.toml"], ["zz", "--config", "x"]])
def test_module_entry_point_exits_2_without_traceback(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents", *argv], cwd=ROOT, capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 2 and result.stdout == ""
    assert one_line(result.stderr).startswith("error: ")


def test_check_accepts_a_good_config(runner: DummyRunner, tmp_path: Path, capsys: Any) -> None:
    assert run_main(tmp_path, "--check", name="ha1") == 0
    assert one_line(capsys.readouterr().out) == f"{tmp_path / 'agent.toml'}: ok (ha ha1)"
    assert runner.events == []  # nothing was started


def test_node_name_defaults_to_the_config_file_stem(runner: DummyRunner, tmp_path: Path, capsys: Any) -> None:
    assert run_main(tmp_path, "--check", name="") == 0
    assert one_line(capsys.readouterr().out).endswith(": ok (ha agent)")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"name": "ha1", "colour": "red"}, "error: unknown key 'colour'"),
        ({"name": "ha1", "bad": "x"}, "error: [agent] bad: must be a number"),
    ],
)
def test_check_rejects_a_bad_config(
    runner: DummyRunner, tmp_path: Path, capsys: Any, values: dict[str, str], expected: str
) -> None:
    assert run_main(tmp_path, "--check", **values) == 2
    out, err = capsys.readouterr()
    assert out == "" and one_line(err).startswith(expected)


def test_missing_or_unparsable_config_exits_2(runner: DummyRunner, tmp_path: Path, capsys: Any) -> None:
    assert cli.main(["ha", "--config", str(tmp_path / "none.toml")]) == 2
    assert one_line(capsys.readouterr().err) == f"error: {tmp_path / 'none.toml'}: No such file or directory"
    (tmp_path / "broken.toml").write_text("name = \n")
    assert cli.main(["ha", "--config", str(tmp_path / "broken.toml"), "--check"]) == 2
    assert one_line(capsys.readouterr().err).startswith("error: ")


def test_loader_bug_is_internal_error_exit_1(runner: DummyRunner, tmp_path: Path, capsys: Any) -> None:
    assert run_main(tmp_path, "--check", name="ha1", bug="1") == 1
    assert "internal error: RuntimeError: loader bug" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("mode", ["self-term", "self-int"])
def test_ready_then_signal_runs_cleanups_and_exits_0(
    runner: DummyRunner, tmp_path: Path, capsys: Any, mode: str
) -> None:
    trace = tmp_path / "trace.jsonl"
    assert run_main(tmp_path, "--trace", str(trace), name="ha1", start=mode) == 0
    assert capsys.readouterr().out == "READY\n"
    assert runner.events == [
        "start",
        'answer {"ok":true,"result":{"node":"ha1","role":"ha"}}',
        "cleanup async",
        "cleanup sync",
    ]
    assert not (tmp_path / "ctl.sock").exists()
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [line["event"] for line in lines] == [
        "agent_start",
        "dummy_started",
        "agent_ready",
        "agent_stop",
        "agent_exit",
    ]
    assert {line["node"] for line in lines} == {"ha1"}
    expected_signal = "SIGTERM" if mode == "self-term" else "SIGINT"
    assert lines[3]["reason"] == f"received {expected_signal}" and lines[4]["code"] == 0


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("value-error", 2, "error: home_address 192.0.2.300 is not an IPv4 address"),
        ("multi-line", 2, "error: bad [ha] section:; lifetime: must be > 0"),
        ("os-error", 1, "error: cannot open raw socket: Operation not permitted"),
        ("crash", 1, "error: internal error during start-up: ZeroDivisionError: division by zero"),
    ],
)
def test_start_failure_cleans_up_and_reports_one_line(
    runner: DummyRunner, tmp_path: Path, capsys: Any, mode: str, code: int, message: str
) -> None:
    assert run_main(tmp_path, name="ha1", start=mode) == code
    out, err = capsys.readouterr()
    assert out == ""  # never READY
    assert one_line(err).startswith(message)
    assert runner.events == ["start", "cleanup async", "cleanup sync"]
    assert not (tmp_path / "ctl.sock").exists()


def test_crashed_task_stops_the_agent_with_exit_1(runner: DummyRunner, tmp_path: Path, capsys: Any) -> None:
    assert run_main(tmp_path, name="ha1", start="task-crash") == 1
    assert capsys.readouterr().out == "READY\n"
    assert runner.events == ["start", "cleanup async", "cleanup sync"]


@pytest.mark.parametrize("cleanup", ["slow", "fail"])
def test_failing_cleanup_gives_exit_1_but_others_still_run(
    runner: DummyRunner, tmp_path: Path, cleanup: str
) -> None:
    assert run_main(tmp_path, name="ha1", start="self-term", cleanup=cleanup) == 1
    assert runner.events[-1] == "cleanup sync"
    # Neither async cleanup finished: the failing one raised, the slow one (30 s) was abandoned at the
    # cleanup deadline (0.2 s here) instead of being waited for.
    assert "cleanup async" not in runner.events, runner.events


def test_signal_during_start_abandons_it(runner: DummyRunner, tmp_path: Path, capsys: Any) -> None:
    loop_policy = asyncio.get_event_loop_policy()
    original = loop_policy.new_event_loop

    def loop_that_sends_sigterm() -> asyncio.AbstractEventLoop:
        loop = original()
        loop.call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)
        return loop

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop_policy, "new_event_loop", loop_that_sends_sigterm)
        assert run_main(tmp_path, name="ha1", start="hang") == 0
    assert capsys.readouterr().out == ""
    assert runner.events == ["start", "cleanup async", "cleanup sync"]


def test_control_socket_in_use_exits_1(runner: DummyRunner, tmp_path: Path, capsys: Any) -> None:
    import socket

    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(tmp_path / "ctl.sock"))
    live.listen(1)
    try:
        assert run_main(tmp_path, name="ha1") == 1
    finally:
        live.close()
    out, err = capsys.readouterr()
    assert out == "" and "in use by a running agent" in one_line(err)
    assert runner.events == []


SUBPROCESS_AGENT = """
import sys
from agents.runtime import cli
from tests.unit.test_cli import DummyRunner
cli.ROLES["ha"] = DummyRunner()
raise SystemExit(cli.main(sys.argv[1:]))
"""


def test_real_process_ready_mipctl_sigterm(tmp_path: Path) -> None:
    events = tmp_path / "events.txt"
    config = write_config(tmp_path, name="ha1", events_file=str(events), start="wait-for-signal")
    control = tmp_path / "ctl.sock"
    argv = ["ha", "--config", str(config), "--control", str(control)]
    agent = subprocess.Popen(
        [sys.executable, "-c", SUBPROCESS_AGENT, *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline() == "READY\n"
        status = subprocess.run(
            [sys.executable, "-m", "agents.runtime.mipctl", "--socket", str(control), "--json", "status"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert status.returncode == 0 and json.loads(status.stdout) == {"node": "ha1", "role": "ha"}
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=20)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, err
    assert out == "" and "Traceback" not in err
    assert events.read_text().splitlines() == ["start", "cleanup async", "cleanup sync"]
    assert not control.exists()


ROLE_CONFIGS = {
    "ha": """[home_agent]
address = "192.0.2.1"
home_network = "192.0.2.0/24"
[[home_agent.mobile_nodes]]
home_address = "192.0.2.10"
spi = 256
key = "00112233445566778899aabbccddeeff"
[runtime]
name = "ha-cli-test"
tunnel_interface = "dsm-cli-t0"
""",
    "mn": """[mobile_node]
home_address = "192.0.2.10"
home_agent = "192.0.2.1"
spi = 256
key = "00112233445566778899aabbccddeeff"
[runtime]
name = "mn-cli-test"
tunnel_interface = "dsm-cli-t0"
""",
}


@pytest.mark.parametrize(
    ("role", "runtime", "expected"),
    [
        (
            "ha",
            'home_interface = "dsm-absent0"',
            "error: runtime.home_interface: no network interface 'dsm-absent0' here "
            "(set runtime.home_interface)",
        ),
        ("ha", 'home_interface = "lo"', "error: runtime.home_interface: 'lo' is a loopback interface;"),
        ("ha", "", "error: runtime.home_interface: missing; name the home agent's home link"),
        (
            "mn",
            'interface = "dsm-absent0"',
            "error: runtime.interface: no network interface 'dsm-absent0' here (set runtime.interface)",
        ),
        ("mn", 'interface = "lo"', "error: runtime.interface: 'lo' is a loopback interface;"),
        ("mn", 'care_of = "127.0.0.1"', "runtime: care_of 127.0.0.1: a care-of address must be a unicast"),
    ],
)
def test_unusable_interface_is_a_one_line_exit_2(
    role: str, runtime: str, expected: str, tmp_path: Path, capsys: Any
) -> None:
    """An HA without a usable home link (RFC 5944 §4.6) or an MN whose care-of address would be loopback
    (RFC 5944 §3.6) is a configuration error: one line naming the key, exit 2, nothing created; so is an HA
    config without ``home_interface`` (no ``eth0`` guessed, issue 16)."""
    path = tmp_path / f"{role}.toml"
    path.write_text(ROLE_CONFIGS[role] + runtime + "\n")
    # Bounded: a regression would run the agent until a signal; SIGTERM makes it clean up and exit 0.
    watchdog = threading.Timer(15.0, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        code = cli.main([role, "--config", str(path), "--control", str(tmp_path / "ctl.sock")])
    finally:
        watchdog.cancel()
    err = one_line(capsys.readouterr().err)
    assert code == 2 and expected in err and err.startswith("error: "), err
    assert "internal error" not in err
