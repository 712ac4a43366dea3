"""The event-loop watchdog: one warning when a worker's loop stops running for too long.

The loop only keeps a heartbeat (a ``call_later`` tick every quarter of the threshold). A daemon
thread checks it from outside and, when the heartbeat is late, reads the loop thread's stack
with ``sys._current_frames()``: nothing runs on the request path. It starts on the first ASGI
call in each process, on the loop that call runs on, so it finds the loop of every backend
that runs the application on a Python asyncio loop.
"""

from __future__ import annotations

import asyncio
import linecache
import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType

from django_asgiserve.asgi import access_log
from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send

server_logger = logging.getLogger("django.server")
#: The scope of the call a task (and the tasks it starts) serves: Django runs a view in a task of
#: its own, whose stack does not reach the request-log layer's frame.
current_scope: ContextVar[Scope | None] = ContextVar("asgiserve_scope", default=None)
#: asgiserve's own code, never "the project's" in a warning.
PACKAGE_DIR = str(Path(access_log.__file__).resolve().parent.parent) + os.sep
#: Frames of asgiserve's own request-log layer: their ``scope`` local names the request.
REQUEST_CODES: frozenset[CodeType] = frozenset(
    {access_log._logged_http.__code__, access_log._logged_websocket.__code__}
)
#: What runs the loop itself: a frame of asyncio's loop machinery (``run_forever``,
#: ``_run_once``, ``Runner.run``), or a frame calling one of these names (a backend's runner
#: calling a loop written in C, uvloop's, has no asyncio frame: the frame calling
#: ``run_until_complete`` is the innermost one whenever the loop is in its own code). Such a
#: frame, and every frame out from it (``manage.py``), is outside whatever the loop runs.
LOOP_MACHINERY = frozenset({asyncio.base_events.__file__, asyncio.runners.__file__})
LOOP_RUNNING_CALLS = frozenset({"run_forever", "run_until_complete", "_run_once"})


@dataclass(frozen=True)
class Stall:
    """Where a blocked loop's thread was when the watchdog looked."""

    request: str | None
    #: ``file:line in function`` and the source line of the innermost frame of the project.
    project_frame: str | None
    project_source: str | None
    #: The innermost call the thread was in, outside the project (``time.sleep``, say).
    library_call: str | None


