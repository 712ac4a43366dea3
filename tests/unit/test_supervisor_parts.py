"""The supervisor's collaborators that decide something, in process: the edits (judging a batch),
the crash back-off and fail-fast, recycling's decision, the drain's steps, the worker as the
supervisor sees it, and the operations that report back (fake children and clock, see
tests/helpers/fake_processes.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.crashes import CRASHES_IN_A_ROW, MEMORY_SECONDS, Crashes
from django_asgiserve.supervisor.draining import Drain
from django_asgiserve.supervisor.edits import CLASSIFY_TIMEOUT, Edits, reloading_line
from django_asgiserve.supervisor.events import AllStopped, DrainOver, Event, OperationFailed
from django_asgiserve.supervisor.recycling import Recycling
from django_asgiserve.supervisor.tasks import Tasks
from tests.helpers.fake_processes import FakeChild, FakeClock, FakeLauncher, config, in_loop, settle

MEMORY = {"event": "recycle", "reason": "max-memory", "pid": 7, "rss_mb": 300, "start_rss_mb": 80}


def worker(seat: int = 0) -> Worker:
    launcher = FakeLauncher(lambda event: None, Tasks(lambda event: None))
    child = FakeChild(launcher, 100 + seat)
    made = Worker(child, seat, "g1")
    child.worker = made
    made.received({"event": "loaded", "pid": 100 + seat, "broken": False})
    return made


def answer(asked: Worker, action: str, paths: list[str]) -> None:
    for request_id in list(asked.replies):
        asked.received(
            {
                "event": "classified",
                "id": request_id,
                "action": action,  # type: ignore[typeddict-item]
                "paths": paths,
                "learned": [],
            }
        )


# -- edits ---------------------------------------------------------------------------------------


@in_loop
async def test_the_strongest_answer_of_the_serving_workers_counts() -> None:
    edits, clock = Edits(), FakeClock()
    edits.add([Path("/p/a.py"), Path("/p/t.html")])
    batch = edits.take()
    first, second = worker(0), worker(1)
    judging = asyncio.ensure_future(edits.classify(batch, [first, second], clock))
    await settle()
    answer(first, "none", [])
    answer(second, "cold", ["/p/a.py"])
    classified = await judging
    assert (classified.action, classified.paths) == ("cold", ["/p/a.py"])
    assert classified.batch == batch


@in_loop
async def test_a_worker_that_does_not_answer_in_time_counts_as_a_reload() -> None:
    edits, clock = Edits(), FakeClock()
    edits.add([Path("/p/t.html")])
    slow = worker()
    judging = asyncio.ensure_future(edits.classify(edits.take(), [slow], clock))
    await settle()
    clock.advance(CLASSIFY_TIMEOUT - 0.1)
    await settle()
    assert not judging.done()
    clock.advance(0.2)
    classified = await judging
    assert (classified.action, classified.paths) == ("reload", ["/p/t.html"])
    assert slow.replies == {}, "its late answer is no longer awaited"


@pytest.mark.parametrize(
    ("paths", "action"), [(["/p/a.py", "/p/b.css"], "reload"), (["/p/b.css"], "none")]
)
@in_loop
async def test_without_a_serving_worker_a_python_file_means_a_reload(
    paths: list[str], action: str
) -> None:
    edits = Edits()
    edits.add(Path(p) for p in paths)
    classified = await edits.classify(edits.take(), [], FakeClock())
    assert classified.action == action


def test_a_batch_judged_too_early_is_judged_again() -> None:
    edits = Edits()
    edits.add([Path("/p/new.py")])
    batch = edits.take()
    assert not edits.can_judge()
    edits.add([Path("/p/other.py")])
    edits.judged(batch, keep=True)
    assert edits.take() == {Path("/p/new.py"), Path("/p/other.py")}


def test_the_reloading_line_names_three_files_at_most() -> None:
    assert reloading_line([Path("/a.py")]) == "/a.py changed, reloading."
    many = [Path(f"/{n}.py") for n in range(5)]
    assert reloading_line(many) == "/0.py, /1.py, /2.py and 2 more changed, reloading."


# -- crashes -------------------------------------------------------------------------------------


def test_the_back_off_doubles_and_starts_again_after_a_quiet_while() -> None:
    clock = FakeClock()
    crashes = Crashes(clock, reload=True)
    delays = [crashes.crashed(serving=False).delay for _ in range(8)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    clock.advance(MEMORY_SECONDS + 1)
    assert crashes.crashed(serving=False).delay == 0.1


def test_without_the_reloader_crashes_in_a_row_with_none_serving_give_up() -> None:
    crashes = Crashes(FakeClock(), reload=False)
    verdicts = [crashes.crashed(serving=False) for _ in range(CRASHES_IN_A_ROW)]
    assert [v.failure is None for v in verdicts] == [True] * (CRASHES_IN_A_ROW - 1) + [False]
    # With a worker still serving it goes on.
    assert crashes.crashed(serving=True).failure is None
    # With the reloader an edit may fix it: never.
    with_reloader = Crashes(FakeClock(), reload=True)
    assert all(with_reloader.crashed(serving=False).failure is None for _ in range(10))


def test_a_seat_waits_out_one_back_off_at_a_time() -> None:
    crashes = Crashes(FakeClock(), reload=True)
    assert crashes.back_off(0) and not crashes.back_off(0) and crashes.back_off(1)
    crashes.backed_off(0)
    assert crashes.back_off(0)


# -- recycling -----------------------------------------------------------------------------------


def test_recycling_says_why() -> None:
    warnings: list[str] = []
    requests = Recycling(config(max_requests=100, max_requests_jitter=10), warnings.append)
    request = {"event": "recycle", "reason": "max-requests", "pid": 5, "served": 104}
    assert requests.why(5, request) == (  # type: ignore[arg-type]
        "Worker 5 served 104 requests (--max-requests 100, --max-requests-jitter 10): replacing it."
    )
    memory = Recycling(config(max_worker_memory=200), warnings.append)
    assert memory.why(5, MEMORY) == (  # type: ignore[arg-type]
        "Worker 5 uses 300 MB in its process 7 (--max-worker-memory 200): replacing it."
    )
    assert warnings == []


def test_a_worker_too_big_from_the_start_is_left_alone_and_said_once() -> None:
    warnings: list[str] = []
    recycling = Recycling(config(max_worker_memory=50), warnings.append)
    assert recycling.why(5, MEMORY) is None  # type: ignore[arg-type]
    assert recycling.why(6, MEMORY) is None  # type: ignore[arg-type]
    assert len(warnings) == 1 and "a new worker would be as big" in warnings[0]


# -- the drain -----------------------------------------------------------------------------------


@in_loop
async def test_the_drain_tells_the_workers_and_ends_after_its_delay() -> None:
    clock = FakeClock()
    drain = Drain([], 10.0, owns_port=False)
    serving = worker()
    drain.begin([serving])
    assert drain.active and isinstance(serving.connection, FakeChild)
    assert serving.connection.told("drain")
    over = asyncio.ensure_future(drain.wait(clock))
    await settle()
    clock.advance(9.9)
    await settle()
    assert not over.done()
    clock.advance(0.2)
    assert isinstance(await over, DrainOver)


@in_loop
async def test_the_port_is_left_alone_when_no_drain_began() -> None:
    drain = Drain([], 10.0, owns_port=True)
    await drain.close_port([worker()])  # returns at once: nothing to wait for


# -- the worker as the supervisor sees it --------------------------------------------------------


@in_loop
async def test_a_worker_never_told_to_serve_is_killed_at_once_when_stopped() -> None:
    held = worker()
    assert isinstance(held.connection, FakeChild)
    await held.stop(FakeClock(), 30.0)
    assert held.connection.killed and not held.connection.told("stop")
    assert held.gone.done()


@in_loop
async def test_a_serving_worker_is_stopped_gracefully_or_killed_past_its_grace() -> None:
    clock = FakeClock()
    obedient, stubborn = worker(0), worker(1)
    for each in (obedient, stubborn):
        each.serve()
    assert isinstance(stubborn.connection, FakeChild)
    stubborn.connection.obeys_stop = False
    stopping = asyncio.ensure_future(
        asyncio.gather(obedient.stop(clock, 5.0), stubborn.stop(clock, 5.0))
    )
    await settle()
    assert obedient.gone.done() and not stubborn.gone.done()
    clock.advance(5.0)
    await stopping
    assert stubborn.connection.killed and stubborn.gone.done()


@in_loop
async def test_a_gone_worker_answers_every_question_left_as_a_reload() -> None:
    asked = worker()
    reply = asked.ask(1, ["/p/a.py"])
    asked.closed()
    assert reply.result() == ("reload", [])
    assert asked.ask(2, ["/p/b.py"]).result() == ("reload", [])
    assert asked.stopping_seen.is_set()


def test_news_from_a_worker_is_told_from_answers() -> None:
    async def scenario() -> None:
        listened = worker()
        assert listened.received({"event": "stopping"}) is None
        assert listened.stopping_seen.is_set()
        watch = {"event": "watch", "roots": ["/p"]}
        assert listened.received(watch) == watch  # type: ignore[arg-type]

    asyncio.run(scenario())


# -- operations ----------------------------------------------------------------------------------


@in_loop
async def test_an_operation_reports_its_event_its_failure_or_nothing_once_cancelled() -> None:
    posted: list[Event] = []
    tasks = Tasks(posted.append)

    async def done() -> Event:
        return AllStopped()

    async def broken() -> None:
        raise RuntimeError("a bug")

    async def endless() -> None:
        await asyncio.Event().wait()

    tasks.start(done(), "done")
    tasks.start(broken(), "broken")
    tasks.start(endless(), "endless")
    await settle()
    tasks.cancel_all()
    await settle()
    assert isinstance(posted[0], AllStopped)
    assert isinstance(posted[1], OperationFailed) and posted[1].name == "broken"
    assert len(posted) == 2 and not tasks.running
