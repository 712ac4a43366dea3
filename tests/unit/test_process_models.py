"""The process model a run gets (option, setting, platform), what each platform offers, and the
switch from fork to spawn, in process (the end-to-end tests: tests/e2e/test_platforms.py)."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.core.management.base import CommandError

from django_asgiserve import platforms, process_models
from django_asgiserve.supervisor.switching_model import SwitchingLauncher
from tests.helpers.fake_processes import FakeLauncher


@pytest.mark.parametrize(
    ("system", "model", "balances"),
    [("linux", "fork", True), ("darwin", "spawn", False), ("win32", "spawn", False)],
)
def test_each_platform_defaults(monkeypatch, system, model, balances):
    monkeypatch.setattr(platforms, "SYSTEM", system)
    assert platforms.default_process_model() == model
    assert platforms.balances_reuse_port() is balances


def test_the_option_wins_over_the_setting_and_the_platform(monkeypatch):
    monkeypatch.setattr(platforms, "SYSTEM", "linux")
    assert process_models.choose("spawn", "fork", "uvicorn") == {
        "process_model": "spawn",
        "process_model_forced": True,
    }
    assert process_models.choose(None, "spawn", "uvicorn")["process_model"] == "spawn"
    assert process_models.choose(None, None, "uvicorn") == {
        "process_model": "fork",
        "process_model_forced": False,
    }


def test_windows_refuses_fork_and_gunicorn(monkeypatch):
    monkeypatch.setattr(platforms, "SYSTEM", "win32")
    with pytest.raises(CommandError, match=re.escape("--process-model fork needs os.fork")):
        process_models.choose("fork", None, "uvicorn")
    with pytest.raises(
        CommandError, match=re.escape("Use one of: uvicorn, hypercorn, daphne, granian.")
    ):
        process_models.choose(None, None, "gunicorn")
    assert process_models.choose(None, None, "hypercorn")["process_model"] == "spawn"
    with pytest.raises(CommandError, match="--metrics is not available on Windows"):
        process_models.choose(None, None, "uvicorn", metrics=True)


def test_the_switch_spawns_from_the_first_reason_on_and_says_it_once():
    said: list[str] = []
    fork = FakeLauncher(lambda _event: None, None)  # type: ignore[arg-type]
    spawn = FakeLauncher(lambda _event: None, None)  # type: ignore[arg-type]
    unsafe: list[object] = []

    def make_fork(told):
        unsafe.append(told)
        return fork

    switching = SwitchingLauncher(make_fork, spawn, said.append)

    async def start() -> None:
        await switching.start([0], "g", fresh=False, changed=(), started=lambda _w: None)

    asyncio.run(start())
    assert (len(fork.starts), len(spawn.starts)) == (1, 0)
    switching.fork_unsafe("a reason")
    switching.fork_unsafe("another reason")
    asyncio.run(start())
    assert (len(fork.starts), len(spawn.starts)) == (1, 1)
    assert said == ["Spawning workers from now on: a reason, so forking them is not safe."]
    assert unsafe == [switching.fork_unsafe]
