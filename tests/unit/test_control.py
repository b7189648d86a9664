"""The control server over real Unix sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agents.runtime.control import (
    MAX_REQUEST_BYTES,
    ControlServer,
    ControlSocketError,
    default_control_path,
)

TIMEOUT = 5.0


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    path = tmp_path / "c.sock"
    assert len(os.fsencode(path)) < 100, "tmp_path too long for AF_UNIX"
    return path


def bad_value(args: dict[str, Any]) -> Any:
    raise ValueError(f"no binding for {args.get('hoa')}")


def bad_key(args: dict[str, Any]) -> Any:
    return args["hoa"]


def crash(args: dict[str, Any]) -> Any:
    raise RuntimeError("secret internals")


async def later(args: dict[str, Any]) -> Any:
    await asyncio.sleep(0)
    return "later"


HANDLERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "status": lambda args: {"node": "ha1", "bindings": 0},
    "echo": lambda args: args,
    "address": lambda args: ipaddress.IPv4Address("192.0.2.1"),
    "bad-value": bad_value,
    "bad-key": bad_key,
    "crash": crash,
    "later": later,
}


def serve(path: Path, body: Callable[[ControlServer], Awaitable[None]], handlers: Any = None) -> None:
    """Run ``body`` against a started server, with a global timeout so a bug cannot hang the suite."""

    async def main() -> None:
        async with ControlServer(path, HANDLERS if handlers is None else handlers) as server:
            await body(server)

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


async def ask_lines(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw lines on one connection and read one answer per line."""
    reader, writer = await asyncio.open_unix_connection(os.fspath(path))
    try:
        answers = []
        for line in lines:
            writer.write(line)
            await writer.drain()
            answers.append(json.loads(await reader.readline()))
        return answers
    finally:
        writer.close()
        await writer.wait_closed()


async def ask(path: Path, command: str, **args: Any) -> dict[str, Any]:
    line = json.dumps({"command": command, "args": args}).encode() + b"\n"
    (answer,) = await ask_lines(path, line)
    return answer


