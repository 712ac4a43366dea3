"""The supervisor's life cycle, in process: fake children (tests/helpers/fake_processes.py) and a
clock the test moves, the real loop, states and collaborators. Each ordering that used to race
(the checks against the first workers, a stop during start-up, a crash or a recycle during a
reload, a reload during a drain, a second signal, a worker that never loads, a preloader that
dies) ends in a defined state within a stated bound of the clock's time."""

from __future__ import annotations

import signal

import pytest
from django.core.management.base import SystemCheckError

from django_asgiserve.supervisor.crashes import CRASHES_IN_A_ROW, MAX_BACKOFF
from django_asgiserve.supervisor.edits import STALLED_AFTER
from django_asgiserve.supervisor.events import RecycleAsked, State
from django_asgiserve.supervisor.pool import KILL_MARGIN
from django_asgiserve.supervisor.staff import WAITING
from tests.helpers.fake_processes import Scenario, config, in_loop

CHECK_FAILED = SystemCheckError("System check identified some issues: (demo.E999)")
REQUESTS = {"event": "recycle", "reason": "max-requests", "pid": 1, "served": 10}

# -- start-up: runserver's order -----------------------------------------------------------------


@in_loop
async def test_a_worker_loaded_during_the_checks_serves_only_once_they_pass() -> None:
    scenario = await Scenario(config()).start()
    [worker] = scenario.workers()
    await scenario.load(worker)
    assert scenario.state is State.CHECKING
    assert not scenario.child(worker).told("serve")

    await scenario.pass_checks()
    assert scenario.state is State.SERVING
    assert scenario.child(worker).told("serve")


@in_loop
async def test_a_worker_loaded_after_the_checks_serves_at_once() -> None:
    scenario = await Scenario(config(workers=2)).start()
    await scenario.pass_checks()
    assert scenario.state is State.STARTING
    await scenario.load()
    assert scenario.state is State.SERVING
    assert all(scenario.child(w).told("serve") for w in scenario.workers())


@pytest.mark.parametrize("worker_loaded", [True, False], ids=["loaded", "still loading"])
@in_loop
async def test_a_failing_check_without_the_reloader_exits_1_having_served_nothing(
    worker_loaded: bool,
) -> None:
    scenario = await Scenario(config(reload=False)).start()
    [worker] = scenario.workers()
    if worker_loaded:
        await scenario.load(worker)
    await scenario.fail_checks(CHECK_FAILED)

    assert scenario.state is State.STOPPED
    assert scenario.outcome.check_error is CHECK_FAILED and scenario.outcome.code == 1
    assert not scenario.child(worker).told("serve")
    assert scenario.child(worker).killed
    assert scenario.warnings == []  # nothing raised into the loop


@in_loop
async def test_a_failing_check_while_the_preloader_boots_exits_at_once() -> None:
    """The ordering of the old ``Exception in callback Supervisor.start_serving()`` hang: the
    checks fail while the first workers are still being started."""
    scenario = Scenario(config(reload=False))
    scenario.launcher.gate = asyncio_event()
    await scenario.start()
    await scenario.fail_checks(CHECK_FAILED)

    assert scenario.state is State.STOPPED
    assert scenario.outcome.check_error is CHECK_FAILED
    assert scenario.warnings == []


@pytest.mark.parametrize("worker_loaded", [True, False], ids=["loaded", "still loading"])
@in_loop
async def test_a_failing_check_with_the_reloader_keeps_serving(worker_loaded: bool) -> None:
    scenario = await Scenario(config()).start()
    if worker_loaded:
        await scenario.load()
    # With the reloader the command prints its checks' errors itself and goes on; one that
    # still escapes is reported the same way.
    await scenario.fail_checks(RuntimeError("the database is not there"))
    await scenario.load()

    assert scenario.state is State.SERVING
    assert all(scenario.child(w).told("serve") for w in scenario.workers())
    assert "the database is not there" in scenario.warnings[0]


