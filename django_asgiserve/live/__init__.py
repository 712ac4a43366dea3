"""The live ASGI server that tests run against, in a thread of the test process:
:mod:`server` serves the project on a loopback port (HTTP or HTTPS), :mod:`backend` chooses the
server that can run in a thread, :mod:`connections` shares in-memory databases with it. The
public faces are in :mod:`django_asgiserve.testing`."""
