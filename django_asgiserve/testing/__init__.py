"""The live server for tests: :class:`ASGILiveServerTestCase` for Django's test runner, the server
itself (:mod:`.live_server`) and the ``asgi_live_server`` fixture of the pytest plugin
(:mod:`.pytest_plugin`). The test case is defined here rather than in a module of its own, which
this package would import while that module imports the package's ``live_server``: a cycle.

``ASGILiveServerTestCase`` is Django's ``LiveServerTestCase`` served over ASGI. Like
``StaticLiveServerTestCase``, it serves the staticfiles finders' files; unlike Django's, it serves
``ASGI_APPLICATION``, so WebSocket routes answer. The server runs in the test process (see
:mod:`.live_server`), once per class, on the test database.
"""

from __future__ import annotations

from typing import ClassVar

from django.test import TransactionTestCase, modify_settings
from django.utils.functional import classproperty

from django_asgiserve.live.server import DEFAULT_HOST, ASGILiveServer

__all__ = ["ASGILiveServer", "ASGILiveServerTestCase"]


class ASGILiveServerTestCase(TransactionTestCase):
    """A ``TransactionTestCase`` with the project served over ASGI at ``live_server_url``.

    ``host`` and ``port`` say where it listens (port 0: a free one); ``backend`` names the
    server (None: ``ASGISERVE["TEST_BACKEND"]``, then the first that can serve in a thread);
    ``https`` serves HTTPS with the local certificate authority's certificate, for pages that
    need a secure context (``live_server.ca_file`` verifies it).
    """

    host: ClassVar[str] = DEFAULT_HOST
    port: ClassVar[int] = 0
    backend: ClassVar[str | None] = None
    https: ClassVar[bool] = False
    live_server: ClassVar[ASGILiveServer]

    @classproperty
    def live_server_url(cls) -> str:
        return cls.live_server.url

    @classproperty
    def allowed_host(cls) -> str:
        return cls.host

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.enterClassContext(modify_settings(ALLOWED_HOSTS={"append": cls.allowed_host}))
        cls.live_server = ASGILiveServer(cls.host, cls.port, cls.backend, https=cls.https)
        cls.live_server.start()
        cls.addClassCleanup(cls.live_server.stop)
