"""``--https`` among the command's options: whether it is asked for, and the certificate it
serves with, or one ``CommandError``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.core.management.base import CommandError


def wanted(options: dict[str, Any], setting: bool) -> bool:
    """``--https`` (or ``ASGISERVE["HTTPS"]`` unless the command line gives a certificate);
    CommandError when the command line asks for both."""
    own_files = bool(options.get("certfile") or options.get("keyfile"))
    if options.get("https") and own_files:
        raise CommandError(
            "--https makes its own certificate: leave out --certfile and --keyfile, or --https."
        )
    chosen = options.get("https")
    return bool(setting and not own_files) if chosen is None else bool(chosen)


def files(hosts: Sequence[str], say: Callable[[str], object]) -> tuple[str, str]:
    """The certificate and key from the local certificate authority, or CommandError."""
    from django_asgiserve.https import serving

    try:
        issued = serving.server_files(hosts)
    except serving.HTTPSError as error:
        raise CommandError(str(error)) from None
    if issued.created_authority:
        say(
            f"Made a local certificate authority in {issued.certfile.parent} for --https. "
            "Browsers warn about its certificates until you trust it, once: python manage.py "
            "asgiserve_ca trust\n"
        )
    return str(issued.certfile), str(issued.keyfile)