def test_round_trip_and_args(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        assert await ask(sock_path, "status") == {"ok": True, "result": {"node": "ha1", "bindings": 0}}
        assert await ask(sock_path, "echo", hoa="192.0.2.10", lifetime=5) == {
            "ok": True,
            "result": {"hoa": "192.0.2.10", "lifetime": 5},
        }
        assert await ask(sock_path, "address") == {"ok": True, "result": "192.0.2.1"}
        assert await ask(sock_path, "later") == {"ok": True, "result": "later"}

    serve(sock_path, body)


def test_several_requests_on_one_connection(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        answers = await ask_lines(
            sock_path, b'{"command": "status"}\n', b'{"command": "echo", "args": {"n": 2}}\n'
        )
        assert [a["ok"] for a in answers] == [True, True]
        assert answers[1]["result"] == {"n": 2}

    serve(sock_path, body)


def test_handler_errors(sock_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(server: ControlServer) -> None:
        assert await ask(sock_path, "bad-value", hoa="192.0.2.9") == {
            "ok": False,
            "error": "no binding for 192.0.2.9",
        }
        assert await ask(sock_path, "bad-key") == {"ok": False, "error": "hoa"}
        with caplog.at_level(logging.ERROR, logger="agents.runtime.control"):
            assert await ask(sock_path, "crash") == {"ok": False, "error": "internal error"}
        assert await ask(sock_path, "status") == {"ok": True, "result": {"node": "ha1", "bindings": 0}}

    serve(sock_path, body)
    assert any("crash" in r.getMessage() and r.exc_info for r in caplog.records)


def test_unknown_command_names_the_known_ones(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        answer = await ask(sock_path, "frobnicate")
        assert answer["ok"] is False
        assert "'frobnicate'" in answer["error"]
        assert "bad-key, bad-value, crash, echo, later, status" in answer["error"]

    serve(sock_path, body, handlers={k: v for k, v in HANDLERS.items() if k != "address"})


def test_no_handlers_yet_says_starting(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        assert "starting" in (await ask(sock_path, "status"))["error"]
        server.set_handlers({"status": lambda args: "up"})
        assert await ask(sock_path, "status") == {"ok": True, "result": "up"}

    serve(sock_path, body, handlers={})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"not json\n", "not valid JSON"),
        (b"\xff\xfe\n", "not valid JSON"),
        (b"\n", "not valid JSON"),
        (b"[1, 2]\n", "JSON object with a string 'command'"),
        (b'{"command": 7}\n', "JSON object with a string 'command'"),
        (b'{"command": "echo", "args": [1]}\n', "'args' must be a JSON object"),
    ],
)
def test_bad_requests_get_an_error_answer(sock_path: Path, line: bytes, expected: str) -> None:
    async def body(server: ControlServer) -> None:
        bad, good = await ask_lines(sock_path, line, b'{"command": "status"}\n')
        assert bad["ok"] is False and expected in bad["error"]
        assert good["ok"] is True

    serve(sock_path, body)


def test_request_without_final_newline_is_answered(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        reader, writer = await asyncio.open_unix_connection(os.fspath(sock_path))
        writer.write(b'{"command": "status"}')
        writer.write_eof()
        assert json.loads(await reader.readline())["ok"] is True
        writer.close()

    serve(sock_path, body)


def padded_request(total_length: int) -> bytes:
    """A valid echo request of exactly ``total_length`` bytes before the newline."""
    skeleton = b'{"command":"echo","args":{"pad":""}}'
    pad = b"x" * (total_length - len(skeleton))
    return skeleton.replace(b'""', b'"' + pad + b'"') + b"\n"


def test_request_of_exactly_the_limit_is_accepted(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        (answer,) = await ask_lines(sock_path, padded_request(MAX_REQUEST_BYTES))
        assert answer["ok"] is True and len(answer["result"]["pad"]) > 60000

    serve(sock_path, body)


def test_oversize_request_is_refused_and_server_keeps_serving(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        reader, writer = await asyncio.open_unix_connection(os.fspath(sock_path))
        writer.write(padded_request(MAX_REQUEST_BYTES + 1))
        answer = json.loads(await reader.readline())
        assert answer["ok"] is False and "too large" in answer["error"]
        assert await reader.read() == b""  # the server hung up
        writer.close()
        assert (await ask(sock_path, "status"))["ok"] is True

    serve(sock_path, body)


def test_garbage_does_not_kill_the_server(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        for seed in range(20):
            blob = os.urandom(2000 + 997 * seed)
            _, writer = await asyncio.open_unix_connection(os.fspath(sock_path))
            writer.write(blob)
            writer.close()  # hang up mid-request, possibly with answers unread
        big = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        big.connect(os.fspath(sock_path))
        big.sendall(b"\x00" * (3 * MAX_REQUEST_BYTES))
        big.close()
        assert (await ask(sock_path, "status"))["ok"] is True

    serve(sock_path, body)


def test_concurrent_clients(sock_path: Path) -> None:
    release = asyncio.Event()

    async def wait_for_release(args: dict[str, Any]) -> str:
        await release.wait()
        return "released"

    async def body(server: ControlServer) -> None:
        blocked = asyncio.ensure_future(ask(sock_path, "wait"))
        answers = await asyncio.gather(*(ask(sock_path, "echo", client=n) for n in range(25)))
        assert [a["result"]["client"] for a in answers] == list(range(25))
        assert not blocked.done()  # one slow client does not hold up the others
        release.set()
        assert (await blocked)["result"] == "released"

    serve(sock_path, body, handlers={**HANDLERS, "wait": wait_for_release})


def test_socket_is_private_and_removed_on_close(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        mode = os.stat(sock_path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600

    serve(sock_path, body)
    assert not sock_path.exists()


def test_close_is_idempotent_and_does_not_wait_for_idle_clients(sock_path: Path) -> None:
    async def main() -> None:
        server = ControlServer(sock_path, HANDLERS)
        await server.start()
        reader, writer = await asyncio.open_unix_connection(os.fspath(sock_path))
        await server.close()
        await server.close()
        assert await reader.read() == b""
        writer.close()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert not sock_path.exists()


def test_stale_socket_file_is_replaced(sock_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(sock_path))
    stale.close()  # the file stays, nobody listens: what a killed agent leaves behind
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)

    async def body(server: ControlServer) -> None:
        assert (await ask(sock_path, "status"))["ok"] is True

    serve(sock_path, body)


def test_live_socket_is_not_taken_over(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        with pytest.raises(ControlSocketError, match="in use by a running agent"):
            await ControlServer(sock_path, {}).start()
        assert (await ask(sock_path, "status"))["ok"] is True  # the first server is untouched

    serve(sock_path, body)


def test_regular_file_is_not_replaced(sock_path: Path) -> None:
    sock_path.write_text("precious")

    async def main() -> None:
        with pytest.raises(ControlSocketError, match="not a socket"):
            await ControlServer(sock_path, {}).start()

    asyncio.run(main())
    assert sock_path.read_text() == "precious"


def test_replaced_socket_file_is_not_removed(sock_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        sock_path.unlink()
        sock_path.write_text("someone else's")

    serve(sock_path, body)
    assert sock_path.read_text() == "someone else's"


def test_too_long_path_is_a_clear_error(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(ControlSocketError, match="longer than 107 bytes"):
            await ControlServer(tmp_path / ("x" * 120), {}).start()

    asyncio.run(main())


def test_missing_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "run" / "d.sock"

    async def body(server: ControlServer) -> None:
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700

    serve(path, body)


def test_default_control_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSMIP_CONTROL_DIR", raising=False)
    assert default_control_path("mn", "mn1") == Path("/run/dsmip/mn1.sock")
    assert default_control_path("ha", "") == Path("/run/dsmip/ha.sock")
    monkeypatch.setenv("DSMIP_CONTROL_DIR", "/tmp/ctl")
    assert default_control_path("fa", "fa2") == Path("/tmp/ctl/fa2.sock")


@pytest.mark.parametrize("name", ["../etc/x", "a/b", ".hidden"])
def test_default_control_path_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError, match="node name"):
        default_control_path("mn", name)
