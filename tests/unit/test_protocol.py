"""The message protocol: every message survives its framing, and a channel carries messages
(and, with a fork command, a file descriptor) between two ends of a socket pair."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import get_args

import pytest

from django_asgiserve.process import protocol
from django_asgiserve.process.protocol import Channel, Message

EXAMPLES: list[Message] = [
    {"cmd": "fork", "slot": None, "generation": "g1"},
    {"cmd": "fork", "slot": 2, "generation": ""},
    {"cmd": "import", "modules": ["yaml", "PIL.Image"]},
    {"event": "booted", "pid": 12, "can_fork": True, "broken": False, "preloaded": ["/a.py"]},
    {"event": "forked", "pid": 13},
    {"event": "imported", "can_fork": False, "preloaded": []},
    {"cmd": "changed", "id": 7, "paths": ["/p/views.py", "/p/ümlaut.html"]},
    {"cmd": "serve", "since": None},
    {"cmd": "serve", "since": 8123.25},
    {"cmd": "stop"},
    {"cmd": "drain"},
    {"cmd": "begin", "generation": "g2", "slot": 1},
    {"event": "stopping"},
    {"event": "recycle", "reason": "max-requests", "pid": 14, "served": 1003},
    {"event": "recycle", "reason": "max-memory", "pid": 15, "rss_mb": 212, "start_rss_mb": 80},
    {"event": "loaded", "pid": 14, "broken": True},
    {"event": "watch", "roots": ["/p"]},
    {"event": "learned", "modules": ["markdown"]},
    {
        "event": "classified",
        "id": 7,
        "action": "cold",
        "paths": ["/p/settings.py"],
        "learned": [],
    },
    {"id": 3, "paths": ["/p/a.py"]},
    {"id": 3, "action": "none", "paths": []},
]


def message_types() -> set[type]:
    kinds = set()
    for union in (
        protocol.PreloaderCommand,
        protocol.PreloaderEvent,
        protocol.WorkerCommand,
        protocol.WorkerEvent,
        protocol.RelayMessage,
    ):
        kinds.update(get_args(union))
    return kinds


def test_every_message_type_has_an_example() -> None:
    def fits(kind: type, example: Message) -> bool:
        keys = set(kind.__annotations__)
        if set(example) != keys:
            return False
        literal = kind.__annotations__.get("cmd") or kind.__annotations__.get("event")
        tag = example.get("cmd", example.get("event"))
        return literal is None or f"'{tag}'" in str(literal)

    for kind in message_types():
        assert any(fits(kind, example) for example in EXAMPLES), kind.__name__


@pytest.mark.parametrize("message", EXAMPLES)
def test_encode_then_decode_is_the_same_message(message: Message) -> None:
    line = protocol.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line) == message


@pytest.mark.parametrize("line", [b"[1, 2]\n", b'"text"\n', b"not json\n"])
def test_a_line_that_is_no_message_is_a_value_error(line: bytes) -> None:
    with pytest.raises(ValueError):
        protocol.decode(line)


@pytest.fixture
def ends() -> Iterator[tuple[Channel[Message, Message], Channel[Message, Message]]]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    one: Channel[Message, Message] = Channel(left)
    other: Channel[Message, Message] = Channel(right)
    yield one, other
    one.close()
    other.close()


def test_a_channel_carries_every_message_in_order(ends) -> None:
    one, other = ends
    for message in EXAMPLES:
        assert one.send(message)
    assert [other.receive() for _ in EXAMPLES] == EXAMPLES


def test_a_channel_reports_the_other_end_gone(ends) -> None:
    one, other = ends
    one.close()
    assert other.receive() is None
    assert other.send({"cmd": "stop"}) is False


def test_a_fork_command_carries_a_descriptor(ends) -> None:
    one, other = ends
    read_end, write_end = os.pipe()
    try:
        socket.send_fds(one.sock, [protocol.encode(EXAMPLES[0])], [write_end])
        message, fds = other.receive_with_fds()
        assert message == EXAMPLES[0]
        assert len(fds) == 1
        os.write(fds[0], b"x")
        os.close(fds[0])
        assert os.read(read_end, 1) == b"x"
    finally:
        os.close(read_end)
        os.close(write_end)
