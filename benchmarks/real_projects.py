#!/usr/bin/env python
"""Real-project reload benchmark: a view edit and a template edit on a real Django project, and a
code edit that shows on one of its real pages, write to first response with the change.

It runs ``reload.py`` on the project with the real-project presets: the edit kinds ``view``
(the benchmark's small view), ``page`` (a real page of the project, ``--page``, default ``/``,
served by the project's own views, middleware and templates; the edit is in a small middleware
module the setup adds, so the first request after the reload is that page's) and ``template``;
asgiserve on uvicorn, daphne and hypercorn beside ``runserver``, ``uvicorn --reload`` and
``granian --reload``, one after the other in the same run; cold start, and the failed requests
the poller saw. The machine's load is printed before and after.

The projects it was written for (their content in the database first)::

    git clone https://github.com/wagtail/bakerydemo
    python -m venv .venv-bakery && .venv-bakery/bin/pip install -r bakerydemo/requirements/base.txt
    .venv-bakery/bin/pip install -e ".[all]" granian
    .venv-bakery/bin/python benchmarks/real_projects.py bakerydemo    # runs load_initial_data

    git clone https://github.com/healthchecks/healthchecks
    python -m venv .venv-hc && .venv-hc/bin/pip install -r healthchecks/requirements.txt
    .venv-hc/bin/pip install -e ".[all]" granian
    .venv-hc/bin/python benchmarks/real_projects.py healthchecks --page /accounts/login/

A data command the project has (``load_initial_data``) runs after ``migrate`` in the copy;
``--prepare`` adds others. ``--pin CPU`` runs everything (servers and poller) on that one CPU.
Other options go to ``reload.py`` as they are (``--edits``, ``--systems``, ``--keep``...).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import _harness as h
import reload

#: Commands that fill a project's database with its demo content, run when the project has them.
DATA_COMMANDS = ("load_initial_data",)
SYSTEMS = (
    "runserver,uvicorn --reload,granian --reload,"
    "asgiserve-uvicorn,asgiserve-uvicorn-nowarm,asgiserve-daphne,asgiserve-hypercorn"
)


def data_commands(project: Path) -> list[str]:
    """The :data:`DATA_COMMANDS` that ``project`` defines (a ``management/commands`` module)."""
    return [
        name for name in DATA_COMMANDS if any(project.glob(f"**/management/commands/{name}.py"))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path, help="the Django project (holding manage.py)")
    parser.add_argument("--page", default="/", help="the real page polled (default: /)")
    parser.add_argument("--prepare", action="append", default=[], metavar="COMMAND")
    parser.add_argument("--pin", type=int, metavar="CPU", help="run everything on this CPU")
    args, rest = parser.parse_known_args(argv)
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})  # inherited by every server started
    prepare = [*data_commands(args.project), *args.prepare]
    print(f"Before: {h.machine_load().replace(' at the end', '')}; pinned: {args.pin}", flush=True)
    forwarded = ["--project", str(args.project), "--page", args.page]
    forwarded += [f"--prepare={command}" for command in prepare]
    if "--kinds" not in rest:
        forwarded += ["--kinds", "view,page,template"]
    if "--systems" not in rest:
        forwarded += ["--systems", SYSTEMS]
    return reload.main([*forwarded, *rest])


if __name__ == "__main__":
    sys.exit(main())