def watch_loops(app: ASGIApp, threshold_ms: float) -> ASGIApp:
    """``app``, starting a watchdog for the loop of the first call it gets in each process."""
    if threshold_ms <= 0:
        return app
    # The loops themselves (kept alive here), so a process forked by a backend, which runs
    # loops of its own, starts its own watchdogs.
    watched: set[asyncio.AbstractEventLoop] = set()

    async def watched_app(scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        if loop not in watched:
            watched.add(loop)
            LoopWatchdog(loop, threading.get_ident(), threshold_ms / 1000).start()
        current_scope.set(scope)
        await app(scope, receive, send)

    return watched_app


class LoopWatchdog:
    """Watches one loop's heartbeat from a daemon thread and warns once per blocked episode."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_id: int, threshold: float) -> None:
        self.loop = loop
        self.thread_id = thread_id
        self.threshold = threshold
        self.interval = threshold / 4
        self.last_beat = time.monotonic()

    def start(self) -> None:
        self.loop.call_soon(self.beat)
        threading.Thread(target=self.watch, daemon=True, name="asgiserve-loop-watchdog").start()

    def beat(self) -> None:
        self.last_beat = time.monotonic()
        if not self.loop.is_closed():
            self.loop.call_later(self.interval, self.beat)

    def watch(self) -> None:
        stall: Stall | None = None
        stalled_since = 0.0
        while not self.loop.is_closed():
            asked = time.monotonic()
            time.sleep(self.interval)
            now = time.monotonic()
            beat = self.last_beat
            if stall is not None:
                if beat > stalled_since:
                    warn(stall, beat - stalled_since)
                    stall = None
                continue
            # A watchdog that overslept as well means the whole process got no CPU (a busy
            # machine), not that the loop's own thread is stuck.
            starved = now - asked - self.interval > self.threshold / 2
            if now - beat > self.threshold and not starved:
                frame = sys._current_frames().get(self.thread_id)
                stall = describe(frame, task_scope(self.loop)) if frame is not None else None
                stalled_since = beat


def is_project_file(filename: str, libraries: tuple[str, ...]) -> bool:
    if filename.startswith("<") or filename.startswith(PACKAGE_DIR):
        return False
    return not os.path.realpath(filename).startswith(libraries)


def task_scope(loop: asyncio.AbstractEventLoop) -> Scope | None:
    """The scope in the context of the task the loop runs (Python 3.12+: ``Task.get_context``)."""
    try:
        task = asyncio.current_task(loop)
        get_context = getattr(task, "get_context", None)
        return get_context().get(current_scope) if get_context is not None else None
    except RuntimeError:  # the loop is closing
        return None


def scope_line(scope: Scope) -> str:
    if scope.get("type") == "http":
        return access_log.request_line(scope)
    return f"WebSocket {scope.get('path', '')}"


def request_in(frame: FrameType) -> str | None:
    """The request a frame serves: asgiserve's log layer's ``scope``, or a Django view's (or
    handler's) ``request``."""
    from django.http import HttpRequest

    try:
        local = frame.f_locals
    except Exception:
        return None
    scope = local.get("scope") if frame.f_code in REQUEST_CODES else None
    if isinstance(scope, dict):
        return scope_line(scope)
    request = local.get("request")
    if isinstance(request, HttpRequest):
        return f"{request.method} {request.get_full_path()}"
    return None


def describe(innermost: FrameType, scope: Scope | None = None) -> Stall | None:
    """The stall seen in this stack, or None when the loop is not running a request's code
    (idle in its selector while the machine is too busy to run its callbacks on time)."""
    from django_asgiserve.reload.sources import library_paths

    libraries = tuple(f"{path}{os.sep}" for path in library_paths())
    request = scope_line(scope) if scope is not None else None
    project: FrameType | None = None
    frame: FrameType | None = innermost
    while frame is not None and not runs_the_loop(frame):
        if project is None and is_project_file(frame.f_code.co_filename, libraries):
            project = frame
        if request is None:
            request = request_in(frame)
        if frame.f_code in REQUEST_CODES:
            break
        frame = frame.f_back
    if request is None and project is None:
        return None
    if project is innermost:
        library = callee(innermost)
    else:
        name = innermost.f_globals.get("__name__", "?")
        library = f"{name}.{innermost.f_code.co_qualname}"
        inner_call = callee(innermost)
        if inner_call:
            library += f" -> {inner_call}"
    where = source = None
    if project is not None:
        where = f"{display_path(project.f_code.co_filename)}:{project.f_lineno} in "
        where += project.f_code.co_qualname
        source = linecache.getline(project.f_code.co_filename, project.f_lineno).strip() or None
    return Stall(request, where, source, library)


def runs_the_loop(frame: FrameType) -> bool:
    """Whether ``frame`` is the event loop's own running, or calls into it (LOOP_MACHINERY)."""
    if frame.f_code.co_filename in LOOP_MACHINERY:
        return True
    call = callee(frame)
    return call is not None and call.rpartition(".")[2] in LOOP_RUNNING_CALLS


def callee(frame: FrameType) -> str | None:
    """The expression called by the instruction ``frame`` is at (``time.sleep``), if it calls."""
    try:
        positions = list(frame.f_code.co_positions())[frame.f_lasti // 2]
    except (IndexError, ValueError):
        return None
    line, end_line, column, end_column = positions
    if line is None or line != end_line or column is None or end_column is None:
        return None
    text = linecache.getline(frame.f_code.co_filename, line)[column:end_column]
    name, paren, _ = text.partition("(")
    return name.strip() if paren and name.strip() else None


def display_path(filename: str) -> str:
    try:
        return os.path.relpath(filename)
    except ValueError:
        return filename


def warn(stall: Stall, blocked: float) -> None:
    from django.core.management.color import color_style

    serving = f' serving "{stall.request}"' if stall.request else ""
    lines = [f"Event loop blocked for {blocked * 1000:.0f} ms{serving}"]
    if stall.project_frame:
        lines.append(f"  at {stall.project_frame}: {stall.project_source or '?'}")
    if stall.library_call:
        lines.append(f"  in {stall.library_call}")
    lines.append(
        "  Every request on this worker waited. Call blocking code through "
        "asgiref's sync_to_async, or use an async API."
    )
    server_logger.warning(
        color_style().WARNING("\n".join(lines)),
        extra={"server_time": time.strftime("%d/%b/%Y %H:%M:%S")},
    )
