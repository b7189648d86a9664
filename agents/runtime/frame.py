"""The process frame every agent runs in: config → start → READY → wait for a signal → clean up.

A role runner (one per role: ha, fa, mn) implements :class:`RoleRunner` and is registered in
``agents.runtime.cli.ROLES``. The frame owns everything generic: the asyncio loop, SIGTERM/SIGINT,
the control socket, the trace file, the ``READY`` line, cleanup order and exit codes:

* 0: stopped by SIGTERM/SIGINT (or ``request_shutdown``) and every cleanup succeeded; ``--check`` passed
* 1: a supervised task or timer failed, a cleanup failed or timed out, or start-up hit an OSError
  (control socket in use, permission denied, ...) or an unexpected exception
* 2: the config (or a value derived from it) is invalid: ConfigError/ValueError/unreadable file

Errors are one line ``error: ...`` on stderr; tracebacks only appear in the debug log (``-v``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agents.mip.common.trace_schema import TraceEvent
from agents.runtime.control import ControlServer, Handler, default_control_path
from agents.runtime.scheduling import RealtimeScheduling
from agents.runtime.security_log import SecurityLog
from agents.runtime.timer import AgentTimer, TimedMachine, check_loop_clock
from agents.runtime.trace import TraceWriter

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

ConfigT = TypeVar("ConfigT")
CleanupCallback = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class AgentArgs:
    """The parsed command line of ``python -m agents ROLE ...``."""

    role: str
    config: Path
    check: bool = False
    trace: Path | None = None
    control: Path | None = None
    verbose: bool = False


class RoleRunner(Protocol[ConfigT]):
    """What a role (ha, fa, mn) provides to the frame."""

    def load_config(self, path: Path) -> ConfigT:
        """Read and validate the TOML file; raise ConfigError/ValueError naming the bad key."""
        ...

    def node_name(self, config: ConfigT) -> str:
        """The node's name (trace ``node`` field, default control socket name); "" = config file stem."""
        ...

    async def start(self, config: ConfigT, context: AgentContext) -> Mapping[str, Handler]:
        """Open sockets, install tunnels/routes, start tasks; return the control command handlers.

        Register an undo for everything installed with ``context.on_shutdown`` *as soon as* it is
        installed (cleanups run in reverse order, also when start fails half-way). Returning means
        "listening": the frame then prints READY.
        """
        ...


