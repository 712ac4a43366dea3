"""Trusted local HTTPS for development (``--https``): a certificate authority of the user's own,
kept in their data directory, and the server certificates it issues.

:mod:`serving` gives a server its certificate and key (or one ``HTTPSError``); :mod:`location`
says where the authority lives and writes its files; :mod:`names` which names a server's
certificate covers; :mod:`authority` makes the authority and the certificates (the only module
that needs ``cryptography``, the ``https`` extra); :mod:`trust` adds the authority to the user's
certificate stores, and removes it, when they ask (``manage.py asgiserve_ca``). Nothing is
trusted by serving.
"""