@in_loop
async def test_broken_first_workers_without_the_reloader_fail_the_start() -> None:
    scenario = await Scenario(config(reload=False)).start()
    await scenario.load(broken=True)
    await scenario.pass_checks()
    assert scenario.state is State.STOPPED
    assert scenario.outcome.failure == "The project could not be loaded (see the error above)."


# -- a stop during start-up ----------------------------------------------------------------------


@pytest.mark.parametrize("when", ["checks running", "checks passed", "preloader booting"])
@in_loop
async def test_a_stop_during_start_up_ends_at_once(when: str) -> None:
    scenario = Scenario(config())
    if when == "preloader booting":
        scenario.launcher.gate = asyncio_event()
    await scenario.start()
    if when == "checks passed":
        await scenario.pass_checks()
    await scenario.signal(signal.SIGINT)

    # No worker served, so none has anything to finish: killed at once, no clock time passes.
    assert scenario.state is State.STOPPED
    assert scenario.outcome.code == 0
    assert all(scenario.child(w).killed for w in scenario.workers())
    assert not any(scenario.child(w).told("serve") for w in scenario.workers())
    assert scenario.launcher.stopped


# -- a worker that never loads -------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
@in_loop
async def test_without_the_reloader_no_worker_loaded_within_the_startup_timeout_fails(
    workers: int,
) -> None:
    scenario = await Scenario(config(reload=False, workers=workers, startup_timeout=3.0)).start()
    await scenario.pass_checks()
    await scenario.advance(2.9)
    assert scenario.state is State.STARTING

    await scenario.advance(0.2)
    assert scenario.state is State.STOPPED
    assert scenario.outcome.failure is not None
    assert scenario.outcome.failure.startswith("No worker became ready within 3 seconds")
    assert all(scenario.child(w).killed for w in scenario.workers())


@in_loop
async def test_with_the_reloader_an_edit_replaces_a_worker_that_never_loads() -> None:
    scenario = await Scenario(config()).start()
    await scenario.pass_checks()
    [stuck] = scenario.workers()

    # Edits made while it loads wait for it...
    await scenario.edit("/p/demo/models.py")
    assert len(scenario.launcher.starts) == 1
    # ... until it has loaded for longer than STALLED_AFTER: then the newest code is started.
    await scenario.advance(STALLED_AFTER + 0.1)
    await scenario.edit("/p/demo/views.py")
    assert scenario.child(stuck).killed
    assert len(scenario.launcher.starts) == 2
    await scenario.load()
    assert scenario.state is State.SERVING
    assert scenario.lines[0] == "/p/demo/models.py, /p/demo/views.py changed, reloading."


@in_loop
async def test_without_the_reloader_a_later_worker_that_never_loads_is_given_up_on() -> None:
    scenario = Scenario(config(reload=False, startup_timeout=3.0))
    [old] = await scenario.serving_started()
    await scenario.hangup()
    [stuck] = scenario.launcher.starts[-1].workers
    await scenario.advance(3.1)

    assert scenario.child(stuck).killed
    assert scenario.state is State.SERVING and scenario.serving() == [old]
    assert scenario.warnings[-1].startswith("The new workers did not load within 3 seconds")


# -- reloads -------------------------------------------------------------------------------------


@in_loop
async def test_a_worker_crashing_during_a_reload_is_replaced_by_the_reload() -> None:
    scenario = Scenario(config())
    [old] = await scenario.serving_started()
    await scenario.hangup()
    assert scenario.state is State.RELOADING
    [new] = scenario.launcher.starts[-1].workers

    await scenario.crash(old)
    await scenario.advance(MAX_BACKOFF)
    assert len(scenario.launcher.starts) == 2, "replaced besides the reload"
    assert "exited unexpectedly" in scenario.warnings[-1]

    await scenario.load(new)
    assert scenario.state is State.SERVING
    assert scenario.serving() == [new]