class AgentContext:
    """The runner's handle on the frame: trace, cleanups, supervised tasks, shutdown."""

    def __init__(self, args: AgentArgs, node: str, trace: TraceWriter, control_path: Path) -> None:
        self.args = args
        self.node = node
        self.trace = trace
        self.security = SecurityLog(trace)
        """The one rate limiter for security log and trace lines (:mod:`agents.runtime.security_log`)."""
        self.control_path = control_path
        self.cleanup_timeout = 10.0
        self.exit_code = EXIT_OK
        self.shutdown_reason: str | None = None
        self._shutdown_requested = asyncio.Event()
        self._cleanups: list[tuple[str, CleanupCallback]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.scheduling = RealtimeScheduling(0, trace)
        """The real-time policy the runner asked for (:meth:`use_realtime`); applied once it is ready."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop."""
        return asyncio.get_running_loop()

    @property
    def shutting_down(self) -> bool:
        """True once a signal, ``request_shutdown`` or ``fail`` has asked the agent to stop."""
        return self._shutdown_requested.is_set()

    def on_shutdown(self, callback: CleanupCallback, name: str | None = None) -> None:
        """Run ``callback`` (sync or async) at shutdown; the last registered runs first."""
        label = name or str(getattr(callback, "__qualname__", repr(callback)))
        self._cleanups.append((label, callback))

    def use_realtime(self, priority: int) -> None:
        """Run at ``SCHED_FIFO`` ``priority`` (0: normal) once started (:mod:`agents.runtime.scheduling`)."""
        self.scheduling = RealtimeScheduling(priority, self.trace)

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a task whose crash stops the agent (exit 1); cancelled at the end of shutdown."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def make_timer(
        self, machine: TimedMachine, on_fired: Callable[[float], None] | None = None
    ) -> AgentTimer:
        """An :class:`AgentTimer` for ``machine`` whose failures stop the agent; cancelled at shutdown."""
        timer = AgentTimer(machine, asyncio.get_running_loop(), on_fired=on_fired, on_error=self.fail)
        self.on_shutdown(timer.cancel, name=f"cancel timer of {type(machine).__name__}")
        return timer

    def request_shutdown(self, reason: str) -> None:
        """Ask for an orderly stop (what SIGTERM does)."""
        if self.shutting_down:
            logger.info("already shutting down (%s); ignoring: %s", self.shutdown_reason, reason)
            return
        logger.info("shutting down: %s", reason)
        self.shutdown_reason = reason
        self._shutdown_requested.set()

    def fail(self, error: BaseException | str) -> None:
        """Stop the agent because of ``error``; the process will exit 1."""
        message = error if isinstance(error, str) else _describe(error)
        if isinstance(error, BaseException):
            logger.debug("fatal error", exc_info=error)
        logger.error("fatal: %s", message)
        self.exit_code = EXIT_FAILURE
        self.request_shutdown(f"fatal: {message}")

    async def wait_for_shutdown(self) -> None:
        """Return once a shutdown has been requested."""
        await self._shutdown_requested.wait()

    async def run_cleanups(self) -> None:
        """Run the registered cleanups (last first), then cancel the remaining supervised tasks."""
        self._shutdown_requested.set()
        while self._cleanups:
            name, callback = self._cleanups.pop()
            await self._run_one_cleanup(name, callback)
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_one_cleanup(self, name: str, callback: CleanupCallback) -> None:
        logger.debug("cleanup: %s", name)
        try:
            result = callback()
            if result is not None:
                await asyncio.wait_for(result, self.cleanup_timeout)
        except TimeoutError:
            logger.error("cleanup %s did not finish within %.1f s", name, self.cleanup_timeout)
            self.exit_code = EXIT_FAILURE
        except Exception as exc:
            logger.debug("cleanup %s failed", name, exc_info=exc)
            logger.error("cleanup %s failed: %s", name, _describe(exc))
            self.exit_code = EXIT_FAILURE

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            logger.debug("task %s finished", task.get_name())
        elif self.shutting_down:
            logger.debug("task %s failed during shutdown: %s", task.get_name(), _describe(error))
        else:
            self.fail(f"task {task.get_name()} crashed: {_describe(error)}")
            logger.debug("task %s traceback", task.get_name(), exc_info=error)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def is_config_error(error: BaseException) -> bool:
    """True for the errors that mean "bad configuration": ValueError, any ``ConfigError``, OSError
    while reading the file. Matched by class name so this module need not import the config loader."""
    if isinstance(error, ValueError | OSError):
        return True
    return any(cls.__name__ == "ConfigError" for cls in type(error).__mro__)


def print_error(message: str) -> None:
    """The one-line ``error: ...`` a user sees on stderr (a multi-line message is joined with '; ')."""
    one_line = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"error: {one_line}", file=sys.stderr, flush=True)


