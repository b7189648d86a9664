"""``mipctl``: talk to a running agent's control socket.

    mipctl (--socket PATH | --node NAME) [--json] [--timeout S] COMMAND [ARGS]

Commands: ``status``, ``bindings``, ``visitors``, ``register``, ``deregister``, ``solicit``,
``scheduling``, the DHCPv6 ones (each takes optional ``KEY=VALUE`` arguments; a VALUE that parses as
JSON is sent as that JSON value, anything else as a string), ``set-prefixes [PREFIX...]`` (IPv6
prefixes, sent as ``{"prefixes": [...]}``) and
``raw JSON`` (send one request line as given, for debugging).

Exit status: 0 the agent answered ok; 1 it answered with an error, did not answer in time or answered
garbage; 2 usage error, or no agent listening at the socket. Messages are one line on stderr.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from agents.runtime.control import MAX_SOCKET_PATH_BYTES, default_control_path

PROG = "mipctl"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEFAULT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024
KEY_VALUE_COMMANDS = {
    "status": "show the agent's state",
    "bindings": "list the home agent's mobility bindings",
    "visitors": "list the foreign agent's visitors",
    "register": "make the mobile node register now",
    "deregister": "make the mobile node deregister now",
    "solicit": "send an Agent Solicitation now",
    "dhcpv6": "show the mobile node's DHCPv6-PD client (RFC 5454 §3.7.1)",
    "dhcpv6-release": "make the mobile node release its delegated prefix and stop using it",
    "delegations": "list the prefixes Kea delegated, as the home agent reads them",
    "scheduling": "show the agent's real-time scheduling (realtime_priority and whether it holds)",
}


class UsageError(Exception):
    """A mistake on the command line (exit 2)."""


class AgentUnreachable(Exception):
    """No agent listens at the socket path (exit 2)."""


class BadAnswer(Exception):
    """The agent closed the connection or sent something that is not an answer (exit 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``mipctl``."""
    parser = _Parser(prog=PROG, description="Query and drive a running DSMIPv4 agent.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--socket", type=Path, metavar="PATH", help="the agent's control socket")
    target.add_argument("--node", metavar="NAME", help="the agent's node name (socket in /run/dsmip)")
    _add_output_options(parser, argparse.Namespace(json=False, timeout=DEFAULT_TIMEOUT_S))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in KEY_VALUE_COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="extra arguments for the agent")
    prefixes = commands.add_parser("set-prefixes", help="set the IPv6 prefixes the mobile node requests")
    prefixes.add_argument("prefixes", nargs="*", metavar="PREFIX", help="IPv6 prefix, e.g. 2001:db8:1::/48")
    raw = commands.add_parser("raw", help="send one raw JSON request line (debugging)")
    raw.add_argument("request", metavar="JSON")
    for sub in commands.choices.values():
        _add_output_options(sub, None)  # so `mipctl --node x status --json` works too
    return parser


def _add_output_options(parser: argparse.ArgumentParser, defaults: argparse.Namespace | None) -> None:
    """--json and --timeout; on subcommands their default is "not given" so the top level's stands."""
    json_default = defaults.json if defaults else argparse.SUPPRESS
    timeout_default = defaults.timeout if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--json", action="store_true", default=json_default, help="print compact JSON, not indented"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=timeout_default,
        metavar="S",
        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT_S:g})",
    )


MAX_TIMEOUT_S = 3600.0
"""The longest --timeout: an hour (longer is a typo, not a wait)."""


def _positive_seconds(text: str) -> float:
    """--timeout: seconds, 0 < S <= :data:`MAX_TIMEOUT_S`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, not {text}"
        )
    return value


def socket_path(options: argparse.Namespace) -> Path:
    """The socket named by ``--socket`` or derived from ``--node``."""
    if options.socket is not None:
        return Path(options.socket)
    if options.node is not None:
        try:
            return default_control_path("", options.node)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    raise UsageError("say which agent: --socket PATH or --node NAME")


def request_line(options: argparse.Namespace) -> bytes:
    """The request to send, as one line of bytes ending in a newline."""
    if options.command == "raw":
        return _raw_line(options.request)
    if options.command == "set-prefixes":
        args: dict[str, Any] = {"prefixes": [_ipv6_prefix(text) for text in options.prefixes]}
    else:
        args = dict(_key_value(pair) for pair in options.pairs)
    return json.dumps({"command": options.command, "args": args}).encode() + b"\n"


def _raw_line(text: str) -> bytes:
    try:
        compact = json.dumps(json.loads(text), separators=(",", ":"))
    except json.JSONDecodeError:
        compact = " ".join(text.splitlines())  # sent as is: the agent's answer says what is wrong
    return compact.encode() + b"\n"


def _ipv6_prefix(text: str) -> str:
    try:
        return str(ipaddress.IPv6Network(text, strict=True))
    except ValueError as exc:
        raise UsageError(f"not an IPv6 prefix: {text!r} ({exc})") from None


def _key_value(pair: str) -> tuple[str, Any]:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise UsageError(f"expected KEY=VALUE, got {pair!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def send_request(path: Path, line: bytes, timeout: float) -> dict[str, Any]:
    """Send one request line to the agent at ``path`` and return its decoded answer."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise AgentUnreachable(f"socket path is too long for a Unix socket: {path}")
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        _connect(sock, path)
        sock.sendall(line)
        return _decode_answer(_read_line(sock, deadline))


def _connect(sock: socket.socket, path: Path) -> None:
    try:
        sock.connect(os.fspath(path))
    except FileNotFoundError:
        raise AgentUnreachable(f"no control socket at {path} (is the agent running?)") from None
    except ConnectionRefusedError:
        raise AgentUnreachable(f"nobody is listening on {path} (agent stopped? stale socket)") from None
    except PermissionError:
        raise AgentUnreachable(f"permission denied on {path} (run as the agent's user, e.g. root)") from None
    except TimeoutError:
        raise
    except OSError as exc:
        raise AgentUnreachable(f"cannot connect to {path}: {exc.strerror or exc}") from None


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    received = bytearray()
    while b"\n" not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise BadAnswer("the agent closed the connection without answering")
        received += chunk
        if len(received) > MAX_ANSWER_BYTES:
            raise BadAnswer(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    return bytes(received.split(b"\n", 1)[0])


def _decode_answer(line: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadAnswer(f"the agent's answer is not JSON: {line[:80]!r}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise BadAnswer(f"the agent's answer has no 'ok' field: {line[:80]!r}")
    return answer


def print_answer(answer: dict[str, Any], compact: bool) -> int:
    """Print the result (stdout) or the error (stderr); return the exit code."""
    if not answer["ok"]:
        _complain(str(answer.get("error", "the agent reported an error without a message")))
        return EXIT_ERROR
    result = answer.get("result")
    if compact:
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(result, indent=2, ensure_ascii=False)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # e.g. `mipctl ... | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _complain(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mipctl`` console script; returns the exit code."""
    try:
        options = build_parser().parse_args(argv)
        path = socket_path(options)
        line = request_line(options)
    except UsageError as exc:
        _complain(f"error: {exc} (see {PROG} --help)")
        return EXIT_USAGE
    try:
        answer = send_request(path, line, options.timeout)
    except AgentUnreachable as exc:
        _complain(str(exc))
        return EXIT_USAGE
    except TimeoutError:
        _complain(f"no answer from {path} within {options.timeout:g} s")
        return EXIT_ERROR
    except (BadAnswer, OSError) as exc:
        _complain(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return print_answer(answer, options.json)


if __name__ == "__main__":
    raise SystemExit(main())
