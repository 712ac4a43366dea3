"""What each module of :mod:`django_asgiserve.upstream` is made of, and how its probe reports.

An upstream module declares its project (:class:`Upstream`: the distribution and the range of
versions the test suite ran on) and each thing it relies on that the project does not promise
(:class:`Reliance`: why, since when, and what asgiserve does without it). Its ``probe()`` runs
one check per reliance (:func:`run_checks`) and returns :class:`Findings`, which the accessors ask
(:meth:`Findings.holds`) and which the command reports as system check messages
(:meth:`Findings.messages`): ``asgiserve.E030`` for a reliance with no fallback (serving is
refused), ``asgiserve.W030`` for a fallback that loses something the user would notice,
``asgiserve.I030`` (at verbosity 2) for one that loses nothing.
"""

from __future__ import annotations

import dis
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import CodeType

from django.core import checks

REFUSED = "asgiserve.E030"
DEGRADED = "asgiserve.W030"
NOTED = "asgiserve.I030"


@dataclass(frozen=True)
class Upstream:
    """A project asgiserve relies on, and the versions of it the test suite ran on."""

    project: str
    distribution: str
    #: The declared floor (tested by ``scripts/minimum_versions.py``) and the newest tested.
    lowest: str
    newest: str

    def version(self) -> str:
        try:
            return version(self.distribution)
        except PackageNotFoundError:
            return "(not installed)"

    def tested(self) -> str:
        return f"{self.project} {self.lowest} to {self.newest}"


@dataclass(frozen=True)
class Reliance:
    """One thing of an upstream's that asgiserve uses and the upstream does not promise."""

    name: str
    why: str
    #: The upstream release that has it, as far back as asgiserve's floor makes relevant.
    since: str
    #: What asgiserve does without it; empty when nothing can replace it (serving is refused).
    fallback: str = ""
    #: Whether the fallback loses something a user would notice (a warning, else a note).
    loses: bool = True


#: A probe's check of one reliance: true when it holds; false or raising when it does not.
Check = Callable[[], object]


@dataclass(frozen=True)
class Findings:
    """What one upstream's probe found: the reliances that do not hold, each with what was seen."""

    upstream: Upstream
    missing: Mapping[Reliance, str]

    def holds(self, reliance: Reliance) -> bool:
        return reliance not in self.missing

    @property
    def refused(self) -> bool:
        return any(not reliance.fallback for reliance in self.missing)

    def refusal(self) -> str:
        """The first refusal's text (for a process that cannot report a system check)."""
        return next((m.msg for m in self.messages(verbosity=0) if m.is_serious()), "")

    def messages(self, verbosity: int = 1) -> list[checks.CheckMessage]:
        found: list[checks.CheckMessage] = []
        for reliance, seen in self.missing.items():
            installed = f"{self.upstream.project} {self.upstream.version()}"
            lacks = (
                f"{installed} lacks {reliance.name} ({seen}), which asgiserve uses: {reliance.why}"
            )
            tested = f"asgiserve is tested with {self.upstream.tested()}"
            if not reliance.fallback:
                found.append(
                    checks.Error(
                        f"{lacks}. asgiserve cannot serve without it, and is tested with "
                        f"{self.upstream.tested()}.",
                        hint=f'Install a tested version: pip install "{self.pin()}"',
                        id=REFUSED,
                    )
                )
            elif reliance.loses:
                found.append(
                    checks.Warning(
                        f"{lacks}. Instead, {reliance.fallback}; {tested}.",
                        hint=f'To get it back, pip install "{self.pin()}".',
                        id=DEGRADED,
                    )
                )
            elif verbosity >= 2:
                found.append(
                    checks.Info(f"{lacks}. Instead, {reliance.fallback}; {tested}.", id=NOTED)
                )
        return found

    def pin(self) -> str:
        upstream = self.upstream
        return f"{upstream.distribution}>={upstream.lowest},<={upstream.newest}"


def run_checks(upstream: Upstream, checks_by_reliance: Mapping[Reliance, Check]) -> Findings:
    """Run each check; a reliance whose check is false or raises is missing."""
    missing: dict[Reliance, str] = {}
    for reliance, check in checks_by_reliance.items():
        try:
            if not check():
                missing[reliance] = "not found"
        except Exception as error:
            missing[reliance] = f"{type(error).__name__}: {error}"
    return Findings(upstream, missing)


def unexecuted_code(module: str) -> CodeType:
    """The compiled code of a pure-Python module, without running it (for a module whose import
    has effects the probing process must not have: daphne's installs Twisted's reactor)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {module!r}")
    source = spec.loader.get_source(module)  # type: ignore[attr-defined]
    return compile(source, spec.origin, "exec", dont_inherit=True)


def function_code(code: CodeType, qualname: str) -> CodeType:
    """The code of the function ``qualname`` (``"Server.run"``) defined in module ``code``."""
    for inner in nested(code):
        if inner.co_qualname == qualname:
            return inner
    raise LookupError(f"no {qualname}()")


def methods_mention(code: CodeType, class_name: str, *names: str) -> bool:
    """Whether the methods of ``class_name``, defined in module ``code``, use each of ``names``."""
    prefix = f"{class_name}."
    methods = [inner for inner in nested(code) if inner.co_qualname.startswith(prefix)]
    used = set().union(*(names_used(method) for method in methods)) if methods else set()
    return all(name in used for name in names)


def nested(code: CodeType) -> Iterator[CodeType]:
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield constant
            yield from nested(constant)


def mentions(code: CodeType, *names: str) -> bool:
    """Whether ``code`` (or a function nested in it) uses each of ``names``: as a global or an
    attribute, or as a string constant (a dict key)."""
    used = names_used(code)
    return all(name in used for name in names)


def looks_up_globals(code: CodeType, *names: str) -> bool:
    """Whether ``code`` reads each of ``names`` as a global of its module (so that replacing
    the module attribute changes what it uses)."""
    loaded = {
        instruction.argval
        for instruction in dis.get_instructions(code)
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    return all(name in loaded for name in names)


def names_used(code: CodeType) -> set[str]:
    used: set[str] = set()
    for each in (code, *nested(code)):
        used.update(each.co_names)
        used.update(c for c in each.co_consts if isinstance(c, str))
    return used
