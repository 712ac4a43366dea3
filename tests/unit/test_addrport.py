"""``[addr:]port`` parsing: runserver's grammar, defaults and messages, in process (no server)."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django.core.management.commands.runserver import naiveip_re
from hypothesis import example, given
from hypothesis import strategies as st

from django_asgiserve import addrport
from django_asgiserve.addrport import Address


@pytest.mark.parametrize(
    ("text", "ipv6", "expected"),
    [
        # No address: runserver's defaults.
        (None, False, Address("127.0.0.1", 8000, False)),
        ("", False, Address("127.0.0.1", 8000, False)),
        (None, True, Address("::1", 8000, True)),
        # A port alone.
        ("8080", False, Address("127.0.0.1", 8080, False)),
        ("7000", True, Address("::1", 7000, True)),
        ("0", False, Address("127.0.0.1", 0, False)),
        ("65535", False, Address("127.0.0.1", 65535, False)),
        # IPv4 addresses, and runserver's "0" for 0.0.0.0 (an FQDN to the grammar).
        ("127.0.0.1:8000", False, Address("127.0.0.1", 8000, False)),
        ("0.0.0.0:8000", False, Address("0.0.0.0", 8000, False)),
        ("0:8000", False, Address("0", 8000, False)),
        # IPv6 addresses in brackets switch IPv6 on by themselves.
        ("[::1]:8000", False, Address("::1", 8000, True)),
        ("[::1]:8000", True, Address("::1", 8000, True)),
        ("[2001:0db8:1234:5678::9]:7000", False, Address("2001:0db8:1234:5678::9", 7000, True)),
        ("[::]:0", False, Address("::", 0, True)),
        # Host names.
        ("localhost:8000", False, Address("localhost", 8000, False)),
        ("test.domain.local:7000", False, Address("test.domain.local", 7000, False)),
        ("localhost:8000", True, Address("localhost", 8000, True)),
    ],
)
def test_valid(text, ipv6, expected):
    assert addrport.parse(text, ipv6=ipv6) == expected


@pytest.mark.parametrize(
    ("text", "ipv6", "message"),
    [
        ("abc:xyz", False, '"abc:xyz" is not a valid port number or address:port pair.'),
        ("abc", False, '"abc" is not a valid port number or address:port pair.'),
        (":8000", False, '":8000" is not a valid port number or address:port pair.'),
        ("127.0.0.1:", False, '"127.0.0.1:" is not a valid port number or address:port pair.'),
        ("[::1]", False, '"[::1]" is not a valid port number or address:port pair.'),
        ("::1:8000", False, '"::1:8000" is not a valid port number or address:port pair.'),
        ("-1", False, '"-1" is not a valid port number or address:port pair.'),
        ("8000 ", False, '"8000 " is not a valid port number or address:port pair.'),
        ("99999", False, "'99999' is not a valid port number."),
        ("65536", False, "'65536' is not a valid port number."),
        ("127.0.0.1:99999", False, "'99999' is not a valid port number."),
        ("127.0.0.1:8000", True, '"127.0.0.1" is not a valid IPv6 address.'),
        ("0.0.0.0:0", True, '"0.0.0.0" is not a valid IPv6 address.'),
    ],
)
def test_invalid(text, ipv6, message):
    with pytest.raises(CommandError) as raised:
        addrport.parse(text, ipv6=ipv6)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("address", "url"),
    [
        (Address("127.0.0.1", 8000), "http://127.0.0.1:8000/"),
        (Address("0", 43210), "http://0.0.0.0:43210/"),
        (Address("::1", 43210, True), "http://[::1]:43210/"),
        (Address("localhost", 8000, True), "http://localhost:8000/"),
    ],
)
def test_url_shows_runserver_host(address, url):
    assert address.url() == url


@given(st.text(), st.booleans())
@example("8000\n", False)
@example("٨٠٠٠", False)
@example("99999999999999999999999", False)
@example("[::1]:8000", True)
@example("1.2.3.4:5", True)
def test_any_text_gives_an_address_or_a_command_error(text, ipv6):
    try:
        address = addrport.parse(text, ipv6=ipv6)
    except CommandError as error:
        assert str(error)
    else:
        assert isinstance(address, Address)
        assert 0 <= address.port <= 65535
        assert address.host
        if ipv6:
            assert address.ipv6


@given(st.text(alphabet=st.sampled_from("0123456789abcdefxyz.:[]-_ ٣"), max_size=24))
def test_accepts_exactly_what_runserver_accepts(text):
    """Up to the port range, which runserver leaves to bind() (a traceback there)."""
    try:
        address = addrport.parse(text)
    except CommandError:
        match = naiveip_re.match(text) if text else None
        assert match is None or int(match["port"]) > 65535
    else:
        assert not text or naiveip_re.match(text)
        assert address.port <= 65535
