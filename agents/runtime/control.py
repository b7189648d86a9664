"""The agent's control socket: JSON lines over a Unix stream socket.

Protocol (one request line → one answer line, any number per connection)::

    → {"command": "status", "args": {}}
    ← {"ok": true, "result": {...}}
    ← {"ok": false, "error": "unknown command 'x'; known commands: bindings, status"}

Handlers are plain callables ``handler(args: dict) -> JSON-able data`` (an awaitable result is awaited).
ValueError/KeyError from a handler answer ``ok: false`` with their message; any other exception is
logged with its traceback and answers ``"internal error"``. A connection that sends more than
:data:`MAX_REQUEST_BYTES` without a newline gets one error answer and is closed; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agents.runtime.jsonable import dumps_line, to_jsonable

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
CONTROL_DIR_ENV = "DSMIP_CONTROL_DIR"
DEFAULT_CONTROL_DIR = "/run/dsmip"
MAX_SOCKET_PATH_BYTES = 107  # sun_path is 108 bytes including the terminating NUL

Handler = Callable[[dict[str, Any]], Any]
Answer = dict[str, Any]


class ControlSocketError(OSError):
    """The control socket cannot be created (path in use by a live agent, not a socket, too long)."""


def default_control_path(role: str, name: str) -> Path:
    """Where agent ``name`` listens: ``$DSMIP_CONTROL_DIR/<name>.sock`` (default /run/dsmip).

    ``role`` names the socket when ``name`` is empty. Names may not contain '/' or start with '.'.
    """
    stem = name or role
    if not stem or "/" in stem or stem.startswith(".") or "\0" in stem:
        raise ValueError(f"not a usable node name for a control socket: {stem!r}")
    return Path(os.environ.get(CONTROL_DIR_ENV) or DEFAULT_CONTROL_DIR) / f"{stem}.sock"


def ok_answer(result: Any) -> Answer:
    """A successful answer carrying ``result``."""
    return {"ok": True, "result": result}


def error_answer(message: str) -> Answer:
    """A failed answer carrying a one-line ``message``."""
    return {"ok": False, "error": message}


class ControlServer:
    """Serves control requests on a Unix socket and dispatches them to ``handlers``."""

    def __init__(self, path: str | Path, handlers: Mapping[str, Handler] | None = None) -> None:
        self.path = Path(path)
        self._handlers: dict[str, Handler] = dict(handlers or {})
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._socket_identity: tuple[int, int] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def set_handlers(self, handlers: Mapping[str, Handler]) -> None:
        """Replace the command table (e.g. once the agent has finished starting)."""
        self._handlers = dict(handlers)

    @property
    def commands(self) -> list[str]:
        """Known command names, sorted."""
        return sorted(self._handlers)

    async def start(self) -> None:
        """Bind the socket (mode 0600) and start serving; raises ControlSocketError if it cannot."""
        if self._listener is not None:
            raise RuntimeError("control server already started")
        self._listener = _bind_unix_socket(self.path)
        info = os.stat(self.path)
        self._socket_identity = (info.st_dev, info.st_ino)
        self._accept_task = asyncio.get_running_loop().create_task(
            self._accept_connections(self._listener), name=f"control accept {self.path}"
        )
        logger.info("control socket listening on %s", self.path)

    async def close(self) -> None:
        """Stop serving, drop open connections and remove the socket file. Safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        if self._accept_task is not None:
            self._accept_task.cancel()
            await asyncio.gather(self._accept_task, return_exceptions=True)
        listener.close()
        self._remove_socket_file()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        logger.info("control socket %s closed", self.path)

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def dispatch(self, request: Any) -> Answer:
        """Answer one decoded request object (exposed for in-process use and tests)."""
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return error_answer("request must be a JSON object with a string 'command'")
        args = request.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return error_answer("'args' must be a JSON object")
        command: str = request["command"]
        handler = self._handlers.get(command)
        if handler is None:
            known = ", ".join(self.commands) or "(none yet: the agent is starting)"
            return error_answer(f"unknown command {command!r}; known commands: {known}")
        return await _call_handler(command, handler, args)

    async def _accept_connections(self, listener: socket.socket) -> None:
        """Accept clients for ever (until cancelled); each gets its own task.

        Our own loop rather than ``asyncio.start_unix_server``: on Python 3.11 a client accepted just
        before ``Server.close()`` is leaked (an AssertionError inside asyncio) and that client hangs.
        """
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:  # e.g. out of file descriptors: keep the server alive
                logger.error("control socket accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._serve_connection(connection), name="control connection")
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve_connection(self, connection: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(sock=connection, limit=MAX_REQUEST_BYTES)
        except BaseException:
            connection.close()
            raise
        try:
            await self._answer_requests(reader, writer)
        except ConnectionError:
            logger.debug("control client went away")
        except Exception:
            logger.exception("control connection failed")
        finally:
            writer.close()

    async def _answer_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                await _send(writer, error_answer(f"request too large (limit {MAX_REQUEST_BYTES} bytes)"))
                return
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    await _send(writer, await self._answer_line(exc.partial))
                return
            await _send(writer, await self._answer_line(line))

    async def _answer_line(self, line: bytes) -> Answer:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return error_answer(f"request is not valid JSON: {exc}")
        return await self.dispatch(request)

    def _remove_socket_file(self) -> None:
        """Unlink the socket file, but only if it is still the one this server created."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == self._socket_identity:
            self.path.unlink(missing_ok=True)
        else:
            logger.warning("not removing %s: it was replaced by someone else", self.path)


async def _call_handler(command: str, handler: Handler, args: dict[str, Any]) -> Answer:
    try:
        result = handler(args)
        if inspect.isawaitable(result):
            result = await result
        return ok_answer(to_jsonable(result))
    except KeyError as exc:
        return error_answer(str(exc.args[0]) if exc.args else "missing key")
    except ValueError as exc:
        return error_answer(str(exc) or type(exc).__name__)
    except Exception:
        logger.exception("control command %r failed", command)
        return error_answer("internal error")


async def _send(writer: asyncio.StreamWriter, answer: Answer) -> None:
    writer.write(dumps_line(answer).encode() + b"\n")
    await writer.drain()


def _bind_unix_socket(path: Path) -> socket.socket:
    """A listening Unix stream socket at ``path`` with mode 0600, replacing a stale socket file."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise ControlSocketError(f"control socket path is longer than {MAX_SOCKET_PATH_BYTES} bytes: {path}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ControlSocketError(f"cannot create directory {path.parent}: {exc.strerror or exc}") from exc
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window in which the socket is reachable by others
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, 0o600)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ControlSocketError(f"cannot create control socket {path}: {exc.strerror or exc}") from exc
    finally:
        os.umask(old_umask)
    return sock


def _remove_stale_socket(path: Path) -> None:
    """Remove ``path`` if it is a socket nobody listens on; refuse if it is live or not a socket."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError(f"{path} exists and is not a socket; not replacing it")
    if _socket_is_live(path):
        raise ControlSocketError(f"control socket {path} is in use by a running agent; not replacing it")
    logger.info("replacing stale control socket %s", path)
    path.unlink(missing_ok=True)


def _socket_is_live(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        logger.debug("probing %s: %s; treating it as live", path, exc)
        return True
    finally:
        probe.close()
    return True