@in_loop
async def test_a_seat_whose_reload_failed_after_a_crash_is_refilled_after_the_back_off() -> None:
    scenario = Scenario(config())
    [old] = await scenario.serving_started()
    await scenario.hangup()
    [new] = scenario.launcher.starts[-1].workers
    await scenario.crash(old)
    await scenario.crash(new)  # before it loaded
    assert scenario.state is State.SERVING
    assert scenario.serving() == []

    await scenario.advance(MAX_BACKOFF)
    [replacement] = scenario.launcher.starts[-1].workers
    await scenario.load(replacement)
    assert scenario.serving() == [replacement]
    assert scenario.child(replacement).told("serve")


@in_loop
async def test_a_reload_whose_preloader_died_keeps_the_old_workers() -> None:
    scenario = Scenario(config(workers=2))
    old = await scenario.serving_started()
    scenario.launcher.dead = True
    await scenario.hangup()

    assert scenario.state is State.SERVING
    assert scenario.serving() == old
    assert scenario.warnings == [WAITING]


@in_loop
async def test_edits_during_a_reload_are_judged_by_the_new_workers() -> None:
    scenario = Scenario(config())
    [old] = await scenario.serving_started()
    await scenario.edit("/p/demo/views.py")
    await scenario.classify("reload", "/p/demo/views.py")
    assert scenario.state is State.RELOADING
    [new] = scenario.launcher.starts[-1].workers

    # A module only the new code imports means nothing to the old workers: they are not asked.
    await scenario.edit("/p/demo/new_module.py")
    assert not old.replies
    await scenario.load(new)
    assert list(new.replies), "the new worker judges the edit"
    await scenario.classify("reload", "/p/demo/new_module.py")
    assert len(scenario.launcher.starts) == 3


@in_loop
async def test_a_hangup_during_a_reload_starts_it_over_with_fresh_code() -> None:
    scenario = Scenario(config())
    await scenario.serving_started()
    await scenario.hangup()
    [first_try] = scenario.launcher.starts[-1].workers
    await scenario.hangup()

    assert scenario.child(first_try).killed
    assert scenario.launcher.starts[-1].fresh
    await scenario.load()
    assert scenario.state is State.SERVING


# -- recycling -----------------------------------------------------------------------------------


@in_loop
async def test_recycling_during_a_reload_is_left_to_the_reload() -> None:
    scenario = Scenario(config(max_requests=10))
    [old] = await scenario.serving_started()
    await scenario.hangup()
    await scenario.post(RecycleAsked(old, REQUESTS))  # type: ignore[arg-type]
    await scenario.load()

    assert len(scenario.launcher.starts) == 2, "a recycle besides the reload"
    assert scenario.child(old).told("stop")


@in_loop
async def test_recycling_asked_during_a_reload_that_failed_goes_ahead() -> None:
    scenario = Scenario(config(max_requests=10))
    [old] = await scenario.serving_started()
    await scenario.hangup()
    await scenario.post(RecycleAsked(old, REQUESTS))  # type: ignore[arg-type]
    [new] = scenario.launcher.starts[-1].workers
    await scenario.crash(new)  # the reload fails: old keeps serving, and is recycled now

    assert len(scenario.launcher.starts) == 3
    [replacement] = scenario.launcher.starts[-1].workers
    await scenario.load(replacement)
    assert scenario.serving() == [replacement]
    assert scenario.child(old).told("stop")


@in_loop
async def test_a_worker_that_crashes_while_it_is_recycled_is_replaced_by_its_recycling() -> None:
    scenario = Scenario(config(max_requests=10))
    [old] = await scenario.serving_started()
    await scenario.post(RecycleAsked(old, REQUESTS))  # type: ignore[arg-type]
    [new] = scenario.launcher.starts[-1].workers
    await scenario.crash(old)
    await scenario.load(new)
    assert scenario.serving() == [new] and scenario.child(new).told("serve")


@in_loop
async def test_a_recycled_seat_whose_worker_crashed_and_new_one_failed_is_refilled() -> None:
    scenario = Scenario(config(max_requests=10))
    [old] = await scenario.serving_started()
    await scenario.post(RecycleAsked(old, REQUESTS))  # type: ignore[arg-type]
    [new] = scenario.launcher.starts[-1].workers
    await scenario.crash(old)
    await scenario.crash(new)
    await scenario.advance(MAX_BACKOFF)
    [replacement] = scenario.launcher.starts[-1].workers
    await scenario.load(replacement)
    assert scenario.serving() == [replacement]


