"""``--pdb``: a post-mortem debugger (pdb) in the terminal running asgiserve, at the frame where a
view or a middleware raised an exception nothing handled.

Django turns such an exception into its 500 response in ``response_for_exception``, and first
sends ``got_request_exception`` from inside the ``except`` block, so ``sys.exc_info()`` is the
exception there. The receiver installed here opens pdb on it, through the worker's inherited
standard input and output (as ``breakpoint()`` does), and returns when the user continues or
quits: Django then makes the response it would have made (the technical 500 page). The receiver
runs where Django converts the exception: the request's own thread for a sync view or
middleware, and for an async one a thread of the event loop's default executor (Django converts
it with ``sync_to_async(thread_sensitive=False)``), so the event loop never waits for the prompt
and other requests are served meanwhile. One prompt at a time: a second failing request waits
for the first prompt to end.

pdb reads whole lines from the terminal (not through readline), so that a worker stopped while
its prompt is open (a reload, Ctrl+C) leaves the terminal as it was. Without ``--pdb`` nothing
is connected: requests pay nothing for it.
"""

from __future__ import annotations

import pdb
import sys
import threading
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.http import HttpRequest

#: One prompt on the terminal at a time.
PROMPT = threading.Lock()
DISPATCH_UID = "django_asgiserve.post_mortem"


def refusal(*, reload: bool, debug: bool, workers: int) -> str | None:
    """Why ``--pdb`` cannot be used in this run, or None."""
    if not reload:
        return "--pdb is for development: leave out --noreload."
    if not debug:
        return "--pdb shows your code and data in the terminal: it needs DEBUG = True."
    if workers > 1:
        return "--pdb serves one worker, so that one prompt has the terminal: leave out --workers."
    return None


def install() -> None:
    """Open the debugger on every unhandled exception of a request, from now on."""
    from django.core.signals import got_request_exception

    got_request_exception.connect(debug_exception, dispatch_uid=DISPATCH_UID)


def debug_exception(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    """``got_request_exception``'s receiver: the prompt at the frame that raised."""
    _kind, error, trace = sys.exc_info()
    if error is None or trace is None:
        return
    where = f" in {request.method} {request.get_full_path()}" if request else ""
    title = f"--pdb: {type(error).__name__}: {error}{where}"
    if not PROMPT.acquire(blocking=False):
        say(f"\n{title}\nIts prompt opens when the one above ends.\n")
        PROMPT.acquire()
    try:
        say(f"\n{title}\nThe request waits: 'c' or 'q' sends it the error page.\n")
        # stdout given: pdb reads lines with stdin.readline(), leaving the terminal's modes
        # alone. nosigint: Ctrl+C belongs to the supervisor.
        debugger = pdb.Pdb(stdin=sys.stdin, stdout=sys.stdout, nosigint=True)
        debugger.reset()
        debugger.interaction(None, trace)
    except Exception:
        # A debugger that cannot run (no terminal, say) must not cost the request its page.
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        PROMPT.release()


def say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
