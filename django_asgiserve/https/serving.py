"""The certificate and key a server serves ``--https`` with, issued by the local authority;
``HTTPSError`` when that cannot be done (``cryptography`` missing, a directory not writable)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django_asgiserve.https.authority import ServerFiles

INSTALL = 'pip install "django-asgiserve[https]"'


class HTTPSError(Exception):
    """Local HTTPS cannot be set up: ``cryptography`` is missing, or the directory cannot be
    written. The message says which, and what to do."""


def require_cryptography(what: str = "--https") -> None:
    """HTTPSError naming the extra when ``cryptography`` is not installed."""
    if importlib.util.find_spec("cryptography") is None:
        raise HTTPSError(
            f"{what} needs the cryptography package, which is not installed.\n"
            f"HINT: Install it with: {INSTALL}"
        )


def server_files(hosts: Iterable[str]) -> ServerFiles:
    """The certificate and key to serve ``hosts`` over HTTPS with, from the local authority
    (made on first use, renewed as needed), or HTTPSError."""
    require_cryptography()
    from django_asgiserve.https import authority, location, names

    directory = location.authority_dir()
    try:
        return authority.server_files(names.for_hosts(hosts), directory)
    except OSError as error:
        raise HTTPSError(
            f"--https cannot keep its certificate authority in {directory}: "
            f"{error.strerror or error}.\nHINT: Set {location.ENVIRON_KEY} to a directory "
            "you can write."
        ) from None
