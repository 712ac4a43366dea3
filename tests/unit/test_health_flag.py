"""The draining flag (``asgi/health.py``), which the worker's channel thread, its main thread
and SIGTERM's handler all mark: the handler runs in the main thread, which may be making the
flag at that very moment (the worker builds its layers as a stop arrives). In process, in a
child interpreter, since a failure is a hang.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Makes the draining flag while SIGTERM's handler (as the worker's) marks it: a trace hook
#: raises the signal as the line making the flag's memory runs.
SIGNAL_WHILE_MAKING_THE_FLAG = """
import linecache
import signal
import sys

from django_asgiserve.asgi import health

signal.signal(signal.SIGUSR1, lambda *_: health.mark_draining())


def in_flag(frame, event, arg):
    source = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    if event == "line" and "mmap.mmap(" in source:
        sys.settrace(None)
        signal.raise_signal(signal.SIGUSR1)
        return None
    return in_flag


sys.settrace(lambda frame, event, arg: in_flag if frame.f_code is health._flag.__code__ else None)
health.answer_health(lambda *args: None, "/healthz")
print("draining" if health.is_draining() else "serving")
"""


def test_a_stop_while_the_draining_flag_is_made():
    try:
        done = subprocess.run(
            [sys.executable, "-c", SIGNAL_WHILE_MAKING_THE_FLAG],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the worker hung: its signal handler waited for a lock its thread held")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "draining"
