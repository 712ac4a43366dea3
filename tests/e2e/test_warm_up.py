"""A new worker is warm before it serves: after an edit, its first request to the page looked at
before builds nothing that the second would not (URL lookups, its compiled template, which
translates), and warming up never ran a view. Every backend, one and two workers, and with both
cores kept busy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.edits import set_message
from tests.helpers.polling import wait_for
from tests.helpers.server import Server
from tests.helpers.spinning import busy_cores
from tests.helpers.warm_project import install

WARM = {"urls_populated": True, "compiled": 0, "text": "warm hi"}


def warm_answers(server: Server, runs: Path, message: str, workers: int) -> list[dict]:
    """``/warm/`` asked until every one of ``workers`` answered with ``message`` (old answers
    are dropped); each answer's view ran once: ``runs`` has one line per request."""
    answers: list[dict] = []
    asked = len(runs.read_text().splitlines()) if runs.exists() else 0

    def every_worker_answered() -> bool:
        nonlocal asked
        answer = server.get("/warm/").json()
        asked += 1
        if answer["message"] == message:
            answers.append(answer)
        return len({a["pid"] for a in answers}) == workers

    wait_for(every_worker_answered, what=f"{workers} workers answering {message!r}")
    assert len(runs.read_text().splitlines()) == asked
    return answers


def first_of_each(answers: list[dict]) -> list[dict]:
    firsts: dict[int, dict] = {}
    for answer in answers:
        firsts.setdefault(answer["pid"], answer)
    return list(firsts.values())


def check_warm_after_reload(server: Server, project: Path, runs: Path, workers: int) -> None:
    server.wait_serving()
    warm_answers(server, runs, "first", workers)  # the page looked at before the edit
    ran = runs.read_text()
    set_message(project / "demo" / "warm_views.py", "first", "second")
    server.wait_output("Reloaded in")
    assert runs.read_text() == ran, "the new workers' warm-up ran the view"
    answers = warm_answers(server, runs, "second", workers)
    for answer in first_of_each(answers):
        assert {key: answer[key] for key in WARM} == WARM, answer


@pytest.mark.parametrize("workers", [1, 2])
def test_first_request_after_a_reload_is_warm(start, project, backend, workers):
    install(project)
    runs = project / "warm-runs.txt"
    server = start(
        "--backend",
        backend,
        "--workers",
        str(workers),
        env={"ASGISERVE_TEST_WARM_RUNS": str(runs)},
    )
    check_warm_after_reload(server, project, runs, workers)


def test_warm_with_both_cores_busy(start, project):
    install(project)
    runs = project / "warm-runs.txt"
    with busy_cores():
        server = start(
            "--backend", "uvicorn", "--workers", "2", env={"ASGISERVE_TEST_WARM_RUNS": str(runs)}
        )
        check_warm_after_reload(server, project, runs, 2)


def test_warm_up_off(start, project):
    """``ASGISERVE["WARM_UP"] = False``: the first request builds what it needs."""
    install(project)
    runs = project / "warm-runs.txt"
    env = {"ASGISERVE_TEST_WARM_RUNS": str(runs), "ASGISERVE_DEMO_INSIGHT": '{"WARM_UP": false}'}
    server = start("--backend", "uvicorn", env=env).wait_serving()
    warm_answers(server, runs, "first", 1)
    set_message(project / "demo" / "warm_views.py", "first", "second")
    server.wait_output("Reloaded in")
    first = warm_answers(server, runs, "second", 1)[0]
    assert (first["urls_populated"], first["compiled"]) == (False, 1), first
