"""``python -m agents ROLE --config FILE [--check] [--trace FILE] [--control PATH] [-v]``.

Parses the command line, configures logging (stderr; ``-v`` for debug) and hands over to the role's
runner from :data:`ROLES` inside the frame of :mod:`agents.runtime.frame`. Usage errors, unknown roles
and roles without a runner yet exit 2 with a single ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from agents.runtime.frame import EXIT_FAILURE, EXIT_USAGE, AgentArgs, RoleRunner, print_error, run_agent

logger = logging.getLogger(__name__)

PROG = "python -m agents"
KNOWN_ROLES = ("ha", "fa", "mn")
LOG_FORMAT = "%(asctime)s %(levelname)s {role} %(name)s: %(message)s"

# Role name → runner. Filled in by the role modules' authors, e.g.
#   ROLES["ha"] = HomeAgentRunner()   (see RoleRunner in agents/runtime/frame.py)
ROLES: dict[str, RoleRunner[Any]] = {}


class UsageError(Exception):
    """A command-line mistake; reported as one line, exit 2."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python -m agents``."""
    roles = sorted(set(KNOWN_ROLES) | set(ROLES))
    parser = OneLineArgumentParser(
        prog=PROG, description="Run a Mobile IPv4 / DSMIPv4 agent (home agent, foreign agent, mobile node)."
    )
    parser.add_argument("role", choices=roles, help="which agent to run")
    parser.add_argument("--config", required=True, type=Path, metavar="FILE", help="the agent's TOML config")
    parser.add_argument("--check", action="store_true", help="validate the config and exit (0 ok, 2 bad)")
    parser.add_argument("--trace", type=Path, metavar="FILE", help="append JSON-lines trace events here")
    parser.add_argument(
        "--control", type=Path, metavar="PATH", help="control socket path (default /run/dsmip/NAME.sock)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def parse_args(argv: Sequence[str] | None) -> AgentArgs:
    """Turn the command line into :class:`AgentArgs`; raises UsageError."""
    namespace = build_parser().parse_args(argv)
    return AgentArgs(
        role=namespace.role,
        config=namespace.config,
        check=namespace.check,
        trace=namespace.trace,
        control=namespace.control,
        verbose=namespace.verbose,
    )


def configure_logging(role: str, verbose: bool) -> None:
    """Log to stderr (unless logging is already configured), at DEBUG with ``-v``, else INFO."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level, format=LOG_FORMAT.format(role=role))
    logging.getLogger("agents").setLevel(level)


def find_runner(role: str) -> RoleRunner[Any]:
    """The registered runner for ``role``; raises UsageError when there is none yet."""
    _register_roles()
    runner = ROLES.get(role)
    if runner is None:
        raise UsageError(f"role {role!r} is not available yet: no runner is registered for it")
    return runner


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m agents``; returns the process exit code."""
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print_error(f"{exc} (see {PROG} --help)")
        return EXIT_USAGE
    try:
        runner = find_runner(args.role)
    except UsageError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    configure_logging(args.role, args.verbose)
    try:
        return run_agent(runner, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logger.debug("unexpected failure", exc_info=exc)
        print_error(f"internal error: {type(exc).__name__}: {exc} (run with -v for details)")
        return EXIT_FAILURE


def _register_roles() -> None:
    """The runners are imported lazily so `--help` and usage errors need none of their dependencies."""
    from agents.runtime.roles.foreign_agent import ForeignAgentRunner
    from agents.runtime.roles.home_agent import HomeAgentRunner
    from agents.runtime.roles.mobile_node import MobileNodeRunner

    ROLES.setdefault("fa", ForeignAgentRunner())
    ROLES.setdefault("ha", HomeAgentRunner())
    ROLES.setdefault("mn", MobileNodeRunner())
