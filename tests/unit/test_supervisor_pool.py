"""The pool's bookkeeping, in process: who serves which seat after a reload, a replacement or a
recycle, and what a finished launch may bring in (fake children, see
tests/helpers/fake_processes.py)."""

from __future__ import annotations

import pytest

from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.launches import Purpose
from django_asgiserve.supervisor.pool import Pool
from django_asgiserve.supervisor.tasks import Tasks
from tests.helpers.fake_processes import FakeChild, FakeClock, FakeLauncher, in_loop, settle


def pool(size: int = 2, *, socket_per_worker: bool = False) -> Pool:
    tasks = Tasks(lambda event: None)
    launcher = FakeLauncher(lambda event: None, tasks)
    return Pool(
        launcher,
        tasks,
        FakeClock(),
        size=size,
        generation="g1",
        socket_per_worker=socket_per_worker,
        bound=None,
        stop_timeout=1.0,
    )


def worker(the_pool: Pool, seat: int, generation: str = "g1", *, loaded: bool = True) -> Worker:
    assert isinstance(the_pool.launcher, FakeLauncher)
    made = Worker(FakeChild(the_pool.launcher, 100 + seat), seat, generation)
    if loaded:
        made.received({"event": "loaded", "pid": 100 + seat, "broken": False})
    return made


@in_loop
async def test_new_code_on_shared_sockets_replaces_every_worker() -> None:
    the_pool = pool()
    old = [worker(the_pool, 0), worker(the_pool, 1)]
    the_pool.install(old, "g1", every_seat=True)

    new = worker(the_pool, 0, "g2")  # the other seat's new worker died
    the_pool.install([new], "g2", every_seat=True)
    assert the_pool.workers() == [new]
    assert the_pool.retiring == set(old)
    assert the_pool.generation == "g2"


@in_loop
async def test_new_code_with_a_socket_per_worker_replaces_only_the_seats_it_fills() -> None:
    the_pool = pool(socket_per_worker=True)
    old = [worker(the_pool, 0), worker(the_pool, 1)]
    the_pool.install(old, "g1", every_seat=True)

    new = worker(the_pool, 0, "g2")
    the_pool.install([new], "g2", every_seat=True)
    # Socket 1 keeps the worker that serves it: no socket goes unserved.
    assert the_pool.serving == {0: new, 1: old[1]}
    assert the_pool.retiring == {old[0]}


@in_loop
async def test_a_replacement_takes_its_seat_only() -> None:
    the_pool = pool()
    old = [worker(the_pool, 0), worker(the_pool, 1)]
    the_pool.install(old, "g1", every_seat=True)
    new = worker(the_pool, 1)
    the_pool.install([new], "g1", every_seat=False)
    assert the_pool.serving == {0: old[0], 1: new}
    assert the_pool.retiring == {old[1]}


@in_loop
async def test_a_gone_worker_leaves_its_seat_empty() -> None:
    the_pool = pool()
    old = worker(the_pool, 0)
    the_pool.install([old], "g1", every_seat=True)
    assert the_pool.remove(old) is True
    assert the_pool.serving == {}
    assert the_pool.remove(old) is False


@in_loop
async def test_a_finished_launch_brings_in_its_loaded_workers() -> None:
    the_pool = pool()
    launch = the_pool.launch(Purpose.RELOAD, [0, 1], generation="g2")
    await settle()  # it starts both
    loaded, dead = launch.workers
    loaded.received({"event": "loaded", "pid": loaded.pid, "broken": False})
    dead.closed()
    await settle()

    assert the_pool.finish(launch, stopping=False) == {0: loaded}
    assert launch.failed == [1]
    assert isinstance(the_pool.launcher, FakeLauncher)
    assert the_pool.launcher.discarded == [dead]


@in_loop
async def test_an_abandoned_launch_brings_in_nothing() -> None:
    the_pool = pool()
    launch = the_pool.launch(Purpose.RELOAD, [0], generation="g2")
    await settle()
    the_pool.abandon(launch)
    assert the_pool.finish(launch, stopping=False) is None
    assert the_pool.launches == []


@in_loop
async def test_a_replacement_of_code_replaced_meanwhile_is_not_brought_in() -> None:
    the_pool = pool()
    launch = the_pool.launch(Purpose.REPLACE, [0])  # of g1
    await settle()
    [replacement] = launch.workers
    replacement.received({"event": "loaded", "pid": replacement.pid, "broken": False})
    the_pool.install([worker(the_pool, 0, "g2")], "g2", every_seat=True)  # a reload came first
    assert the_pool.finish(launch, stopping=False) == {}
    assert isinstance(replacement.connection, FakeChild) and replacement.connection.killed


@pytest.mark.parametrize("seat_taken", [True, False])
@in_loop
async def test_a_recycle_whose_worker_has_gone_takes_the_seat_if_free(seat_taken: bool) -> None:
    the_pool = pool(size=1)
    old = worker(the_pool, 0)
    the_pool.install([old], "g1", every_seat=True)
    launch = the_pool.launch(Purpose.RECYCLE, [0], replacing=old)
    await settle()
    [new] = launch.workers
    new.received({"event": "loaded", "pid": new.pid, "broken": False})
    assert the_pool.recycling(old) and the_pool.covers(0)
    the_pool.remove(old)
    if seat_taken:
        the_pool.install([worker(the_pool, 0)], "g1", every_seat=False)
    assert the_pool.finish(launch, stopping=False) == ({} if seat_taken else {0: new})


@in_loop
async def test_the_serving_project_is_told_from_the_error_page() -> None:
    the_pool = pool()
    broken = worker(the_pool, 0, loaded=False)
    broken.received({"event": "loaded", "pid": broken.pid, "broken": True})
    the_pool.install([broken], "g1", every_seat=True)
    assert not the_pool.serves_project()
    the_pool.install([worker(the_pool, 1)], "g1", every_seat=False)
    assert the_pool.serves_project()