# -- the drain and the stop ----------------------------------------------------------------------


@in_loop
async def test_a_reload_during_a_drain_is_not_started() -> None:
    scenario = Scenario(config(reload=False, drain_delay=10.0))
    [worker] = await scenario.serving_started()
    await scenario.signal(signal.SIGTERM)
    assert scenario.state is State.DRAINING
    assert scenario.child(worker).told("drain")

    await scenario.hangup()
    assert len(scenario.launcher.starts) == 1
    await scenario.advance(9.9)
    assert scenario.state is State.DRAINING
    await scenario.advance(0.2)
    assert scenario.state is State.STOPPED
    assert scenario.child(worker).told("stop") and not scenario.child(worker).killed


@in_loop
async def test_a_worker_crashing_during_a_drain_is_replaced_and_drains_from_the_start() -> None:
    scenario = Scenario(config(reload=False, drain_delay=30.0))
    [worker] = await scenario.serving_started()
    await scenario.signal(signal.SIGTERM)
    await scenario.crash(worker)
    await scenario.advance(MAX_BACKOFF)
    [replacement] = scenario.launcher.starts[-1].workers
    await scenario.load(replacement)

    assert [m["cmd"] for m in scenario.child(replacement).sent] == ["drain", "serve"]


@in_loop
async def test_a_second_signal_kills_what_is_still_stopping() -> None:
    scenario = Scenario(config(graceful_timeout=30.0))
    [worker] = await scenario.serving_started()
    scenario.child(worker).obeys_stop = False
    await scenario.signal(signal.SIGINT)
    assert scenario.state is State.STOPPING

    await scenario.signal(signal.SIGINT)
    assert scenario.child(worker).killed and scenario.launcher.killed
    assert scenario.state is State.STOPPED


@in_loop
async def test_a_second_signal_during_a_drain_stops_at_once() -> None:
    scenario = Scenario(config(reload=False, drain_delay=600.0))
    [worker] = await scenario.serving_started()
    await scenario.signal(signal.SIGTERM)
    await scenario.signal(signal.SIGTERM)
    assert scenario.state is State.STOPPED
    assert scenario.child(worker).killed


@in_loop
async def test_a_worker_that_ignores_stop_is_killed_after_its_grace() -> None:
    scenario = Scenario(config(graceful_timeout=1.0))
    [worker] = await scenario.serving_started()
    scenario.child(worker).obeys_stop = False
    await scenario.signal(signal.SIGINT)
    await scenario.advance(1.0 + KILL_MARGIN - 0.1)
    assert scenario.state is State.STOPPING and not scenario.child(worker).killed

    await scenario.advance(0.2)
    assert scenario.child(worker).killed
    assert scenario.state is State.STOPPED


# -- crashes -------------------------------------------------------------------------------------


@in_loop
async def test_without_the_reloader_workers_crashing_in_a_row_end_the_run() -> None:
    scenario = Scenario(config(reload=False))
    await scenario.serving_started()
    for _crash in range(CRASHES_IN_A_ROW):
        [worker] = scenario.launcher.starts[-1].workers
        await scenario.load(worker)
        await scenario.crash(worker)
        await scenario.advance(MAX_BACKOFF)
    assert scenario.state is State.STOPPED
    assert scenario.outcome.failure is not None
    assert scenario.outcome.failure.startswith(f"Workers crashed {CRASHES_IN_A_ROW} times")


@in_loop
async def test_without_the_reloader_a_preloader_that_keeps_dying_ends_the_run() -> None:
    scenario = Scenario(config(reload=False))
    scenario.launcher.dead = True
    await scenario.start()
    await scenario.pass_checks()
    await scenario.advance(CRASHES_IN_A_ROW * MAX_BACKOFF)
    assert scenario.state is State.STOPPED
    assert scenario.outcome.code == 1


def asyncio_event():  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.Event()
