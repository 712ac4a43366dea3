"""Relays file changes from a process to the serving processes it forks (gunicorn's workers,
forked by the arbiter that runs in an asgiserve worker), so that Django's ``file_changed``
receivers run in each of them, and merges their answers into the one the supervisor gets.

Each child gets one end of a socket pair as it is forked and answers on a thread of its own,
in JSON lines as on :mod:`~django_asgiserve.process.protocol`: ``{"id", "paths"}`` one way,
``{"id", "action", "paths"}`` back. The forking process runs the receivers itself too, so the
children it forks later start from the new state: a child that dies meanwhile needs no answer,
since its replacement is forked from that state. A child that does not answer in time counts
as a reload.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from django_asgiserve.process.protocol import (
    Channel,
    RelayAnswer,
    RelayChannel,
    RelayQuestion,
    decode,
    encode,
)
from django_asgiserve.reload import changes
from django_asgiserve.reload.changes import Classification

#: Seconds a child may take to answer: less than the supervisor's ``CLASSIFY_TIMEOUT`` (5), so
#: that the merged answer still reaches it in time.
CHILD_CLASSIFY_TIMEOUT = 4.0

Classify = Callable[[list[str]], Classification]


@dataclass(eq=False)
class Link:
    """The forking process's end of one child's socket pair (and the child's, until forked)."""

    ours: socket.socket
    theirs: socket.socket | None
    received: bytearray = field(default_factory=bytearray)

    def send(self, message: RelayQuestion) -> bool:
        try:
            # One short message on an idle socket: this never blocks.
            self.ours.sendall(encode(message))
        except OSError:
            return False
        return True

    def read(self) -> list[RelayAnswer] | None:
        """The whole messages that have arrived; ``None`` once the child has gone."""
        try:
            chunk = self.ours.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        self.received += chunk
        *lines, rest = self.received.split(b"\n")
        self.received = bytearray(rest)
        return [cast(RelayAnswer, decode(line)) for line in lines]

    def forked(self) -> None:
        """Only the child holds its end now: its exit shows here as end-of-file."""
        if self.theirs is not None:
            self.theirs.close()
            self.theirs = None

    def close(self) -> None:
        self.forked()
        self.ours.close()


class ChangeRelay:
    """In the forking process: a link per child, keyed by what the forking code calls it."""

    def __init__(self, classify_here: Classify) -> None:
        self.classify_here = classify_here
        self.links: dict[Hashable, Link] = {}
        self.next_request_id = 0
        # A question holds it until answered: forks and exits wait that long at most.
        self.lock = threading.Lock()

    def before_fork(self, child: Hashable, forked: Iterable[Hashable]) -> None:
        """Make the link of ``child``, about to be forked; ``forked``: the children alive."""
        with self.lock:
            alive = set(forked)
            for key, link in list(self.links.items()):
                if key in alive:
                    link.forked()
                else:  # a fork that failed, or a child whose exit was not reported
                    link.close()
                    del self.links[key]
            ours, theirs = socket.socketpair()
            self.links[child] = Link(ours, theirs)

    def in_child(self, child: Hashable) -> None:
        """In the new child: drop its siblings' links and answer questions on its own."""
        # The lock may have been held by a thread the fork did not copy: never take it here.
        self.lock = threading.Lock()
        own = self.links.pop(child, None)
        for link in self.links.values():
            link.close()
        self.links = {}
        if own is None or own.theirs is None:
            return
        own.ours.close()
        channel: RelayChannel = Channel(own.theirs)
        threading.Thread(
            target=answer_questions,
            args=(channel, self.classify_here),
            daemon=True,
            name="asgiserve-changes",
        ).start()

    def exited(self, child: Hashable) -> None:
        with self.lock:
            link = self.links.pop(child, None)
            if link is not None:
                link.close()

    def classify(
        self, paths: list[str], children: Callable[[], Iterable[Hashable]]
    ) -> Classification:
        """Judge ``paths`` here and in every child (``children()``: those forked by now)."""
        with self.lock:
            self.next_request_id += 1
            question: RelayQuestion = {"id": self.next_request_id, "paths": paths}
            asked = self.ask(children(), question, {})
            answers = [self.classify_here(paths)]
            # Forked while this process ran its receivers: maybe from a half-updated state.
            asked = self.ask(children(), question, asked)
            answers += self.answers(asked, question)
        return changes.merge(answers)

    def ask(
        self, children: Iterable[Hashable], question: RelayQuestion, asked: dict[Hashable, Link]
    ) -> dict[Hashable, Link]:
        asked = dict(asked)
        for child in children:
            link = self.links.get(child)
            if link is None or child in asked:
                continue
            link.forked()
            if link.send(question):  # one that cannot be sent to has gone: nothing to ask
                asked[child] = link
        return asked

    def answers(self, asked: dict[Hashable, Link], question: RelayQuestion) -> list[Classification]:
        """The children's answers to ``question``; one reload for those that gave none."""
        deadline = time.monotonic() + CHILD_CLASSIFY_TIMEOUT
        answers: list[Classification] = []
        with selectors.DefaultSelector() as selector:
            for link in asked.values():
                selector.register(link.ours, selectors.EVENT_READ, link)
            waiting = set(asked.values())
            while waiting and (remaining := deadline - time.monotonic()) > 0:
                for key, _events in selector.select(remaining):
                    link = key.data
                    messages = link.read()
                    # Earlier questions' late answers are not this one's.
                    mine = [m for m in messages or () if m.get("id") == question["id"]]
                    if messages is None or mine:
                        waiting.discard(link)
                        selector.unregister(link.ours)
                    answers += [(m["action"], m["paths"]) for m in mine]
        if waiting:
            answers.append(("reload", question["paths"]))
        return answers


def answer_questions(channel: RelayChannel, classify: Classify) -> None:
    """In a child: run the receivers for each change its parent reports, until it goes."""
    while (question := channel.receive()) is not None:
        try:
            action, reasons = classify(question["paths"])
        except Exception:
            action, reasons = changes.fallback(question["paths"])
        channel.send({"id": question["id"], "action": action, "paths": reasons})


def relay_changes(cfg: Any, relay: ChangeRelay) -> None:
    """Give each gunicorn worker a link to its arbiter's process for changed files, through
    gunicorn's server hooks; hooks the user set run after these."""
    user_pre_fork, user_post_fork, user_child_exit = cfg.pre_fork, cfg.post_fork, cfg.child_exit

    def pre_fork(arbiter: Any, worker: Any) -> None:
        relay.before_fork(worker, arbiter.WORKERS.copy().values())
        user_pre_fork(arbiter, worker)

    def post_fork(arbiter: Any, worker: Any) -> None:
        relay.in_child(worker)
        user_post_fork(arbiter, worker)

    def child_exit(arbiter: Any, worker: Any) -> None:
        relay.exited(worker)
        user_child_exit(arbiter, worker)

    cfg.set("pre_fork", pre_fork)
    cfg.set("post_fork", post_fork)
    cfg.set("child_exit", child_exit)
