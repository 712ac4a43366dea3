"""The worker's table of module sources, read from several threads at once (in process).

In a worker, the thread answering the supervisor's "what does this change mean?" and the timer
reporting learned libraries both ask which files the imported modules come from, while request
threads import more modules. Each run below does exactly that, with the interpreter switching
threads as often as it can, on a fresh package of modules.
"""

from __future__ import annotations

import gc
import importlib
import shutil
import sys
import threading
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from django_asgiserve.reload.sources import learned_modules, module_files

#: Runs of the race; today's fix must survive every one (without it, most runs fail).
RUNS = 40
MODULES_PER_RUN = 40
#: Modules added to the test process's own (about 1,500) for the collector's test.
FILLER = 3000
#: Seconds between the interpreter's thread switches during a run (its default is 0.005).
SWITCH_INTERVAL = 1e-5


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.fixture
def collecting_often() -> Iterator[None]:
    """The garbage collector runs at (nearly) every allocation, as it may at any one."""
    before = gc.get_threshold()
    gc.set_threshold(1, 10**6, 10**6)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.collect()


@pytest.fixture
def packages(tmp_path: Path) -> Iterator[Callable[[int], list[str]]]:
    """Make a package of fresh modules on ``sys.path``; they are forgotten at teardown."""
    made: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def make(run: int) -> list[str]:
        package = tmp_path / f"race_{uuid.uuid4().hex}_{run}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        names = []
        for n in range(MODULES_PER_RUN):
            (package / f"m{n}.py").write_text(f"VALUE = {n}\n")
            names.append(f"{package.name}.m{n}")
        made.append(package.name)
        return names

    yield make
    sys.path.remove(str(tmp_path))
    for name in list(sys.modules):
        if name.split(".")[0] in made:
            del sys.modules[name]
    shutil.rmtree(tmp_path, ignore_errors=True)


def race(names: list[str]) -> list[BaseException]:
    """Two readers against one importer of ``names``; what the readers raised."""
    inherited = frozenset(sys.modules)
    importing = threading.Event()
    importing.set()
    errors: list[BaseException] = []

    def read(call: Callable[[], object]) -> None:
        try:
            while importing.is_set():
                call()
            call()
        except BaseException as error:  # reported by the test
            errors.append(error)

    def import_all() -> None:
        try:
            for name in names:
                importlib.import_module(name)
        finally:
            importing.clear()

    threads = [
        threading.Thread(target=read, args=(module_files,)),
        threading.Thread(target=read, args=(lambda: learned_modules(inherited, ()),)),
        threading.Thread(target=import_all),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_module_files_from_threads_while_modules_are_imported(frequent_switches, packages):
    failed: list[tuple[int, BaseException]] = []
    for run in range(RUNS):
        names = packages(run)
        errors = race(names)
        if errors:
            failed.append((run, errors[0]))
        # Nothing imported meanwhile is missed either.
        files = module_files()
        missing = [n for n in names if Path(sys.modules[n].__file__).resolve() not in files]
        assert not missing, f"run {run}: not tracked: {missing[:5]}"
    assert not failed, (
        f"{len(failed)} of {RUNS} runs raised in a reader; the first: run {failed[0][0]}: "
        f"{failed[0][1]!r}"
    )


def test_module_files_while_finalizers_import(collecting_often, packages):
    """The collector may run at any allocation, and a finalizer it runs may import a module (or
    let another thread run, which imports one): reading ``sys.modules`` must not fail then.
    Each finalizer below imports a module and leaves the next finalizer's garbage behind."""
    pending = iter(packages(0))
    # A large project's count of modules: more than CPython keeps spare pairs for (2,000), so
    # that copying sys.modules item by item allocates, and the collector can run meanwhile.
    filler = {f"asgiserve_test_filler_{n}": types.ModuleType("filler") for n in range(FILLER)}
    sys.modules.update(filler)

    class ImportsWhenCollected:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            name = next(pending, None)
            if name is not None:
                importlib.import_module(name)
                ImportsWhenCollected()

    ImportsWhenCollected()
    try:
        for _ in range(MODULES_PER_RUN):
            module_files()
            learned_modules(frozenset(), ())
    finally:
        for name in filler:
            del sys.modules[name]
