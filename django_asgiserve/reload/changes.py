"""What a batch of changed files means when several processes judge it.

Every process that serves requests runs Django's ``file_changed`` receivers for a change itself
(they reset that process's template loaders, clear its translations, wake its event streams) and
answers with an action: ``"none"`` (handled, or nothing it watches), ``"reload"`` (new workers
from the preloader) or ``"cold"`` (a new preloader too), and the files that call for it. The
server acts on the strongest answer, so that every process agrees on keeping or replacing it.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable
from typing import Literal

#: What a change means: nothing to do, a new worker, or a new preloader too.
Action = Literal["none", "reload", "cold"]
#: An action and the files that call for it.
Classification = tuple[Action, list[str]]

#: Actions from the weakest to the strongest; an unknown one counts as a reload.
ACTION_RANK: dict[str, int] = {"none": 0, "reload": 1, "cold": 2}


def merge(classifications: Iterable[Classification]) -> Classification:
    """The strongest action of ``classifications``, with every file any of them named."""
    action: Action = "none"
    reasons: set[str] = set()
    for answer, paths in classifications:
        if ACTION_RANK.get(answer, 1) > ACTION_RANK[action]:
            action = answer if answer in ACTION_RANK else "reload"
        reasons.update(paths)
    return action, sorted(reasons)


def fallback(paths: list[str]) -> Classification:
    """What a process answers when judging ``paths`` raised: the traceback and why it reloads
    on the console (called in an ``except`` block), and a reload, the safe answer."""
    names = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    sys.stderr.write(
        f"{traceback.format_exc()}Could not tell what the change to {names} means (the error "
        "above): reloading to be safe.\n"
    )
    sys.stderr.flush()
    return "reload", paths
