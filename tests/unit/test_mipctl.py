"""``mipctl`` as a user runs it: a subprocess against a real control server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.runtime.control import ControlServer

ROOT = Path(__file__).resolve().parents[2]


def reject(args: dict[str, Any]) -> Any:
    raise ValueError("no binding for 192.0.2.99")


def crash(args: dict[str, Any]) -> Any:
    raise RuntimeError("secret internals")


async def slow(args: dict[str, Any]) -> Any:
    await asyncio.sleep(30)


HANDLERS: dict[str, Any] = {
    "status": lambda args: {"node": "mn1", "state": "REGISTERED", "args": args},
    "bindings": reject,
    "visitors": crash,
    "register": lambda args: {"sent": True, "args": args},
    "deregister": slow,
    "set-prefixes": lambda args: args,
    "scheduling": lambda args: {"realtime_priority": 10, "state": "on", "error": ""},
}


class ServerThread:
    """A ControlServer on its own event loop in a thread, so subprocess.run can block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.server = ControlServer(path, HANDLERS)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def agent_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mn1.sock"
    with ServerThread(path):
        yield path


def mipctl(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "agents.runtime.mipctl", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in result.stderr
    return result


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_status_prints_pretty_json(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "status")
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout) == {"node": "mn1", "state": "REGISTERED", "args": {}}
    assert result.stdout.startswith("{\n  ")


def test_scheduling_asks_the_agent_for_its_policy(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "--json", "scheduling")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"realtime_priority": 10, "state": "on", "error": ""}


def test_json_flag_prints_one_compact_line(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "status", "--json")
    assert result.returncode == 0
    assert one_line(result.stdout) == '{"node":"mn1","state":"REGISTERED","args":{}}'


def test_key_value_arguments(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "register", "lifetime=300", "hoa=192.0.2.10", "t=true")
    assert result.returncode == 0
    assert json.loads(result.stdout)["args"] == {"lifetime": 300, "hoa": "192.0.2.10", "t": True}


def test_set_prefixes_are_normalised(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "set-prefixes", "2001:DB8:1::/48", "2001:db8:2:0::/64")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"prefixes": ["2001:db8:1::/48", "2001:db8:2::/64"]}


def test_node_name_finds_the_socket_in_the_control_dir(agent_socket: Path) -> None:
    result = mipctl("--node", "mn1", "status", env={"DSMIP_CONTROL_DIR": str(agent_socket.parent)})
    assert result.returncode == 0 and json.loads(result.stdout)["node"] == "mn1"


def test_error_answer_exits_1_with_message_on_stderr(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "bindings")
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result.stderr) == "mipctl: no binding for 192.0.2.99"


def test_internal_error_exits_1(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "visitors")
    assert result.returncode == 1
    assert one_line(result.stderr) == "mipctl: internal error"


def test_unknown_command_via_raw_exits_1(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "raw", '{"command": "solicit"}')
    assert result.returncode == 1
    assert "unknown command 'solicit'" in one_line(result.stderr)


def test_raw_garbage_is_sent_and_refused(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "raw", "{not json")
    assert result.returncode == 1
    assert "not valid JSON" in one_line(result.stderr)


def test_raw_valid_request(agent_socket: Path) -> None:
    result = mipctl("--socket", str(agent_socket), "--json", "raw", '{"command":"status","args":{"x":1}}')
    assert result.returncode == 0
    assert json.loads(result.stdout)["args"] == {"x": 1}


def test_timeout_exits_1(agent_socket: Path) -> None:
    started = time.monotonic()
    result = mipctl("--socket", str(agent_socket), "--timeout", "0.5", "deregister")
    assert result.returncode == 1
    assert one_line(result.stderr) == f"mipctl: no answer from {agent_socket} within 0.5 s"
    assert time.monotonic() - started < 5


def test_missing_socket_exits_2(tmp_path: Path) -> None:
    result = mipctl("--socket", str(tmp_path / "nope.sock"), "status")
    assert result.returncode == 2
    assert "no control socket at" in one_line(result.stderr)


def test_stale_socket_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    result = mipctl("--socket", str(path), "status")
    assert result.returncode == 2
    assert "nobody is listening" in one_line(result.stderr)


def test_agent_hanging_up_without_answer_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "rude.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def hang_up() -> None:
        connection, _ = listener.accept()
        connection.recv(1000)
        connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    result = mipctl("--socket", str(path), "status")
    thread.join(5)
    listener.close()
    assert result.returncode == 1
    assert "closed the connection without answering" in one_line(result.stderr)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((), "required"),
        (("--node", "mn1"), "required: COMMAND"),
        (("status",), "--socket PATH or --node NAME"),
        (("--node", "a", "--socket", "/x", "status"), "not allowed with argument"),
        (("--node", "mn1", "frobnicate"), "invalid choice"),
        (("--node", "mn1", "set-prefixes", "192.0.2.0/24"), "not an IPv6 prefix"),
        (("--node", "mn1", "set-prefixes", "2001:db8::1/48"), "not an IPv6 prefix"),
        (("--node", "mn1", "register", "lifetime"), "expected KEY=VALUE"),
        (("--node", "mn1", "--timeout", "-1", "status"), "timeout must be"),
        (("--node", "mn1", "--timeout", "0", "status"), "more than 0 and at most 3600 seconds, not 0"),
        (("--node", "mn1", "--timeout", "3601", "status"), "at most 3600 seconds, not 3601"),
        (("--node", "mn1", "--timeout", "nan", "status"), "at most 3600 seconds, not nan"),
        (("--node", "mn1", "--timeout", "soon", "status"), "not a number"),
        (("--node", "../x", "status"), "node name"),
        (("--node", "mn1", "raw"), "required: JSON"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv: tuple[str, ...], expected: str) -> None:
    result = mipctl(*argv)
    assert result.returncode == 2 and result.stdout == ""
    assert expected in one_line(result.stderr)


def test_timeout_of_exactly_an_hour_is_accepted(tmp_path: Path) -> None:
    """The upper limit is inclusive: what fails is the missing socket, not the option."""
    result = mipctl("--socket", str(tmp_path / "none.sock"), "--timeout", "3600", "status")
    assert "no control socket" in one_line(result.stderr) and "seconds" not in result.stderr


def test_help_exits_0() -> None:
    result = mipctl("--help")
    assert result.returncode == 0 and "set-prefixes" in result.stdout
