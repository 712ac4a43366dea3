"""Every use of another project's private or unpromised API, in one module per project.

Each module (``django``, ``asgiref``, ``browser_reload``, ``uvicorn``, ``uvicorn_worker``,
``hypercorn``, ``daphne``, ``twisted``, ``granian``, ``gunicorn``) names what it relies on in its
docstring (why, since which release, what happens without it), exposes the small accessors the
rest of the package calls instead of touching those names, and has a ``probe()`` that checks them
once per process, importing its project only then (the core imports without any server). What a
probe finds (:class:`~django_asgiserve.upstream.probing.Findings`) selects a fallback where one
exists, or refuses to serve, naming the installed version and the tested range.

The command runs the probes of the core's projects and of the chosen backend's before it serves
(:func:`serving_messages`, through the serving checks), so that a release that changed what
asgiserve relies on fails there, clearly, and never mid-request.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module

from django.core import checks

from django_asgiserve.upstream.probing import Findings

#: The projects every run relies on, whatever the backend.
CORE = ("django", "asgiref", "browser_reload")
#: Every module of this package, one per project.
MODULES = (
    *CORE,
    *("uvicorn", "uvicorn_worker", "hypercorn", "daphne", "twisted", "granian", "gunicorn"),
)


def probe(name: str) -> Findings:
    """The findings of the module ``name`` (imported, and probed, on first use)."""
    findings: Findings = import_module(f"{__name__}.{name}").probe()
    return findings


def serving_messages(names: Iterable[str], verbosity: int = 1) -> list[checks.CheckMessage]:
    """What the probes of the core and of the projects ``names`` found, as system check
    messages: errors refuse to serve, warnings name a lost feature, notes show at verbosity 2."""
    return [message for name in (*CORE, *names) for message in probe(name).messages(verbosity)]
