"""Asking the views of :mod:`tests.helpers.db_project` and reading what they say: which thread
made each query on which database connection, and which threads ran each request's
``request_started`` and ``request_finished``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers.db_project import LINES, VIEWS_PATHS, signal_log

_tags = itertools.count(1)
#: A serving thread: (worker pid, thread name).
Thread = tuple[str, str]


@dataclass(frozen=True)
class Answer:
    """One request to a view: what came back, and the queries its lines report."""

    view: str
    alias: str
    tag: str
    status: int | None
    text: str
    error: str = ""
    #: (serving thread, backend pid) of each query line.
    queries: list[tuple[Thread, int]] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        return (
            self.status == 200
            and self.text.endswith("end\n")
            and len(self.queries) == LINES[self.view]
        )

    def describe(self) -> str:
        request = f"{self.view}?alias={self.alias}&tag={self.tag}"
        return f"{request}: {self.status} {self.error} {self.text!r}"


def parse_queries(text: str) -> list[tuple[Thread, int]]:
    queries = []
    for line in text.splitlines():
        if line == "end":
            continue
        # Thread names may hold spaces ("Thread-3 (process_request_thread)").
        head, backend = line.rsplit(" ", 1)
        pid, thread = head.split(" ", 1)
        queries.append(((pid, thread), int(backend)))
    return queries


def ask(client: httpx.Client, url: str, view: str, alias: str) -> Answer:
    tag = f"t{next(_tags)}"
    try:
        response = client.get(f"{url}/db/{view}/", params={"alias": alias, "tag": tag})
    except httpx.HTTPError as error:  # a stream cut short, a refused connection
        return Answer(view, alias, tag, None, "", repr(error))
    try:
        queries = parse_queries(response.text) if response.status_code == 200 else []
    except ValueError:
        queries = []
    return Answer(view, alias, tag, response.status_code, response.text[:300], "", queries)


def mix(
    client: httpx.Client,
    url: str,
    alias: str,
    *,
    each: int,
    concurrency: int = 8,
    views: Iterable[str] = VIEWS_PATHS,
) -> list[Answer]:
    """``each`` requests to every view on ``alias``, ``concurrency`` at a time, interleaved;
    ``client`` (thread-safe) keeps a connection per concurrent request."""
    requests = [view for _ in range(each) for view in views]

    def run(share: list[str]) -> list[Answer]:
        return [ask(client, url, view, alias) for view in share]

    shares = [requests[n::concurrency] for n in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        return [answer for answers in pool.map(run, shares) for answer in answers]


@dataclass
class SignalLog:
    """``started``/``finished`` lines: the threads that ran each tag's signals."""

    started: dict[str, list[Thread]] = field(default_factory=dict)
    finished: dict[str, list[Thread]] = field(default_factory=dict)

    @classmethod
    def read(cls, project: Path) -> SignalLog:
        log = cls()
        path = signal_log(project)
        for line in path.read_text().splitlines() if path.exists() else []:
            event, tag, pid, thread = line.split(" ", 3)
            getattr(log, event).setdefault(tag, []).append((pid, thread))
        return log

    def complete(self) -> bool:
        """Whether every request started has finished (whichever thread said so)."""
        return sum(map(len, self.finished.values())) >= sum(map(len, self.started.values()))


def outside_the_request_thread(answers: Iterable[Answer], log: SignalLog) -> list[str]:
    """Each whole answer whose queries, ``request_started`` and ``request_finished`` did not all
    run in one thread (the request's), described."""
    wrong = []
    for answer in answers:
        if not answer.whole:
            continue
        threads = {
            "request_started": log.started.get(answer.tag, []),
            "request_finished": log.finished.get(answer.tag, []),
            "queries": [thread for thread, _ in answer.queries],
        }
        seen = {thread for found in threads.values() for thread in found}
        if len(seen) != 1 or len(threads["request_started"]) != 1:
            wrong.append(f"{answer.view} ({answer.tag}): {threads}")
    return wrong


def connections_by_thread(answers: Iterable[Answer]) -> dict[Thread, set[int]]:
    """The backend pids each serving thread's queries used."""
    used: dict[Thread, set[int]] = {}
    for answer in answers:
        for thread, backend in answer.queries:
            used.setdefault(thread, set()).add(backend)
    return used
