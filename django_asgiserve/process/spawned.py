"""A spawned worker: a fresh interpreter that sets Django up, loads the project and serves, with
the very code a forked worker runs (:func:`django_asgiserve.process.worker.run`); it is handed
its channel and sockets by :mod:`handover`.

A *spare* is spawned ahead of a reload: it imports Django's and the server's libraries (never
the project's code, which an edit may change) and waits for ``begin``, which says which code
(``generation``) and which socket it serves; a reload then costs only the project's import.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import replace

from django_asgiserve import backends, platforms
from django_asgiserve.process import handover, interrupts, worker
from django_asgiserve.process.preloader import die_with_parent, set_up_django
from django_asgiserve.process.protocol import Channel, WorkerChannel
from django_asgiserve.run_config import ServerConfig

#: What the supervisor runs; like the preloader's, it does not rely on the current directory
#: being importable (the package and the project are found on the supervisor's ``sys.path``).
BOOTSTRAP = (
    "import json, os, sys; sys.path[:] = json.loads(os.environ['ASGISERVE_CONFIG'])['sys_path'];"
    " from django_asgiserve.process.spawned import main; main()"
)
#: Set in a spare's environment.
SPARE_KEY = "ASGISERVE_SPARE"
#: Django's modules every project's load imports, safe to import before the settings are read.
DJANGO_LIBRARIES = ("django.core.handlers.asgi", "django.urls", "django.db.models", "django.forms")


def main() -> None:
    if platforms.has_parent_death_signal():
        die_with_parent()
    interrupts.ignore()
    sock, socket_fds = handover.receive()
    config = ServerConfig.from_environ()
    if socket_fds is not None:
        config = replace(config, socket_fds=socket_fds)
    channel: WorkerChannel = Channel(sock)
    backend = backends.get(config.backend)(config)
    backend.preload()
    if os.environ.pop(SPARE_KEY, None):
        config = wait_for_begin(channel, config)
    os.environ["DJANGO_SETTINGS_MODULE"] = config.settings_module
    worker.run(config, backend, channel, set_up_django())


def wait_for_begin(channel: WorkerChannel, config: ServerConfig) -> ServerConfig:
    """Import the libraries, then wait: the configuration ``begin`` says; exit if the
    supervisor is done with this spare."""
    for name in DJANGO_LIBRARIES:
        importlib.import_module(name)
    message = channel.receive()
    if message is None or message["cmd"] != "begin":
        os._exit(0)
    return replace(config, generation=message["generation"]).for_slot(message["slot"])


if __name__ == "__main__":
    main()