def user_message(error: BaseException) -> str:
    """What to tell the user about an expected error: ``PATH: reason`` for file errors, else the text."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return str(error) or type(error).__name__


def run_agent(runner: RoleRunner[Any], args: AgentArgs) -> int:
    """Load the config, then (unless ``--check``) run the agent until it is told to stop."""
    try:
        config = runner.load_config(args.config)
        node = runner.node_name(config) or args.config.stem
    except Exception as exc:
        if not is_config_error(exc):
            raise
        logger.debug("config rejected", exc_info=exc)
        print_error(user_message(exc))
        return EXIT_USAGE
    if args.check:
        print(f"{args.config}: ok ({args.role} {node})", flush=True)
        return EXIT_OK
    return asyncio.run(_serve(runner, config, node, args))


async def _serve(runner: RoleRunner[Any], config: Any, node: str, args: AgentArgs) -> int:
    """Everything between the loop starting and the loop ending, cleanups included."""
    try:
        control_path = args.control or default_control_path(args.role, node)
    except ValueError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    try:
        check_loop_clock(asyncio.get_running_loop())
        trace = TraceWriter(args.trace, node)
    except (OSError, RuntimeError) as exc:
        print_error(f"cannot open trace file {user_message(exc)}" if isinstance(exc, OSError) else str(exc))
        return EXIT_FAILURE
    context = AgentContext(args, node, trace, control_path)
    context.security.start(asyncio.get_running_loop())
    trace.emit(TraceEvent.AGENT_START, role=args.role, config=args.config)
    _install_signal_handlers(context)
    control = ControlServer(control_path)
    try:
        await control.start()
        context.on_shutdown(control.close, name="close control socket")
        started = await _start_runner(runner, config, context)
        if started is not None and not context.shutting_down:
            control.set_handlers({**started, "scheduling": lambda _args: context.scheduling.status()})
            _freeze_start_up_objects()
            context.scheduling.start(asyncio.get_running_loop())
            _announce_ready(context)
            await context.wait_for_shutdown()
    except Exception as exc:
        context.exit_code = _report_start_failure(exc)
    finally:
        trace.emit(TraceEvent.AGENT_STOP, reason=context.shutdown_reason)
        await context.run_cleanups()
        context.security.close()  # the last "N more suppressed" summary
        trace.emit(TraceEvent.AGENT_EXIT, code=context.exit_code)
        trace.close()
    return context.exit_code


async def _start_runner(
    runner: RoleRunner[Any], config: Any, context: AgentContext
) -> Mapping[str, Handler] | None:
    """``runner.start``, abandoned (cancelled) if a shutdown is requested first; None then."""
    start = asyncio.ensure_future(runner.start(config, context))
    stop = asyncio.ensure_future(context.wait_for_shutdown())
    try:
        await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if start.done() and not start.cancelled():
        return start.result()
    start.cancel()
    await asyncio.gather(start, return_exceptions=True)
    logger.info("start-up abandoned: %s", context.shutdown_reason)
    return None


def _report_start_failure(error: Exception) -> int:
    logger.debug("start-up failed", exc_info=error)
    if isinstance(error, OSError):
        print_error(user_message(error))
        return EXIT_FAILURE
    if is_config_error(error):
        print_error(user_message(error))
        return EXIT_USAGE
    print_error(f"internal error during start-up: {_describe(error)} (run with -v for details)")
    return EXIT_FAILURE


def _install_signal_handlers(context: AgentContext) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, context.request_shutdown, f"received {signum.name}")
        except (RuntimeError, ValueError) as exc:  # not the main thread, or no signal support
            logger.warning("cannot handle %s: %s", signum.name, exc)


def _freeze_start_up_objects() -> None:
    """Collect once, then move everything alive (modules, the parsed config: thousands of accounts on a
    home agent) out of the cyclic collector's reach (``gc.freeze``). These objects live as long as the
    agent, and every full collection would otherwise walk them again, stalling the event loop for tens
    of milliseconds on a large config; reference counting still frees them as usual."""
    gc.collect()
    gc.freeze()


def _announce_ready(context: AgentContext) -> None:
    logger.info("%s %s ready; control socket %s", context.args.role, context.node, context.control_path)
    context.trace.emit(TraceEvent.AGENT_READY, control=context.control_path)
    try:
        print("READY", flush=True)
    except OSError as exc:  # stdout closed by whoever started us: not fatal
        logger.warning("cannot print READY: %s", exc)
