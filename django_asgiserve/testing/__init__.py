"""The live server for tests: :class:`ASGILiveServerTestCase` for Django's test runner, and the
``asgi_live_server`` fixture of the pytest plugin (:mod:`.pytest_plugin`)."""

from django_asgiserve.testing.cases import ASGILiveServerTestCase

__all__ = ["ASGILiveServerTestCase"]
