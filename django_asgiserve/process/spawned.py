"""A spawned worker: a fresh interpreter that sets Django up, loads the project and serves, with
the very code a forked worker runs (:func:`django_asgiserve.process.worker.run`); it is handed
its channel and sockets by :mod:`handover`."""

from __future__ import annotations

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


def main() -> None:
    if platforms.has_parent_death_signal():
        die_with_parent()
    interrupts.ignore()
    sock, socket_fds = handover.receive()
    config = ServerConfig.from_environ()
    if socket_fds is not None:
        config = replace(config, socket_fds=socket_fds)
    channel: WorkerChannel = Channel(sock)
    os.environ["DJANGO_SETTINGS_MODULE"] = config.settings_module
    backend = backends.get(config.backend)(config)
    backend.preload()
    worker.run(config, backend, channel, set_up_django())


if __name__ == "__main__":
    main()
